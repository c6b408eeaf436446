"""One scenario run end to end: simulate, then write its result folder atomically."""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import engine, io, metrics, narrative, plotly_js, reports, workbook
from .yamlfiles import LoadedScenario


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
    (engine.simulate_unchecked), if not run yet: run while the figures are worked out,
    and nothing is written unless they pass."""
    scenario = loaded.scenario
    paths = len(result.paths)
    meta = io.manifest(scenario_name=scenario.name, scenario_file=str(loaded.path),
                       scenario_sha256=loaded.sha256, seed=result.seed, paths=paths,
                       chunk_paths=timing.chunk_paths, threads=engine.threads(),
                       started=timing.started, finished=timing.finished,
                       extra={"outputs": outputs(files), **(manifest_extra or {}),
                              "plotlyjs": files.plotlyjs, **_cluster()})
    # the quarterly table's kernels (on every core, the GIL released) and the checks
    # alongside the summary and chart data, which are numpy and pandas on one core
    with ThreadPoolExecutor(2) as pool:
        checked = pool.submit(checks or (lambda: None))
        try:
            table = pool.submit(metrics.quarters_table, result)
            summary = metrics.summary(result) if summary is None else summary
            charts = {**reports.chart_data(result),
                      "inputs": _columns(workbook.inputs_frame(loaded))}
            quarters = table.result()
        finally:
            checked.result()   # a failed check's error, rather than any it led to
    if files.sensitivity:
        charts["sensitivity"] = narrative.quick_sensitivity(
            loaded, result.seed, min(paths, narrative.SENSITIVITY_PATHS))
    # built from the same values `sibsim report` reads back, so a rebuild is byte-identical
    columns = [c for c in reports.PATH_COLUMNS if c in result.paths]
    report = reports.build_report(reports.RunData(summary, meta, quarters, charts,
                                                  result.paths[columns]))
    folder = Path(out_dir) / scenario.name
    previous = previous_run(folder)
    plotly_js.provide(out_dir, files.plotlyjs)   # before the page that loads it
    with io.atomic_folder(folder) as tmp:
        io.write_parquet(tmp / "paths.parquet", result.paths,
                         {k: meta[k] for k in ("scenario", "seed", "paths", "package_version")})
        io.write_parquet(tmp / "quarters.parquet", quarters)
        io.write_json(tmp / "summary.json", summary)
        io.write_json(tmp / reports.CHARTS_FILE, charts, compact=True)
        with io.naming_errors(tmp / reports.REPORT_FILE):
            (tmp / reports.REPORT_FILE).write_text(report, encoding="utf-8")
        if files.workbook:
            with io.naming_errors(tmp / workbook.WORKBOOK_FILE):
                workbook.write_workbook(tmp / workbook.WORKBOOK_FILE, summary, quarters,
                                        result.paths, loaded)
        io.write_json(tmp / "manifest.json", meta)
    return RunOutput(folder, result, meta, summary, replaced_text(previous, meta))


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
