"""The ``sibsim`` command line (click): baseline, validate, schema, run, calibrate; batch,
breakeven and sensitivity live in :mod:`simulator.cli_batch`, report in
:mod:`simulator.cli_report`."""
from __future__ import annotations

import json
import sys
import time

import click

from . import __version__
from .loader import ScenarioError, load_scenarios
from .cli_batch import OUT_FILE, OUT_FOLDER, SEED

EXIT_INVALID = 2
EXIT_FAILED = 1


def _fail_invalid(exc: ScenarioError) -> None:
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    n = len(exc.problems)
    click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.", err=True)
    sys.exit(EXIT_INVALID)


class _Commands(click.Group):
    """The sibsim group. An operating-system error that escapes a command (a disk that
    fills up, a folder removed mid-run) is one line naming the file, and exit status 1,
    not a traceback; what was being written is not left half-written (io writes every
    output through a temporary file or folder and one rename)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise   # click's own: output piped into a reader that stopped
        except OSError as exc:
            from .io import os_error_text

            click.echo(f"error: {os_error_text(exc)}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sibsim")
def main() -> None:
    """Monte Carlo cash-flow simulator for social impact bonds."""
    from .startup import resume_collector

    resume_collector(click.get_current_context().invoked_subcommand)


from .cli_batch import register as _register_batch_commands  # noqa: E402

_register_batch_commands(main)  # batch, breakeven, sensitivity

from .cli_report import register as _register_report_command  # noqa: E402

_register_report_command(main)  # report


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=100), default=4000, show_default=True,
              help="Paths of the comparison group.")
@click.option("--seed", type=SEED, help="Seed (default: the scenario's + 1: other young "
                                        "people than a run's).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a key, as in run. Repeatable.")
def baseline(file: str, paths: int, seed: int | None, assignments: tuple[str, ...] = ()
             ) -> None:
    """Print a fair contract baseline for scenario FILE: the care proportion a comparison
    group of its young people, untreated, shows quarter by quarter since tracking start,
    as a contract.baseline_care_proportion line to paste into a scenario."""
    from .compose import load_with_assignments

    try:
        loaded = load_with_assignments(file, assignments)
    except ScenarioError as exc:
        _fail_invalid(exc)
    from .baseline import as_yaml, comparison_curve
    from .engine import ParameterError

    scenario = loaded.scenario
    seed = scenario.simulation.seed + 1 if seed is None else seed
    try:
        curve = comparison_curve(scenario, paths=paths, seed=seed)
    except ParameterError as exc:
        click.echo(f"error: {loaded.path}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(as_yaml(scenario, curve, paths, seed), nl=False)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check scenario FILES against the schema; report every problem with file, line and key."""
    from .compose import validate_files

    try:
        loaded = validate_files(files)  # also resolves extends, stresses and sweeps
    except ScenarioError as exc:
        _fail_invalid(exc)
    for item, n_variants in loaded:
        more = f", {n_variants} stress and sweep variants" if n_variants else ""
        click.echo(f"ok: {item.path} ({item.scenario.name}{more})")


@main.command()
def schema() -> None:
    """Print the scenario JSON Schema (for editor autocompletion of YAML files)."""
    from .schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=1), help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=SEED, help="Random seed (default: the scenario's).")
@click.option("--chunk-paths", type=click.IntRange(min=1), help="Paths per chunk (memory only).")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=OUT_FOLDER, help="Results folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a key, validated like the file: KEY=VALUE, or 'KEY={scale: 0.7}' "
                   "/ {power: 0.5} / {add: 6}. Repeatable.")
def run(file: str, paths: int | None, seed: int | None, chunk_paths: int | None,
        out_dir: str, quiet: bool, assignments: tuple[str, ...] = ()) -> None:
    """Simulate scenario FILE; write OUT/<name>/ paths.parquet, quarters.parquet, summary.json,
    charts.json, report.html, manifest.json, and print the headline figures."""
    from .compose import load_with_assignments

    try:
        loaded = load_with_assignments(file, assignments)  # resolves extends too
    except ScenarioError as exc:
        _fail_invalid(exc)
    from .engine import ConservationError, ParameterError, check_memory, load_kernels
    from .invariants import FinancialInvariantError
    from .run import run_scenario

    try:
        # before a possible compile: a run too big for memory is refused at once
        check_memory(loaded.scenario, paths or loaded.scenario.simulation.paths)
        # compiled (first run after installing or a change) or loaded before the clock
        # starts, so that the rate printed is the simulation's
        load_seconds = load_kernels(loaded.scenario, say=not quiet)
        t0 = time.perf_counter()
        output = run_scenario(loaded, out_dir, paths=paths, seed=seed, chunk_paths=chunk_paths,
                              progress=None if not quiet else False,
                              manifest_extra=loaded.manifest_extra())
    except ParameterError as exc:
        click.echo(f"error: {loaded.path}: {exc}; nothing was written.", err=True)
        sys.exit(EXIT_INVALID)
    except (ConservationError, FinancialInvariantError) as exc:   # a defect, not bad input
        click.echo(f"error: {loaded.path}: {exc}; nothing was written.", err=True)
        sys.exit(EXIT_FAILED)
    elapsed = time.perf_counter() - t0
    if not quiet:
        if load_seconds > 5.0:
            click.echo(f"(kernels compiled in {load_seconds:.0f} s, kept for later runs)", err=True)
        _print_headline(output, elapsed)


def _print_headline(output, elapsed: float) -> None:
    from .metrics import headline_rows

    n = len(output.result.paths)
    simulated = output.manifest["elapsed_seconds"]
    # the simulation's own rate, and the rest: the figures, the report and the files
    click.echo(f"{output.result.scenario.name}: {n:,} paths in {elapsed:.1f} s (simulated in "
               f"{simulated:.2f} s, {n / max(simulated, 1e-9):,.0f} paths/s; figures, report "
               f"and files {max(elapsed - simulated, 0.0):.2f} s) -> {output.folder}")
    rows = headline_rows(output.summary)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


@main.command()
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
def calibrate(scenario_file: str, targets_file: str, free: tuple[str, ...], out_file: str | None,
              paths: int, check_paths: int, seed: int | None, max_evaluations: int) -> None:
    """Fit --free parameters of SCENARIO_FILE to published figures on common random numbers;
    print published vs simulated (95% interval) per target; write the fitted scenario."""
    import datetime as dt
    from pathlib import Path

    from . import calibrate as cal
    from . import engine
    from .compose import load_with_assignments
    from .io import write_text_atomic
    from .loader import read_text

    try:
        loaded = load_with_assignments(scenario_file)   # as run reads it: extends too
        targets = cal.load_targets(targets_file).targets
    except ScenarioError as exc:
        _fail_invalid(exc)
    if free and not out_file:
        raise click.UsageError("--free needs --out FILE for the fitted scenario")
    scenario = loaded.scenario
    seed = scenario.simulation.seed if seed is None else seed
    try:   # before the fit, not after it
        engine.check_memory(scenario, max(check_paths, paths if free else 0))
    except engine.NotEnoughMemory as exc:
        click.echo(f"error: {scenario_file}: {exc}; nothing was written.", err=True)
        sys.exit(EXIT_INVALID)
    try:
        cal.check_quantities(scenario, targets, targets_file)
    except ScenarioError as exc:
        _fail_invalid(exc)
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
            click.echo(f"error: {scenario_file}: {exc}; nothing was written.", err=True)
            sys.exit(EXIT_INVALID)
        for key, value in fit.values.items():
            click.echo(f"  {key} = {cal._round(value)}")
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
        from .compose import load_composed
        scenario = load_composed(scenario_file, {key: float(cal._round(value))
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
