"""``sibsim baseline``: a fair contract baseline from an untreated comparison group."""
from __future__ import annotations

import sys

import click

from .options import EXIT_INVALID, SEED, load_or_exit, set_option


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=100), default=4000, show_default=True,
              help="Paths of the comparison group.")
@click.option("--seed", type=SEED, help="Seed (default: the scenario's + 1: other young "
                                        "people than a run's).")
@set_option
def baseline(file: str, paths: int, seed: int | None, assignments: tuple[str, ...] = ()
             ) -> None:
    """Print a fair contract baseline for scenario FILE: the care proportion a comparison
    group of its young people, untreated, shows quarter by quarter since tracking start,
    as a contract.baseline_care_proportion line to paste into a scenario."""
    loaded = load_or_exit(file, assignments)
    from ..baseline import as_yaml, comparison_curve, comparison_seed
    from ..engine import ParameterError

    scenario = loaded.scenario
    seed = comparison_seed(scenario) if seed is None else seed
    try:
        curve = comparison_curve(scenario, paths=paths, seed=seed)
    except ParameterError as exc:
        click.echo(f"error: {loaded.path}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(as_yaml(scenario, curve, paths, seed), nl=False)
