"""``sibsim calibrate``: fit parameters of a scenario to published figures, and compare."""
from __future__ import annotations

import time

import click

from ..yamlfiles import ScenarioError
from .options import OUT_FILE, SEED, cluster_options, fail_invalid, fail_unwritten


@click.command()
@click.argument("scenario_file", type=click.Path(dir_okay=False))
@click.option("--targets", "targets_file", required=True, type=click.Path(dir_okay=False),
              help="Targets YAML (published figures, tolerances, sources).")
@click.option("--free", multiple=True, metavar="KEY[+KEY...]",
              help="Parameter to fit (repeatable); KEY+KEY fits several keys to one value. "
                   "Without --free the table is printed for the scenario as it is.")
@click.option("--out", "out_file", type=OUT_FILE,
              help="Where to write the fitted scenario (comments and citations kept).")
@click.option("--paths", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Paths per evaluation while fitting.")
@click.option("--check-paths", type=click.IntRange(min=100), default=20000, show_default=True,
              help="Paths of the final run the table is computed from.")
@click.option("--seed", type=SEED, help="Seed (default: the scenario's).")
@click.option("--max-evaluations", type=click.IntRange(min=1), default=400, show_default=True)
@cluster_options
def calibrate(scenario_file: str, targets_file: str, free: tuple[str, ...], out_file: str | None,
              paths: int, check_paths: int, seed: int | None, max_evaluations: int) -> None:
    """Fit --free parameters of SCENARIO_FILE to published figures on common random numbers;
    print published vs simulated (95% interval) per target; write the fitted scenario."""
    import datetime as dt
    from pathlib import Path

    from .. import calibrate as cal
    from .. import engine
    from ..compose import load_with_assignments
    from ..io import write_text_atomic
    from ..yamlfiles import read_text

    try:
        loaded = load_with_assignments(scenario_file)   # as run reads it: extends too
        targets = cal.load_targets(targets_file).targets
    except ScenarioError as exc:
        fail_invalid(exc)
    if free and not out_file:
        raise click.UsageError("--free needs --out FILE for the fitted scenario")
    scenario = loaded.scenario
    seed = scenario.simulation.seed if seed is None else seed
    try:   # before the fit, not after it
        engine.check_memory(scenario, max(check_paths, paths if free else 0))
    except engine.NotEnoughMemory as exc:
        fail_unwritten(scenario_file, exc)
    try:
        cal.check_quantities(scenario, targets, targets_file)
    except ScenarioError as exc:
        fail_invalid(exc)
    text = read_text(scenario_file)
    t0 = time.perf_counter()
    if free:
        click.echo(f"fitting {', '.join(free)} to {sum(t.fit for t in targets)} targets "
                   f"({paths:,} paths per evaluation, seed {seed})", err=True)
        try:
            done = cal.calibrate_identified(scenario, targets, list(free), paths=paths,
                                            seed=seed, max_evaluations=max_evaluations,
                                            log=lambda m: click.echo(m, err=True))
            fit = done.fit
            note = (f"FITTED (sibsim calibrate {dt.date.today().isoformat()}) to "
                    f"{Path(targets_file).name}")
            text = cal.rewrite_values(text, fit.values, note)
        except (ValueError, KeyError) as exc:
            fail_unwritten(scenario_file, exc)
        for key, value in fit.values.items():
            click.echo(f"  {key} = {cal.round_fitted(value)}")
        click.echo(f"{fit.evaluations} evaluations, objective {fit.objective:.4f}, "
                   f"{time.perf_counter() - t0:.0f} s")
        click.echo(f"profile of the objective (fit targets, in squared tolerances), each "
                   f"parameter moved with the others held ({paths:,} paths):")
        for row in cal.profile_table(done.profiles, done.kept):
            click.echo("  " + row)
        for group in done.unidentified:
            click.echo(f"not identified: {group}: the published figures do not pin it, so "
                       f"it keeps its value in the scenario (state it as an assumption)")
        # the scenario as written: the fitted values rounded as in the file
        scenario = loaded.derive({key: float(cal.round_fitted(value))
                                  for key, value in fit.values.items()}).scenario
    result = engine.simulate(scenario, paths=check_paths, seed=seed)
    comparisons = cal.compare(result, targets)
    click.echo(f"{scenario.name}: {check_paths:,} paths, seed {seed}")
    for row in cal.table(comparisons):
        click.echo("  " + row)
    missed = [c.target.name for c in comparisons if c.target.fit and not c.ok]
    held = [c for c in comparisons if not c.target.fit]
    if held:
        click.echo(f"held out (predicted, not fitted to): "
                   f"{sum(c.ok for c in held)} of {len(held)} within tolerance")
    if out_file:
        write_text_atomic(Path(out_file), cal.relocate_extends(text, Path(scenario_file),
                                                               Path(out_file)))
        click.echo(f"fitted scenario -> {out_file}")
    if missed:
        click.echo(f"outside tolerance: {', '.join(missed)}", err=True)
