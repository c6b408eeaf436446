"""The numba engine against the plain-Python reference (tests/reference_model.py), in distribution.

For each scenario and each service column the reference covers: a two-sample
z-test of means (|difference| < 4 combined standard errors; a column constant
in both samples must be the same constant), and two-sample Kolmogorov-Smirnov
tests (p > 1e-3) on a few key columns. Seeds are fixed. The reference is the
slow side, so it runs a few hundred paths
against many more engine paths.
"""
import datetime as dt
import math

import numpy as np
import pytest
from scipy import stats

from simulator import engine
from simulator.loader import load_scenario

from helpers import CONTRACT_START, ESSEX, make_scenario, with_money
from reference_model import COLUMNS, simulate_reference

Z_BOUND = 4.0
KS_P_MIN = 1e-3
KS_COLUMNS = ["referrals", "started", "lost_wait", "disrupted", "care_days_treated",
              "care_days_counterfactual", "child_days"]

# Heavy capacity pressure and turnover: a one-therapist team (a leaver's cases
# stay with the vacant post), long vacancies, therapists in waiting, a low
# caseload limit and many referrals, so losses from the waiting list,
# reassignments and disruption are frequent.
PRESSURE = {
    "referrals": {"per_team_per_month": 7.0},
    "workforce": {"teams": [{"name": "t1", "start_date": dt.date(2020, 2, 1), "therapists": 1},
                            {"name": "t2", "start_date": dt.date(2020, 5, 1), "therapists": 3,
                             "referral_weight": 1.5}],
                  "caseload_limit": 3, "max_wait_days": 45, "leaving_rate_per_year": 2.5,
                  "vacancy_mean_days": 120, "vacancy_shape": 1.5, "therapists_in_waiting": 2},
}

# Waning effect, drift in the counterfactual, age hazard ratio, tracking from
# treatment start, care ending at 17, and parameters drawn per path.
WANING = {
    "calendar": {"tracking_from": "treatment_start", "tracking_months": 24,
                 "start_delay_months": {"dist": "uniform", "low": 0, "high": 4}},
    "referrals": {"annual_trend": 0.3,
                  "per_team_per_month": {"dist": "triangular", "low": 3, "mode": 4, "high": 6}},
    "treatment": {"effect_half_life_days": 120, "hazard_ratio_during": 0.2,
                  "hazard_ratio_after": 0.3, "noncompleted_effect_retention": 0.3,
                  "noncompletion_share": 0.3},
    "young_people": {"age_min_years": 12, "age_max_years": 17.5},
    "care": {"age_hazard_ratio_per_year": 1.3, "leaves_care_at_age": 17.0,
             "entry_rate_per_year": {"dist": "lognormal", "median": 0.8, "sigma": 0.3,
                                     "high": 3.0}},
    "counterfactual": {"hazard_multiplier": 1.4, "annual_hazard_trend": -0.15},
}

# Corners: Poisson referrals ramping from zero over a fractional number of
# months, teams listed out of start order, instant recruitment with no
# therapists in waiting, long screening, care ending at 16.5 (some are referred
# older and are never tracked), an age ratio below 1, and a contract with a
# baseline per tracking quarter (for baseline_care_days), tracked from the end of treatment.
EDGE = {
    "calendar": {"tracking_from": "treatment_end"},
    "referrals": {"dispersion": None, "ramp_up_months": 2.5, "ramp_start_share": 0.0,
                  "screening_days": 60},
    "workforce": {"teams": [{"name": "t1", "start_date": dt.date(2020, 3, 1), "therapists": 1},
                            {"name": "t2", "start_date": dt.date(2020, 1, 15), "therapists": 2}],
                  "vacancy_mean_days": 0, "therapists_in_waiting": 0,
                  "leaving_rate_per_year": 3.0, "max_wait_days": 60},
    "young_people": {"age_min_years": 12},
    "care": {"leaves_care_at_age": 16.5, "age_hazard_ratio_per_year": 0.8},
    "contract": {"baseline_care_proportion": [0.3 + 0.03 * i for i in range(10)]},
}


def _essex():
    return load_scenario(ESSEX).scenario


SCENARIOS = {
    # name: (scenario factory, reference paths, engine paths)
    "small": (lambda: make_scenario(), 400, 20000),
    "pressure": (lambda: make_scenario(PRESSURE), 300, 20000),
    "waning": (lambda: make_scenario(WANING), 400, 20000),
    "edge": (lambda: make_scenario(EDGE, base=with_money()), 300, 20000),
    "essex": (_essex, 120, 10000),
}


@pytest.fixture(scope="module")
def samples():
    cache = {}

    def get(name):
        if name not in cache:
            make, n_ref, n_eng = SCENARIOS[name]
            sc = make()
            cache[name] = (simulate_reference(sc, paths=n_ref, seed=101),
                           engine.simulate(sc, paths=n_eng, seed=202).paths)
        return cache[name]
    return get


def compare_means(ref, eng, columns):
    """Columns whose means differ by more than Z_BOUND standard errors (or constants that
    differ)."""
    bad = []
    for c in columns:
        a = ref[c].dropna().to_numpy()
        b = eng[c].dropna().to_numpy()
        assert len(a) > 1 and len(b) > 1, c
        scale = max(1.0, abs(a.mean()), abs(b.mean()))
        if a.std() <= 1e-9 * scale and b.std() <= 1e-9 * scale:
            if not math.isclose(a.mean(), b.mean(), rel_tol=1e-9, abs_tol=1e-9):
                bad.append(f"{c}: constant {a.mean():g} (reference) vs {b.mean():g} (engine)")
            continue
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        z = (a.mean() - b.mean()) / se
        if not abs(z) < Z_BOUND:
            bad.append(f"{c}: reference {a.mean():.4g}, engine {b.mean():.4g}, z = {z:.2f}")
    return bad


def covered_columns(ref, eng):
    cols = [c for c in ref.columns if c != "path"]
    assert set(COLUMNS) <= set(cols)
    missing = [c for c in cols if c not in eng.columns]
    assert not missing, missing
    return cols


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_engine_and_reference_agree_on_means(samples, name):
    ref, eng = samples(name)
    bad = compare_means(ref, eng, covered_columns(ref, eng))
    assert not bad, f"{name}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_engine_and_reference_agree_in_distribution(samples, name):
    ref, eng = samples(name)
    bad = []
    for c in KS_COLUMNS:
        a, b = ref[c].to_numpy(), eng[c].to_numpy()
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            assert a[0] == b[0], c
            continue
        p = stats.ks_2samp(a, b).pvalue
        if not p > KS_P_MIN:
            bad.append(f"{c}: KS p = {p:.2g}")
    assert not bad, f"{name}: " + "; ".join(bad)


@pytest.mark.parametrize("name", ["small", "pressure", "edge"])
def test_scenarios_exercise_their_mechanisms(samples, name):
    """Guard the test's power: the mechanisms each scenario is meant to exercise do occur."""
    ref, eng = samples(name)
    for f in (ref, eng):
        assert f.lost_wait.mean() > 1 and f.lost_care.mean() > 1
        assert f.disrupted.mean() > 1 and f.leavers.mean() > 1
        assert f.care_days_treated.mean() < f.care_days_counterfactual.mean()
    if name == "pressure":
        assert ref.vacancy_days.mean() > 100 and ref.lost_wait.mean() > ref.started.mean()
    if name == "edge":
        assert (ref.baseline_care_days > 0).all()


def test_reference_conserves_young_people_and_days(samples):
    ref, _ = samples("small")
    f = ref
    assert (f.referrals == f.accepted + f.rejected).all()
    assert (f.rejected == f.rejected_a + f.rejected_b).all()
    assert (f.accepted == f.started + f.lost_wait + f.lost_care + f.lost_service_end).all()
    assert (f.started == f.completed + f.noncompleted).all()
    assert (f.children_treated == f.started).all()
    assert (f.disrupted <= f.started).all()
    assert (f.entered_care_treated <= f.started).all()
    assert (f.care_days_treated <= f.child_days + 1e-6).all()
    assert (f.care_days_counterfactual <= f.child_days + 1e-6).all()
    assert (f.child_days <= f.started * 30 * 365.25 / 12 + 1e-6).all()
    assert (f.mean_wait_days.dropna() <= 30 + 1e-9).all()   # max_wait_days
    # posts x days of service: staffed + vacant (posts start staffed at their team's start)
    end = dt.date(2022, 6, 30)
    post_days = (2 * ((end - dt.date(2020, 2, 1)).days + 1)
                 + 3 * ((end - dt.date(2020, 5, 1)).days + 1))
    assert np.allclose(f.therapist_days + f.vacancy_days, post_days)


def test_reference_is_reproducible():
    sc = make_scenario()
    a = simulate_reference(sc, paths=5, seed=3)
    b = simulate_reference(sc, paths=5, seed=3)
    assert a.equals(b)
    assert not a.equals(simulate_reference(sc, paths=5, seed=4))


# Known departure of the engine from ARCHITECTURE.md ("Capacity"): a young person
# still waiting at service_end is lost "to the end of the service", but
# kernels._run_team classifies the waiting list at the first team event after
# service_end and tests `deadline < t` before `t >= service_end`, so whoever's
# max-wait or care deadline falls between service_end and that event is counted
# as lost_wait / lost_care instead. Scenario: referrals until service_end, one
# therapist carrying one case of 300+ days, max wait 10 days, no care entries:
# everyone accepted in the last 10 days is waiting at service_end (about 2 per
# path by the spec); the engine reports almost none.
SERVICE_END_QUEUE = {
    "calendar": {"referrals_end": dt.date(2022, 6, 30)},
    "referrals": {"per_team_per_month": 6.0, "screening_days": 0, "dispersion": None,
                  "ramp_up_months": 0, "acceptance_share": 1.0},
    "workforce": {"teams": [{"name": "t", "start_date": CONTRACT_START, "therapists": 1}],
                  "caseload_limit": 1, "max_wait_days": 10, "leaving_rate_per_year": 0.0},
    "treatment": {"min_days": 300, "max_days": 361},
    "care": {"entry_rate_per_year": 0.0},
}


@pytest.fixture(scope="module")
def service_end_queue():
    sc = make_scenario(SERVICE_END_QUEUE)
    return (simulate_reference(sc, paths=200, seed=5),
            engine.simulate(sc, paths=4000, seed=6).paths)


def test_reference_loses_the_waiting_list_at_service_end(service_end_queue):
    ref, _ = service_end_queue
    # about 6/month x 10 days of acceptances are waiting at service_end
    assert abs(ref.lost_service_end.mean() - 6.0 * 10 / (365.25 / 12)) < 0.3
    assert ref.lost_care.sum() == 0


def test_engine_loses_the_waiting_list_at_service_end(service_end_queue):
    ref, eng = service_end_queue
    bad = compare_means(ref, eng, ["lost_wait", "lost_service_end"])
    assert not bad, bad
