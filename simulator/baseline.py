"""A fair comparison-group baseline, derived from the counterfactual model.

A contract pays for care days saved against its baseline care proportion. A flat
historical proportion (Essex: 55% over the whole 30 months) pays for days that the
young people would have stayed out of care anyway early in their window, when the
untreated care proportion is far below its average. A comparison group of the same
young people, untreated, would instead show the counterfactual care proportion quarter
by quarter since tracking start: that curve is what :func:`comparison_curve` returns,
simulated on other young people than a run's (the scenario's seed + 1 by default), so
that a contract using it does not pay against the very paths it is run on.
"""
from __future__ import annotations

import numpy as np

from . import engine
from . import layout as L
from .schema import Scenario


def comparison_seed(scenario: Scenario) -> int:
    """The comparison group's seed unless one is given: other young people than a run's."""
    return scenario.simulation.seed + 1


def comparison_curve(scenario: Scenario, paths: int = 4000, seed: int | None = None
                     ) -> list[float]:
    """The untreated care proportion by quarter since tracking start (care days / child
    days over every path's young people), one value per quarter of the tracking window."""
    seed = comparison_seed(scenario) if seed is None else seed
    result = engine.simulate(scenario, paths=paths, seed=seed)
    q = result.by_tracking_quarter
    child = q[:, :, L.Q_CHILD_DAYS].sum(axis=0)
    care = q[:, :, L.Q_CARE_COUNTERFACTUAL].sum(axis=0)
    if np.any(child <= 0):
        empty = int(np.argmax(child <= 0)) + 1
        raise engine.ParameterError(
            f"no young person is tracked in quarter {empty} of the window on any of "
            f"{paths:,} paths: no comparison-group proportion for it")
    return [round(float(x), 4) for x in care / child]


def as_yaml(scenario: Scenario, curve: list[float], paths: int, seed: int) -> str:
    """The curve as a line to paste into a scenario, or a file that extends it."""
    since = scenario.calendar.tracking_from.replace("_", " ")
    values = ", ".join(f"{x:.4f}" for x in curve)
    return (f"# {scenario.name}: untreated care proportion by quarter since {since}, "
            f"{paths:,} paths, seed {seed}\n"
            f"# (what a comparison group of the same young people without the service "
            f"would show)\n"
            f"contract.baseline_care_proportion: [{values}]\n")
