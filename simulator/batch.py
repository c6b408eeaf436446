"""Batch runs: every scenario file under some paths, with its stresses and sweeps.

``sibsim batch PATH... --out DIR`` plans first and simulates second: every file
is resolved (``extends``), every stress and sweep point validated, every
variant's drawn parameters checked, and any problem stops the batch before a
single path is simulated. Then each variant is run into ``DIR/<variant>/``
(written atomically by :func:`io.atomic_folder`), with its identity in
manifest.json: a hash of the resolved scenario, seed, path count and package
version (:func:`compose.variant_hash`). A rerun skips every variant whose folder
carries the same hash, so an interrupted batch resumes where it stopped, and a
finished one rewrites nothing. ``DIR/batch_summary.csv`` is rebuilt from the
finished folders and replaced atomically, only when its content changes.

A lock file (``DIR/.sibsim-batch.lock``) keeps two batches out of one folder;
leftovers of an interrupted write (hidden ``*.tmp`` and ``*.old`` entries) are
removed when the next batch starts.
"""
from __future__ import annotations

import glob
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import compare, plotly_js
from .compose import YAML_SUFFIXES, Variant, load_variants, scenario_file_kind, variant_hash
from .io import FolderInUse, folder_problem, write_text_atomic
from .yamlfiles import Problem, ScenarioError, read_bytes

LOCK_FILE = ".sibsim-batch.lock"
# paths.parquet columns the headline figures are computed from
HEADLINE_COLUMNS = ["multiple", "loss", "irr", "capital_drawn", "outcome_payments",
                    "cap_reached", "net_saving", "no_effect_payments", "deadweight_share",
                    "started", "care_days_counterfactual", "care_days_treated", "child_days"]


class BatchBusy(RuntimeError):
    """Another batch holds the output folder's lock."""


@dataclass(frozen=True)
class PlannedRun:
    variant: Variant
    seed: int
    paths: int
    hash: str

    @property
    def name(self) -> str:
        return self.variant.name


@dataclass
class Plan:
    runs: list[PlannedRun]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # files that are not scenarios


# --------------------------------------------------------------------------- planning
def find_scenario_files(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Scenario files named by ``inputs`` (files, directories searched recursively, globs).

    Files found in directories or by globs are kept only if they are scenarios
    (see :func:`compose.scenario_file_kind`); the others are returned as skipped.
    A file named explicitly is always treated as a scenario. Hidden files and
    folders (``.name``) are ignored.
    """
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    problems: list[Problem] = []

    def found(p: Path) -> None:
        why = scenario_file_kind(p)
        (skipped.append((p, why)) if why else files.append(p))

    for item in inputs:
        p = Path(item)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            for q in sorted(p.rglob("*")):
                rel = q.relative_to(p).parts
                if (q.suffix in YAML_SUFFIXES and q.is_file()
                        and not any(s.startswith(".") for s in rel)):
                    found(q)
        elif os.path.lexists(p):   # a FIFO, a device, a loop of links: say which
            try:
                read_bytes(p)   # refuses it without opening it for reading
            except ScenarioError as exc:
                problems.extend(exc.problems)
            else:
                problems.append(Problem(str(item), None, "", "not a regular file"))
        elif glob.has_magic(str(item)):
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix in YAML_SUFFIXES]
            if not matches:
                problems.append(Problem(str(item), None, "", "no scenario files match"))
            for m in matches:
                found(m)
        else:
            problems.append(Problem(str(item), None, "", "no such file or directory"))
    if problems:
        raise ScenarioError(problems)
    unique, seen = [], set()
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique, skipped


def plan_batch(inputs: Sequence[str | Path], *, paths: int | None = None) -> Plan:
    """Resolve and validate every variant of every scenario file; raise ScenarioError
    with every problem found, before anything is simulated."""
    files, skipped = find_scenario_files(inputs)
    cache: dict = {}
    problems: list[Problem] = []
    variants: list[Variant] = []
    for f in files:
        try:
            variants.extend(load_variants(f, cache=cache))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    variants = _with_parents(variants, cache, problems)
    runs: list[PlannedRun] = []
    by_name: dict[str, PlannedRun] = {}
    for v in variants:
        n = v.n_paths(paths)
        run = PlannedRun(v, v.seed, n, variant_hash(v.loaded.scenario, v.seed, n))
        other = by_name.get(v.name)
        if other is None:
            by_name[v.name] = run
            runs.append(run)
        elif other.hash != run.hash:
            file, line = v.loaded.origins.get(("name",), (str(v.file), None))
            inherited = v.kind == "scenario" and file != str(v.file)
            how = " (inherited through extends)" if inherited else ""
            problems.append(Problem(str(v.file), None if inherited else line, "name",
                                    f"{v.name!r}{how}"
                                    f" is also the name of a different scenario from "
                                    f"{other.variant.file}: give each scenario its own name "
                                    f"(it names the output folder)"))
    if not problems:
        problems.extend(_check_draws(runs))
    if problems:  # a base's problem reaches us through each file that extends it: once is enough
        raise ScenarioError(list(dict.fromkeys(problems)))
    return Plan(runs, skipped)


def _with_parents(variants: list[Variant], cache: dict, problems: list) -> list[Variant]:
    """Add the scenario each extending file is compared with, if it is not in the batch."""
    out = list(variants)
    names = {v.name for v in out}
    pending = [v for v in out if v.base_file is not None]
    while pending:
        v = pending.pop(0)
        if v.base in names:
            continue
        try:
            (parent,) = load_variants(v.base_file, cache=cache, with_stresses=False)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        out.insert(out.index(v), parent)
        names.add(parent.name)
        if parent.base_file is not None:
            pending.append(parent)
    return out


def _check_draws(runs: list[PlannedRun]) -> list[Problem]:
    """Drawn parameter combinations the model cannot use, and runs too big for memory,
    are input errors: find them now."""
    from .engine import ParameterError, check_memory, draw_parameters

    problems = []
    for r in runs:
        chunk = r.variant.loaded.scenario.simulation.chunk_paths
        try:
            check_memory(r.variant.loaded.scenario, r.paths)
            for a in range(0, r.paths, chunk):
                draw_parameters(r.variant.loaded.scenario, r.seed, a, min(chunk, r.paths - a))
        except ParameterError as exc:
            problems.append(Problem(str(r.variant.file), None, r.name, str(exc)))
    return problems


# --------------------------------------------------------------------------- running
@dataclass
class Outcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # finished earlier
    failed: dict[str, str] = field(default_factory=dict)
    summary_written: bool = False
    summary_path: Path | None = None
    report_written: bool = False
    report_path: Path | None = None
    report_error: str | None = None    # the batch report failed (the results stand)


def is_finished(folder: Path, run_hash: str, files=None) -> bool:
    """Whether ``folder`` holds the finished run of ``run_hash``: its manifest and every
    file the run writes (run.RunFiles ``files``; None: its data, whatever else it has)."""
    from .run import RunFiles, outputs

    files = files or RunFiles(workbook=False)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("variant_hash") == run_hash and all((folder / n).is_file()
                                                            for n in outputs(files))


def run_batch(plan: Plan, out_dir: str | Path, *, progress: bool | None = None,
              echo: Callable[[str], None] = lambda _msg: None,
              plotlyjs: str = "file", workbooks: bool = False) -> Outcome:
    """Run every unfinished variant of ``plan`` into ``out_dir``; rebuild batch_summary.csv.

    Every page loads plotly.js as ``plotlyjs`` says (plotly_js.CHOICES): by
    default from one ``out_dir/plotly.min.js`` rather than a copy inside each page.
    ``workbooks``: each variant writes its results.xlsx too (batch_summary.xlsx, a row a
    variant, is written either way)."""
    from .reports import BATCH_REPORT_FILE, SUMMARY_FILE, write_batch_report
    from .run import RunFiles
    from .workbook import SUMMARY_WORKBOOK, write_batch_workbook

    files = RunFiles(plotlyjs, workbook=workbooks, sensitivity=False)   # (checks plotlyjs)
    out = Path(out_dir)
    outcome = Outcome()
    with _locked(out):
        _remove_leftovers(out)
        # every variant's folder may be written, or the batch writes nothing
        problems = [p for r in plan.runs if (p := folder_problem(out / r.name))]
        if problems:
            raise FolderInUse(problems[0] + (f" (and {len(problems) - 1} more)"
                                             if len(problems) > 1 else ""))
        width = len(str(len(plan.runs)))
        todo = []
        for i, r in enumerate(plan.runs, start=1):
            tag = f"[{i:>{width}}/{len(plan.runs)}] {r.name}"
            if is_finished(out / r.name, r.hash, files):
                _skip(out, r, tag, plotlyjs, outcome, echo)
            else:
                todo.append((tag, r))
        for tag, r, done, seconds in _run_variants(todo, out, files, progress):
            if isinstance(done, Exception):
                outcome.failed[r.name] = f"{type(done).__name__}: {done}"
                echo(f"{tag}: FAILED: {done}")
                continue
            outcome.ran.append(r.name)
            echo(f"{tag}: {r.paths:,} paths in {seconds:.1f} s"
                 + (f" (replaced: {done})" if done else ""))
        table = summary_table(plan, out, outcome.failed)
        outcome.summary_path = out / SUMMARY_FILE
        outcome.summary_written = write_text_atomic(outcome.summary_path,
                                                    table.to_csv(index=False))
        book = out / SUMMARY_WORKBOOK
        if outcome.summary_written or not book.exists():   # (the same table: kept as it is)
            write_batch_workbook(book, table)
        outcome.report_path = out / BATCH_REPORT_FILE
        try:
            outcome.report_written = write_batch_report(out, plotlyjs)
        except Exception as exc:  # noqa: BLE001 - a report problem must not lose the results
            outcome.report_error = f"{type(exc).__name__}: {exc}"
            echo(f"{BATCH_REPORT_FILE}: FAILED: {outcome.report_error}")
    return outcome


def _skip(out: Path, r: PlannedRun, tag: str, plotlyjs: str, outcome: Outcome, echo) -> None:
    """A variant finished earlier: skipped, its page rebuilt if it loads plotly.js
    otherwise than this batch asks."""
    outcome.skipped.append(r.name)
    try:
        repaged = _load_plotlyjs_as(out / r.name, plotlyjs)
    except Exception as exc:  # noqa: BLE001 - its results stand; the others run
        outcome.failed[r.name] = f"report.html not rebuilt: {type(exc).__name__}: {exc}"
        echo(f"{tag}: finished earlier; {outcome.failed[r.name]}")
        return
    echo(f"{tag}: finished earlier, skipped"
         + (f" (report.html rebuilt: plotly.js {plotlyjs})" if repaged else ""))


def _run_variants(todo: list, out: Path, files, progress):
    """(tag, run, what it replaced or the exception, seconds) for each variant to run:
    one after another here, or all at once on the Dask cluster in use (each worker
    running whole variants and sending back their files, written here)."""
    from . import cluster
    from .run import run_scenario, variant_files
    if cluster.active() is None:
        if todo:
            _load_kernels(todo[0][1].variant.loaded.scenario, progress)
        for tag, r in todo:
            t0 = time.perf_counter()
            try:
                done = run_scenario(r.variant.loaded, out, paths=r.paths, seed=r.seed,
                                    progress=progress, manifest_extra=_manifest_extra(r),
                                    files=files)
            except Exception as exc:  # noqa: BLE001 - one bad variant must not stop the night
                yield tag, r, exc, 0.0
                continue
            yield tag, r, done.replaced, time.perf_counter() - t0
        return
    plotly_js.provide(out, files.plotlyjs)
    tags = {r.name: tag for tag, r in todo}
    work = [(r, {"paths": r.paths, "seed": r.seed, "manifest_extra": _manifest_extra(r),
                 "files": files}) for _, r in todo]
    for r, found in cluster.run_variants(variant_files, work):
        if isinstance(found, Exception):
            yield tags[r.name], r, found, 0.0
            continue
        contents, seconds = found   # (seconds on its worker, not since the batch began)
        replaced = _write_variant(out / r.name, contents, cluster.description())
        yield tags[r.name], r, replaced, seconds


def _load_kernels(scenario, progress: bool | None) -> None:
    """The kernels loaded, or compiled on two cores (precompile.load_kernels) if the
    cache has none, before the first variant runs. A scenario that cannot run is left
    for its variant to report: its kernels are then compiled as the batch goes on."""
    from .precompile import load_kernels
    try:
        load_kernels(scenario, say=progress is not False)
    except Exception:  # noqa: BLE001 - the variant's own run says what is wrong
        pass


def _write_variant(folder: Path, files: dict[str, bytes], where: dict) -> str | None:
    """A variant's files from a worker into its folder (atomically), its manifest saying
    on which cluster it ran; what it replaced there."""
    from . import io
    from .run import previous_run, replaced_text
    manifest = json.loads(files["manifest.json"])
    manifest["cluster"] = where
    previous = previous_run(folder)
    with io.atomic_folder(folder) as tmp:
        for name, content in files.items():
            if name != "manifest.json":
                (tmp / name).write_bytes(content)
        io.write_json(tmp / "manifest.json", manifest)
    return replaced_text(previous, manifest)


def _load_plotlyjs_as(folder: Path, plotlyjs: str) -> bool:
    """Rebuild a finished variant's report.html if it loads plotly.js otherwise than the
    batch asks (a rerun with another --plotlyjs, or results of an older sibsim), so that
    every page of the batch loads it one way; True if it did."""
    from .reports import write_report

    manifest = json.loads((folder / "manifest.json").read_text())
    if plotly_js.recorded(manifest) == plotlyjs:
        return False
    write_report(folder, plotlyjs)
    return True


def _manifest_extra(r: PlannedRun) -> dict[str, Any]:
    v = r.variant
    return {"variant_hash": r.hash,
            "variant": {"kind": v.kind, "base": v.base, "file": str(v.file),
                        "change": v.change},
            **v.loaded.manifest_extra()}


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchBusy(f"another sibsim batch is writing to {out}") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock (as does the process dying)


def _remove_leftovers(out: Path) -> None:
    """Hidden temporary folders and files left by a write that was killed (a workbook's
    ends .tmp.xlsx: pandas writes a workbook only to a name ending .xlsx)."""
    for p in out.iterdir():
        if p.name.startswith(".") and p.name.endswith((".tmp", ".old", ".tmp.xlsx")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# --------------------------------------------------------------------------- summary
def _read_paths(folder: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    present = set(pq.read_schema(folder / "paths.parquet").names)
    return pd.read_parquet(folder / "paths.parquet",
                           columns=[c for c in HEADLINE_COLUMNS if c in present])


def format_change(change: dict) -> str:
    return "; ".join(f"{k}={_flow(v)}" for k, v in change.items())


def _flow(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def describe(variant: Variant, base: Variant | None) -> str:
    """The variant in one line: its scenario's description, or, where it has none of its
    own (a stress without one, a sweep point, a file extending a base without one), its
    base's followed by what it changes."""
    own = " ".join(variant.loaded.scenario.description.split())
    if base is None:
        return own
    inherited = " ".join(base.loaded.scenario.description.split())
    if own != inherited:
        return own
    from .reports import with_change

    change = format_change(_varied(variant.change))
    return with_change(inherited, change) if inherited else f"{base.name} with {change}."


def _varied(change: dict) -> dict:
    """What a variant changes in its model (a stress's own description is not a change)."""
    return {k: v for k, v in change.items() if k != "description"}


def summary_table(plan: Plan, out: Path, failed: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per variant: what it is, its headline figures, standard errors and paired
    differences."""
    failed = failed or {}
    runs = {r.name: r for r in plan.runs}
    cache: dict[str, tuple[dict, pd.DataFrame] | None] = {}

    def load(name: str):
        if name not in cache:
            r = runs.get(name)
            folder = out / name
            cache[name] = ((json.loads((folder / "summary.json").read_text()), _read_paths(folder))
                           if r is not None and is_finished(folder, r.hash) else None)
        return cache[name]

    rows = []
    bases = {r.variant.base for r in plan.runs if r.variant.base}
    for r in plan.runs:
        v = r.variant
        base_run = runs.get(v.base) if v.base else None
        row: dict[str, Any] = {
            "scenario": v.name, "kind": v.kind, "base": v.base or "",
            "description": describe(v, base_run.variant if base_run else None),
            "file": str(v.file), "change": format_change(_varied(v.change)), "seed": r.seed,
            "paths": r.paths, "variant_hash": r.hash[:16]}
        mine = load(v.name)
        base = load(v.base) if v.base else None
        paired = (mine is not None and base is not None and base_run.seed == r.seed
                  and base_run.paths == r.paths)
        row["paired"] = paired if v.base else ""
        row["status"] = ("ok" if mine is not None else
                         f"failed: {failed[v.name]}" if v.name in failed else "not run")
        for m in compare.HEADLINE_METRICS:
            row.update(_metric_cells(m, mine, base, paired))
        rows.append(row)
        if v.name not in bases:
            cache.pop(v.name, None)  # only bases are needed again
    return pd.DataFrame(rows)


def _metric_cells(m: str, mine, base, paired: bool) -> dict[str, float]:
    cells = {m: math.nan, f"{m}_se": math.nan, f"{m}_diff": math.nan, f"{m}_diff_se": math.nan}
    if mine is None:
        return cells
    summary, frame = mine
    try:
        value = compare.metric_value(summary, m)
    except KeyError:
        return cells  # e.g. no investor figures in a scenario without finance
    se = compare.standard_error(m, frame, summary)
    cells.update({m: value, f"{m}_se": _nan(se)})
    if base is None:
        return cells
    try:
        base_value = compare.metric_value(base[0], m)
    except KeyError:
        return cells
    cells[f"{m}_diff"] = value - base_value
    if paired:
        cells[f"{m}_diff_se"] = _nan(compare.paired_difference_se(m, frame, base[1]))
    else:
        base_se = compare.standard_error(m, base[1], base[0])
        cells[f"{m}_diff_se"] = float(np.hypot(_nan(se), _nan(base_se)))
    return cells


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
