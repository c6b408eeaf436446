"""Bit-identical results for any thread count or chunking; common random numbers."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import yaml

from simulator import engine
from simulator.kernels.work import EVENTS_FIRST, F_ROWS, WORKSPACE_FIRST

from helpers import make_scenario, small_scenario_dict, with_money

REFERRAL_AND_WORKFORCE = ["referrals", "accepted", "rejected", "rejected_a", "rejected_b",
                          "referrals_first_year", "leavers", "vacancy_days", "therapist_days"]
SERVICE = ["started", "completed", "noncompleted", "lost_wait", "lost_service_end", "disrupted",
           "started_first_year", "treatment_days_median", "mean_wait_days", "child_days"]


def test_same_paths_whatever_the_number_of_threads(tmp_path):
    scenario_file = tmp_path / "small.yaml"
    scenario_file.write_text(yaml.safe_dump(small_scenario_dict(), sort_keys=False))
    frames = []
    for threads in ("1", "2"):
        out = tmp_path / f"threads{threads}"
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(scenario_file),
                               "--paths", "300", "--out", str(out), "--quiet"],
                              env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        frames.append(pd.read_parquet(out / "small" / "paths.parquet"))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)


def test_same_paths_whatever_the_chunking():
    sc = make_scenario({"referrals": {"per_team_per_month": {"dist": "uniform", "low": 3,
                                                             "high": 5}}})
    a = engine.simulate(sc, paths=250, chunk_paths=7)
    b = engine.simulate(sc, paths=250, chunk_paths=1000)
    pd.testing.assert_frame_equal(a.paths, b.paths, check_exact=True)
    assert np.array_equal(a.by_calendar_quarter, b.by_calendar_quarter)
    # a prefix of a longer run is the shorter run
    c = engine.simulate(sc, paths=100, chunk_paths=33)
    pd.testing.assert_frame_equal(a.paths.iloc[:100], c.paths, check_exact=True)


def test_a_path_does_not_depend_on_what_its_thread_simulated_before():
    """A thread cuts its paths' work arrays from one workspace, reused from path to path
    and grown (the path simulated again) when a path has more referrals or staffing
    events than it holds room for. A path comes out the same from a fresh workspace
    (one path a chunk) as from one that paths before it used and grew."""
    sc = make_scenario({
        "referrals": {"per_team_per_month": {"dist": "uniform", "low": 1, "high": 60}},
        "workforce": {"leaving_rate_per_year": {"dist": "uniform", "low": 0.1, "high": 8}},
    }, base=with_money())
    a = engine.simulate(sc, paths=120, chunk_paths=1)
    b = engine.simulate(sc, paths=120, chunk_paths=1000)
    pd.testing.assert_frame_equal(a.paths, b.paths, check_exact=True)
    assert np.array_equal(a.by_calendar_quarter, b.by_calendar_quarter, equal_nan=True)
    assert np.array_equal(a.by_tracking_quarter, b.by_tracking_quarter, equal_nan=True)
    # some paths outgrow the first workspace (F_ROWS floats a referral) and
    # event room (a leave and a fill a leaver), and some do not
    referrals, leavers = a.paths["referrals"], a.paths["leavers"]
    assert (F_ROWS * referrals > WORKSPACE_FIRST[0]).any()
    assert (referrals < 500).any()
    assert (2 * leavers > EVENTS_FIRST).any() and (leavers < 10).any()


def test_changing_the_treatment_effect_keeps_every_other_draw():
    base = make_scenario()
    stressed = make_scenario({"treatment": {"hazard_ratio_during": 0.6, "hazard_ratio_after": 0.8}})
    a = engine.simulate(base, paths=300, seed=21).paths
    b = engine.simulate(stressed, paths=300, seed=21).paths
    for col in REFERRAL_AND_WORKFORCE + SERVICE + ["care_days_counterfactual", "lost_care"]:
        assert np.array_equal(a[col], b[col]), col
    diff = b.care_days_treated - a.care_days_treated
    assert (diff != 0).mean() > 0.9
    assert diff.mean() > 0  # weaker effect, more care


def test_changing_referral_volume_keeps_the_workforce_and_seed_matters():
    base = make_scenario()
    more = make_scenario({"referrals": {"per_team_per_month": 6.0}})
    a = engine.simulate(base, paths=100, seed=5).paths
    b = engine.simulate(more, paths=100, seed=5).paths
    for col in ("leavers", "vacancy_days", "therapist_days"):
        assert np.array_equal(a[col], b[col]), col
    assert b.referrals.mean() > a.referrals.mean()
    c = engine.simulate(base, paths=100, seed=6).paths
    assert not np.array_equal(a.referrals, c.referrals)


def test_making_one_parameter_uncertain_leaves_the_other_draws_alone():
    entry = {"dist": "uniform", "low": 0.5, "high": 1.0}
    fixed = make_scenario({"care": {"entry_rate_per_year": entry}})
    both = make_scenario({"care": {"entry_rate_per_year": entry},
                          "referrals": {"dispersion": {"dist": "triangular", "low": 2, "mode": 5,
                                                       "high": 9}}})
    pa = engine.draw_parameters(fixed, 13, 0, 500)
    pb = engine.draw_parameters(both, 13, 0, 500)
    col = engine.PARAM_COLUMNS["care.entry_rate_per_year"]
    assert np.array_equal(pa[:, col], pb[:, col])
    f = engine.simulate(both, paths=50, seed=13).paths
    assert np.array_equal(f["param.care.entry_rate_per_year"], pa[:50, col])
    assert "param.referrals.dispersion" in f and "param.referrals.acceptance_share" not in f
