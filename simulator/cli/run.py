"""``sibsim run``: simulate one scenario, write its results and print the headline figures."""
from __future__ import annotations

import time

import click

from .options import (
    EXIT_FAILED,
    OUT_FOLDER,
    SEED,
    cluster_options,
    fail_unwritten,
    load_or_exit,
    plotlyjs_option,
    set_option,
)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=1),
              help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=SEED, help="Random seed (default: the scenario's).")
@click.option("--chunk-paths", type=click.IntRange(min=1), help="Paths per chunk (memory only).")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=OUT_FOLDER, help="Results folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@plotlyjs_option("inline")
@set_option
@cluster_options
def run(file: str, paths: int | None, seed: int | None, chunk_paths: int | None,
        out_dir: str, quiet: bool, plotlyjs: str, assignments: tuple[str, ...] = ()) -> None:
    """Simulate scenario FILE; write OUT/<name>/ paths.parquet, quarters.parquet, summary.json,
    charts.json, report.html, manifest.json, and print the headline figures."""
    loaded = load_or_exit(file, assignments)
    from pathlib import Path

    from ..engine import ConservationError, ParameterError, check_memory
    from ..invariants import FinancialInvariantError
    from ..io import FolderInUse, folder_problem
    from ..precompile import load_kernels
    from ..run import RunFiles, run_scenario

    try:
        # before a possible compile: a run too big for memory is refused at once
        check_memory(loaded.scenario, paths or loaded.scenario.simulation.paths)
        problem = folder_problem(Path(out_dir) / loaded.scenario.name)   # before, not after
        if problem:
            raise FolderInUse(problem)
        # compiled (first run after installing or a change) or loaded before the clock
        # starts, so that the rate printed is the simulation's
        load_seconds = load_kernels(loaded.scenario, say=not quiet)
        t0 = time.perf_counter()
        output = run_scenario(loaded, out_dir, paths=paths, seed=seed, chunk_paths=chunk_paths,
                              progress=None if not quiet else False,
                              manifest_extra=loaded.manifest_extra(),
                              files=RunFiles(plotlyjs))
    except ParameterError as exc:
        fail_unwritten(loaded.path, exc)
    except (ConservationError, FinancialInvariantError) as exc:   # a defect, not bad input
        fail_unwritten(loaded.path, exc, EXIT_FAILED)
    elapsed = time.perf_counter() - t0
    if not quiet:
        if load_seconds > 5.0:
            click.echo(f"(kernels compiled in {load_seconds:.0f} s, kept for later runs)", err=True)
        _print_headline(output, elapsed)


def _print_headline(output, elapsed: float) -> None:
    from ..metrics import headline_rows

    n = len(output.result.paths)
    simulated = output.manifest["elapsed_seconds"]
    # the simulation's own rate, and the rest: the figures, the report and the files
    click.echo(f"{output.result.scenario.name}: {n:,} paths in {elapsed:.1f} s (simulated in "
               f"{simulated:.2f} s, {n / max(simulated, 1e-9):,.0f} paths/s; figures, report "
               f"and files {max(elapsed - simulated, 0.0):.2f} s) -> {output.folder}")
    if output.replaced:
        click.echo(f"  (replaced the results there: {output.replaced})")
    rows = headline_rows(output.summary)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")
