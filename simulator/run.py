"""One scenario run end to end: simulate, then write its result folder atomically."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from . import engine, io
from .loader import LoadedScenario


@dataclass
class RunOutput:
    folder: Path
    result: engine.SimulationResult
    manifest: dict


def run_scenario(loaded: LoadedScenario, out_dir: str | Path, *, paths: int | None = None,
                 seed: int | None = None, chunk_paths: int | None = None,
                 progress: bool | None = None) -> RunOutput:
    """Simulate ``loaded`` and write ``out_dir/<name>/paths.parquet`` and ``manifest.json``."""
    scenario = loaded.scenario
    sim = scenario.simulation
    paths = sim.paths if paths is None else paths
    seed = sim.seed if seed is None else seed
    chunk_paths = sim.chunk_paths if chunk_paths is None else chunk_paths
    started = dt.datetime.now(dt.timezone.utc)
    result = engine.simulate(scenario, paths=paths, seed=seed, chunk_paths=chunk_paths,
                             progress=progress)
    finished = dt.datetime.now(dt.timezone.utc)
    meta = io.manifest(scenario_name=scenario.name, scenario_file=str(loaded.path),
                       scenario_sha256=loaded.sha256, seed=seed, paths=paths,
                       chunk_paths=chunk_paths, started=started, finished=finished,
                       extra={"outputs": ["paths.parquet", "manifest.json"]})
    folder = Path(out_dir) / scenario.name
    with io.atomic_folder(folder) as tmp:
        io.write_parquet(tmp / "paths.parquet", result.paths,
                         {k: meta[k] for k in ("scenario", "seed", "paths", "package_version")})
        io.write_json(tmp / "manifest.json", meta)
    return RunOutput(folder, result, meta)
