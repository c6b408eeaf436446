"""One scenario run end to end: simulate, then write its result folder atomically."""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import engine, io, metrics, narrative, plotly_js, reports, workbook
from .yamlfiles import LoadedScenario

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunOutput:
    folder: Path
    result: engine.SimulationResult
    manifest: dict
    summary: dict
    replaced: str | None = None   # what the run replaced in its folder (replaced_text)


def previous_run(folder: Path) -> dict | None:
    """The manifest of the results a run would replace in ``folder``, if any."""
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def replaced_text(previous: dict | None, manifest: dict) -> str | None:
    """What a run replaced, in words (None: nothing), saying so when the earlier results
    were another scenario's (another file or other contents under the same name)."""
    if not previous:
        return None
    what = (f"{previous.get('scenario', '?')}, {previous.get('paths', 0):,} paths, seed "
            f"{previous.get('seed', '?')}")
    other = previous.get("scenario_sha256") != manifest.get("scenario_sha256")
    return f"{'another scenario: ' if other else ''}{what}"


@dataclass(frozen=True)
class RunFiles:
    """What a run writes beside its data: how report.html loads plotly.js
    (plotly_js.CHOICES), whether it writes results.xlsx, and whether its report carries
    the quick paired sensitivity (narrative.quick_sensitivity). A batch variant writes
    neither of the last two by default: batch_summary.xlsx and the batch report compare
    the variants."""

    plotlyjs: str = "inline"
    workbook: bool = True
    sensitivity: bool = True

    def __post_init__(self):
        plotly_js.checked(self.plotlyjs)   # a bad choice refused before any work


def run_scenario(loaded: LoadedScenario, out_dir: str | Path, *, paths: int | None = None,
                 seed: int | None = None, chunk_paths: int | None = None,
                 progress: bool | None = None, manifest_extra: dict | None = None,
                 files: RunFiles = RunFiles()) -> RunOutput:
    """Simulate ``loaded``; write its folder ``out_dir/<name>`` (:func:`write_run`).

    ``manifest_extra`` adds keys to manifest.json (a composed scenario's sources and
    overrides, a batch variant's hash)."""
    sim = loaded.scenario.simulation
    chunk_paths = sim.chunk_paths if chunk_paths is None else chunk_paths
    started = dt.datetime.now(dt.UTC)
    result, checks = engine.simulate_unchecked(loaded.scenario, paths=paths, seed=seed,
                                               chunk_paths=chunk_paths, progress=progress)
    finished = dt.datetime.now(dt.UTC)
    return write_run(loaded, result, out_dir, Timing(started, finished, chunk_paths),
                     manifest_extra=manifest_extra, files=files, checks=checks)


@dataclass(frozen=True)
class Timing:
    """When a simulation ran, and in chunks of how many paths (for its manifest)."""

    started: dt.datetime
    finished: dt.datetime
    chunk_paths: int


def outputs(files: RunFiles) -> list[str]:
    """The files a run's folder holds."""
    return ["paths.parquet", "quarters.parquet", "summary.json", reports.CHARTS_FILE,
            reports.REPORT_FILE, *([workbook.WORKBOOK_FILE] if files.workbook else []),
            "manifest.json"]


def write_run(loaded: LoadedScenario, result: engine.SimulationResult, out_dir: str | Path,
              timing: Timing, *, summary: dict | None = None,
              manifest_extra: dict | None = None, files: RunFiles = RunFiles(),
              checks: Callable[[], None] | None = None) -> RunOutput:
    """Write a simulation's folder ``out_dir/<name>`` atomically (:func:`outputs`), and
    with ``files.plotlyjs == "file"`` also ``out_dir/plotly.min.js``, which the page
    loads (``summary``: metrics.summary(result), if made already). The report's data
    (charts.json) holds every input with its source. ``checks``: the result's checks
    (engine.simulate_unchecked), if not run yet: run while the files are made, and
    nothing is written unless they pass."""
    scenario = loaded.scenario
    paths = len(result.paths)
    meta = io.manifest(scenario_name=scenario.name, scenario_file=str(loaded.path),
                       scenario_sha256=loaded.sha256, seed=result.seed, paths=paths,
                       chunk_paths=timing.chunk_paths, threads=engine.threads(),
                       started=timing.started, finished=timing.finished,
                       extra={"outputs": outputs(files), **(manifest_extra or {}),
                              "plotlyjs": files.plotlyjs, **_cluster()})
    checks = checks or _passed
    with ThreadPoolExecutor(2) as pool:
        with _checks_first(checks):
            summary, charts, quarters = _figures(loaded, result, summary, pool)
        # the checks on the core that the report and workbook, one-core Python, leave idle
        checked = pool.submit(checks)
        with _checks_first(checked.result):
            folder = Path(out_dir) / scenario.name
            previous = previous_run(folder)
            with io.atomic_folder(folder) as tmp:
                # the frame of paths' parquet (pyarrow, the GIL released) alongside the rest
                frame = pool.submit(_write_paths, tmp, result.paths, meta)
                try:
                    _write_files(tmp, loaded, result, files,
                                 reports.RunData(summary, meta, quarters, charts,
                                                 _report_columns(result.paths)))
                finally:
                    wait([frame])   # (before the folder can be removed beneath it)
                    frame.result()   # its error first, if any: the file begun first
                checked.result()
                plotly_js.provide(out_dir, files.plotlyjs)   # before the page that loads it
    return RunOutput(folder, result, meta, summary, replaced_text(previous, meta))


def _passed() -> None:
    """The checks of a result checked already."""


@contextmanager
def _checks_first(checked: Callable[[], None]) -> Iterator[None]:
    """On an error, wait for the checks: a failed check's error is raised rather than
    any it led to (figures of outputs that do not add up)."""
    try:
        yield
    except BaseException:
        checked()
        raise


def _figures(loaded: LoadedScenario, result: engine.SimulationResult, summary: dict | None,
             pool: ThreadPoolExecutor) -> tuple[dict, dict, pd.DataFrame]:
    """The summary, the chart data and the quarterly table: the table's kernels on every
    core (the GIL released) alongside the rest, numpy and pandas on one."""
    table = pool.submit(metrics.quarters_table, result)
    try:
        summary = metrics.summary(result) if summary is None else summary
        charts = {**reports.chart_data(result),
                  "inputs": _columns(workbook.inputs_frame(loaded))}
    finally:
        wait([table])
    return summary, charts, table.result()


def _report_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of the frame of paths the report reads: the same values `sibsim
    report` reads back from paths.parquet, so that a rebuilt page is byte-identical."""
    return frame[[c for c in reports.PATH_COLUMNS if c in frame]]


def _write_paths(tmp: Path, frame: pd.DataFrame, meta: dict) -> None:
    """paths.parquet into the folder tmp, with the figures that say which run it is."""
    keys = ("scenario", "seed", "paths", "package_version")
    io.write_parquet(tmp / "paths.parquet", frame, {k: meta[k] for k in keys})


def _write_files(tmp: Path, loaded: LoadedScenario, result: engine.SimulationResult,
                 files: RunFiles, data: reports.RunData) -> None:
    """A run's files but paths.parquet into the folder tmp: first those of one-core
    Python (the workbook), leaving a core to the checks and paths.parquet, then the
    quick sensitivity (on every core) and the report."""
    if files.workbook:
        with io.naming_errors(tmp / workbook.WORKBOOK_FILE):
            workbook.write_workbook(tmp / workbook.WORKBOOK_FILE, data.summary, data.quarters,
                                    result.paths, loaded)
    io.write_parquet(tmp / "quarters.parquet", data.quarters)
    io.write_json(tmp / "summary.json", data.summary)
    if files.sensitivity:
        data.charts["sensitivity"] = narrative.quick_sensitivity(
            loaded, result.seed, min(len(result.paths), narrative.SENSITIVITY_PATHS))
    io.write_json(tmp / reports.CHARTS_FILE, data.charts, compact=True)
    report = reports.build_report(data)
    with io.naming_errors(tmp / reports.REPORT_FILE):
        (tmp / reports.REPORT_FILE).write_text(report, encoding="utf-8")
    io.write_json(tmp / "manifest.json", data.manifest)


def _cluster() -> dict:
    """The Dask cluster the run's paths went to, for its manifest (none: a local run)."""
    from .cluster import description
    where = description()
    return {"cluster": where} if where else {}


def _columns(frame) -> dict[str, list]:
    """A frame as JSON-ready columns and rows (missing values as None): a third the size
    of a dict a row, in a file every variant of a batch writes."""
    rows = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return {"columns": list(frame.columns), "rows": rows}


def variant_files(loaded: LoadedScenario, kwargs: dict) -> tuple[dict[str, bytes], float]:
    """On a Dask worker: a batch variant run as ``sibsim run`` would, into a folder of
    its own; its files' contents (the batch writes them, so workers need no shared disk)
    and the seconds the run took."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        folder = run_scenario(loaded, out, progress=False, **kwargs).folder
        contents = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}
    return contents, time.perf_counter() - t0
