"""``sibsim baseline``: a fair contract baseline from an untreated comparison group."""
from __future__ import annotations

import sys

import click

from ..yamlfiles import ScenarioError
from .options import EXIT_INVALID, SEED, fail_invalid


@click.command()
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
    from ..compose import load_with_assignments

    try:
        loaded = load_with_assignments(file, assignments)
    except ScenarioError as exc:
        fail_invalid(exc)
    from ..baseline import as_yaml, comparison_curve
    from ..engine import ParameterError

    scenario = loaded.scenario
    seed = scenario.simulation.seed + 1 if seed is None else seed
    try:
        curve = comparison_curve(scenario, paths=paths, seed=seed)
    except ParameterError as exc:
        click.echo(f"error: {loaded.path}: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    click.echo(as_yaml(scenario, curve, paths, seed), nl=False)
