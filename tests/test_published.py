"""The calibrated Essex scenario reproduces the published record (scenarios/essex_targets.yaml).

Each target carries its source (seed file and section, or BRIEF); the assertion
message quotes it. At 20,000 paths, as the calibration issue asks.
"""
import datetime as dt

import pytest

from helpers import ESSEX, ROOT
from simulator import calibrate as C
from simulator import engine
from simulator.loader import load_scenario

PATHS = 20_000
TARGETS = C.load_targets(ROOT / "scenarios" / "essex_targets.yaml").targets
MARCH_2019 = dt.date(2019, 3, 31)


@pytest.fixture(scope="module")
def essex():
    scenario = load_scenario(ESSEX).scenario
    return scenario, engine.simulate(scenario, paths=PATHS, seed=scenario.simulation.seed)


@pytest.mark.parametrize("target", [t for t in TARGETS if t.fit], ids=lambda t: t.name)
def test_published_figure_is_reproduced(essex, target):
    _, result = essex
    (c,) = C.compare(result, [target])
    assert c.ok, (f"{target.name}: simulated {c.simulated.value:,.4g} vs published "
                  f"{target.published:,.4g} ± {target.absolute_tolerance:,.4g} "
                  f"(source: {target.source})")


def test_care_days_saved_by_march_2019_reconciled(essex):
    """[003] Section 5: 'a reduction of over 96,000 days spent in care' by March 2019.

    Read with the contract's definitions ([001]: every young person served, tracked 30
    months from referral), the simulation gives far more: 388 young people with ~750
    tracked days each by March 2019 at (55% - 10.8%) is ~128,000 days. Counting only
    those who completed treatment (BRIEF: 335 of 388), tracked from the end of
    treatment, reproduces the figure within 10%: the README's "Calibration" section
    gives the numbers for each reading.
    """
    (target,) = [t for t in TARGETS if t.statistic.startswith("mean(care_days_saved@")]
    scenario, result = essex
    as_published = C.estimate(result, target.statistic).value
    assert as_published > 1.10 * target.published, target.source

    variant = scenario.model_copy(update={"calendar": scenario.calendar.model_copy(
        update={"tracking_from": "treatment_end"})})
    r = engine.simulate(variant, paths=4000, seed=scenario.simulation.seed)
    completers_share = r.paths.completed.to_numpy() / r.paths.started.to_numpy()
    completers_saved = (C.quantity(r, "care_days_saved", MARCH_2019) * completers_share).mean()
    assert abs(completers_saved - target.published) <= target.absolute_tolerance, (
        f"completers tracked from treatment end: {completers_saved:,.0f} ({target.source})")
