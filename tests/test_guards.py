"""Inputs that would make a run hang, overflow or fail a check are refused before any
simulating: one located line, exit status 2, nothing written, within seconds."""
import subprocess
import sys
import time

import numpy as np
import pytest

from simulator import engine
from simulator.compose import load_composed

from helpers import ESSEX, ROOT


def _sibsim(tmp_path, text: str, *more: str):
    scenario = tmp_path / "hostile.yaml"
    scenario.write_text(f"extends: {ESSEX}\nname: hostile\n{text}")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simulator", "run", str(scenario), "--paths",
                           "20", "--quiet", "--out", str(tmp_path / "out"), *more],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    return done, time.perf_counter() - t0, scenario


@pytest.mark.parametrize("text, message", [
    ("workforce.teams: [" + ", ".join(
        f"{{name: t{i}, start_date: 2013-04-01, therapists: 100}}" for i in range(32))
     + "]\nworkforce.leaving_rate_per_year: 20\nworkforce.vacancy_mean_days: 0\n",
     "workforce: a path may expect about"),
    ("calendar.service_end: 9999-12-31\n",
     "calendar.service_end (9999-12-31) is more than 50 years after"),
    ("calendar.service_end: 4012-12-31\ncontract.last_payment_date: 4013-12-31\n",
     "is more than 50 years after calendar.contract_start"),
    ("contract.last_payment_date: 2099-12-31\n", "is more than 60 years after"),
    ("contract.price_per_care_day_saved: 1.0e305\n", "price_per_care_day_saved"),
    ("finance.commitment: 1.0e-300\n", "finance.commitment"),
    ("contract.cap: 1.0e300\n", "contract.cap"),
])
def test_an_input_that_would_hang_or_overflow_is_refused_at_once(tmp_path, text, message):
    done, seconds, scenario = _sibsim(tmp_path, text)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert str(scenario) in done.stderr and "nothing was written" in done.stderr
    assert seconds < 10
    assert not (tmp_path / "out").exists()


def test_the_staffing_bound_is_above_what_paths_do_and_essex_is_far_within_it():
    essex = load_composed(ESSEX, {"workforce.leaving_rate_per_year": 0.6}).scenario
    lay = engine.layout(essex)
    params = engine.draw_parameters(essex, 1, 0, 400)
    leavings, rate, posts = engine.staffing_bound(params, lay)
    assert rate == 0.6 and posts == 8
    leavers = engine.simulate(essex, paths=400, seed=1).paths.leavers.to_numpy()
    se = leavers.std() / np.sqrt(len(leavers))
    assert leavers.mean() < leavings + 4 * se             # an upper bound on the mean
    assert leavings * posts < engine.MAX_STAFF_WORK_PER_PATH / 1000   # and Essex far below
