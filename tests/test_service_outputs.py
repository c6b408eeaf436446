"""Caseload and waiting-list days per calendar quarter (the service view of the report)."""
import datetime as dt

import numpy as np

from simulator import engine, metrics

from helpers import make_scenario

CASELOAD = engine.CALENDAR_QUARTER_COLUMNS.index("caseload_days")
WAITING = engine.CALENDAR_QUARTER_COLUMNS.index("waiting_days")

# one team of 2 therapists x 3 cases, no turnover, nobody lost: every wait ends in a start
NO_LOSSES = {
    "calendar": {"referrals_end": dt.date(2020, 12, 31), "service_end": dt.date(2023, 12, 31)},
    "workforce": {"teams": [{"name": "t", "start_date": dt.date(2020, 1, 1), "therapists": 2}],
                  "caseload_limit": 3, "max_wait_days": 3650, "leaving_rate_per_year": 0.0},
    "care": {"entry_rate_per_year": 1e-9},
}


def test_waiting_and_caseload_days_add_up_when_nobody_is_lost():
    r = engine.simulate(make_scenario(NO_LOSSES), paths=300, seed=5)
    f = r.paths
    assert (f.lost_wait + f.lost_care + f.lost_service_end).sum() == 0
    cal = r.by_calendar_quarter
    waiting = cal[:, :, WAITING].sum(axis=1)
    np.testing.assert_allclose(waiting, f.mean_wait_days * f.started, rtol=1e-9, atol=1e-6)
    assert waiting.mean() > 0  # 6 places for ~2.8 acceptances a month: people wait
    # never more open cases on an average day than places (no turnover, no reassignment)
    q = metrics.quarters_table(r)
    assert q.open_cases_p95.max() <= 2 * 3 + 1e-9
    assert q.open_cases_mean.max() > 4  # and the team does fill up
    # caseload days are the treatment days of those who started
    assert np.all(cal[:, :, CASELOAD].sum(axis=1) >= f.started * 10 - 1e-6)  # min_days 10


def test_lost_young_people_count_their_wait():
    tight = make_scenario({**NO_LOSSES,
                           "workforce": {**NO_LOSSES["workforce"], "max_wait_days": 20}})
    r = engine.simulate(tight, paths=300, seed=5)
    f = r.paths
    waiting = r.by_calendar_quarter[:, :, WAITING].sum(axis=1)
    assert f.lost_wait.sum() > 0
    # each young person lost to the wait waited exactly max_wait_days (acceptance to deadline)
    np.testing.assert_allclose(waiting, f.mean_wait_days.fillna(0) * f.started + 20 * f.lost_wait,
                               rtol=1e-9, atol=1e-6)
