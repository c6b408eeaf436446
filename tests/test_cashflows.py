"""Money through the engine: conservation, summary keys, scale invariance, monotonicity."""
import datetime as dt
import json

import numpy as np
import pytest

from simulator import engine, metrics
from simulator import layout as L
from simulator.loader import load_scenario
from simulator.run import run_scenario

from helpers import ESSEX, deep_update, make_scenario, with_money

MONEY = {
    "contract": ["price_per_care_day_saved", "cap", "care_cost_per_day"],
    "costs": ["per_team_per_quarter", "per_case_started", "flexible_fund_per_family", "set_up",
              "licence_per_team_per_year", "management_fee_per_quarter"],
    "finance": ["commitment", "reserve"],
}


def scaled(d: dict, factor: float) -> dict:
    out = deep_update(d, {})
    for section, keys in MONEY.items():
        for key in keys:
            if out[section].get(key) is not None:
                out[section][key] = out[section][key] * factor
    return out


def test_cash_is_conserved_and_capital_never_overdrawn():
    res = engine.simulate(make_scenario(base=with_money()), paths=300, seed=1)
    cal = res.by_calendar_quarter
    prev = np.concatenate([np.zeros((cal.shape[0], 1)), cal[:, :-1, L.K_SPV_BALANCE]], axis=1)
    lhs = cal[:, :, L.K_CAPITAL_CALLS] + cal[:, :, L.K_OUTCOME_PAYMENTS]
    rhs = (cal[:, :, L.K_COSTS_PAID] + cal[:, :, L.K_DISTRIBUTIONS_INVESTORS]
           + cal[:, :, L.K_DISTRIBUTIONS_PROVIDER] + cal[:, :, L.K_SPV_BALANCE] - prev)
    assert np.max(np.abs(lhs - rhs)) < 0.01
    f = res.paths
    assert np.all(f.outcome_payments <= 2_500_000 + 0.01)
    assert np.all(f.capital_drawn <= 1_500_000 + 0.01)
    assert np.allclose(cal[:, :, L.K_OUTCOME_PAYMENTS].sum(1), f.outcome_payments)
    # what the commitment became: distributions and the commitment never drawn
    assert np.allclose(f.multiple, (f.distributions_investors + 1_500_000 - f.capital_drawn)
                       / 1_500_000)
    assert np.allclose(f.undrawn_commitment, 1_500_000 - f.capital_drawn)


def test_a_commitment_too_small_reports_the_shortfall():
    d = with_money()
    d["finance"]["commitment"] = 200_000.0
    f = engine.simulate(make_scenario(base=d), paths=100, seed=2).paths
    assert np.all(f.capital_drawn <= 200_000 + 0.01)
    assert (f.costs_unfunded > 0).mean() > 0.9
    assert np.allclose(f.capital_drawn[f.costs_unfunded > 0], 200_000)


def test_payments_that_stop_before_the_service_ends_leave_the_reserve_until_it_ends():
    # the small scenario's service runs to 2022-06-30; payments stop a year earlier, and
    # nothing is distributed before the end (distribution_start null)
    d = with_money()
    d["contract"]["last_payment_date"] = dt.date(2021, 6, 30)
    res = engine.simulate(make_scenario(base=d), paths=200, seed=4)
    cal, quarters = res.by_calendar_quarter, res.calendar_quarters
    wind_up = max(k for k, q in enumerate(quarters) if q <= dt.date(2022, 6, 30))
    paid_after = [k for k, q in enumerate(quarters) if q > dt.date(2021, 6, 30)]
    assert np.all(cal[:, paid_after, L.K_OUTCOME_PAYMENTS] == 0)
    assert np.all(cal[:, wind_up, L.K_SERVICE_COSTS] > 0)        # costs run to the end
    returned = cal[:, :, L.K_DISTRIBUTIONS_INVESTORS] + cal[:, :, L.K_DISTRIBUTIONS_PROVIDER]
    # no cash goes back while the service still has costs to pay: only at the wind-up
    assert np.all(returned[:, :wind_up] == 0)
    assert np.all(cal[:, wind_up:, L.K_SPV_BALANCE] == 0)
    # capital is called for costs only: drawn = costs paid - payments + what is returned
    f = res.paths
    assert np.allclose(f.capital_drawn, f.service_costs - f.costs_unfunded - f.outcome_payments
                       + f.distributions_investors + f.distributions_provider)


def test_scaling_every_money_amount_leaves_multiples_and_irr_unchanged():
    base = with_money()
    a = engine.simulate(make_scenario(base=base), paths=200, seed=3).paths
    b = engine.simulate(make_scenario(base=scaled(base, 7.0)), paths=200, seed=3).paths
    for col in ("multiple", "moic_drawn", "irr", "loss", "cap_reached"):
        assert np.allclose(a[col], b[col], rtol=1e-9, atol=1e-12, equal_nan=True), col
    assert np.allclose(b.outcome_payments, 7 * a.outcome_payments, rtol=1e-9)


def test_stronger_effect_never_lowers_payments_and_higher_cap_never_lowers_multiple():
    means = []
    for hr in (0.8, 0.5, 0.3, 0.15):
        d = deep_update(with_money(), {"treatment": {"hazard_ratio_during": hr,
                                                     "hazard_ratio_after": hr}})
        f = engine.simulate(make_scenario(base=d), paths=300, seed=4).paths
        means.append(f.outcome_payments.mean())
    assert all(x <= y for x, y in zip(means, means[1:])), means
    multiples = []
    for cap in (600_000.0, 1_000_000.0, 1_400_000.0, None):
        d = deep_update(with_money(), {"contract": {"cap": cap}})
        f = engine.simulate(make_scenario(base=d), paths=300, seed=5).paths
        multiples.append(f.multiple.mean())
    assert all(x <= y + 1e-12 for x, y in zip(multiples, multiples[1:])), multiples
    assert multiples[0] < multiples[-1]


def test_summary_has_the_documented_keys(tmp_path):
    out = run_scenario(load_scenario(ESSEX), tmp_path, paths=300, seed=1, progress=False)
    s = json.loads((out.folder / "summary.json").read_text())
    for path in ["scenario", "paths", "seed",
                 "investor.multiple.mean", "investor.multiple.p05", "investor.multiple.p50",
                 "investor.multiple.p95", "investor.moic_drawn.mean", "investor.moic_drawn.p50",
                 "investor.irr.p05", "investor.irr.p50", "investor.irr.p95", "investor.prob_loss",
                 "investor.var95", "investor.cvar95", "investor.capital_drawn.p50",
                 "investor.capital_drawn.p95", "commissioner.outcome_payments.mean",
                 "commissioner.outcome_payments.p50", "commissioner.outcome_payments.p95",
                 "commissioner.outcome_payments.max", "commissioner.payments_by_financial_year",
                 "commissioner.prob_cap_reached", "commissioner.net_saving.mean",
                 "commissioner.net_saving.p05", "commissioner.net_saving.p50",
                 "service.children_treated.mean", "service.care_proportion.mean",
                 "service.baseline_care_proportion", "service.care_days_saved.mean"]:
        node = s
        for part in path.split("."):
            node = node[part]
        assert node is not None, path
    # every mean carries its standard error
    assert s["investor"]["multiple"]["se"] > 0 and "prob_loss_se" in s["investor"]
    years = s["commissioner"]["payments_by_financial_year"]
    assert years[0]["year"].startswith("20") and {"mean", "p50", "p95", "se"} <= set(years[0])
    total = sum(y["mean"] for y in years)
    assert total == pytest.approx(s["commissioner"]["outcome_payments"]["mean"], rel=1e-9)
    f = out.result.paths
    assert s["investor"]["var95"] == pytest.approx(np.percentile(f.multiple, 5))
    assert s["investor"]["cvar95"] <= s["investor"]["var95"]
    q = metrics.quarters_table(out.result)
    assert {"spv_balance_p05", "outcome_payments_mean", "capital_calls_p95"} <= set(q.columns)
    assert (out.folder / "quarters.parquet").exists()


def test_financial_years_run_april_to_march():
    import datetime as dt
    assert metrics.financial_year(dt.date(2019, 3, 31)) == 2018
    assert metrics.financial_year(dt.date(2019, 4, 1)) == 2019


def test_binary_outcome_events_pay_per_young_person():
    d = deep_update(with_money(), {"contract": {
        "price_per_care_day_saved": 0.0, "cap": None,
        "outcome_events": [{"name": "home_at_12m", "months_after_referral": 12, "price": 1000.0}]}})
    res = engine.simulate(make_scenario(base=d), paths=100, seed=6)
    f = res.paths
    events = res.by_calendar_quarter[:, :, L.K_OUTCOME_EVENTS].sum(1)
    assert np.all(events <= f.started)
    assert events.mean() > 0.3 * f.started.mean()
    # last payment quarter is the horizon's end: every event is paid, one quarter later
    assert np.allclose(f.outcome_payments, 1000.0 * events)


@pytest.mark.parametrize("tracking_from", ["referral", "treatment_start", "treatment_end"])
def test_cohorts_cover_every_window_that_can_open(tracking_from, monkeypatch):
    """The kernels keep tracking cohorts up to the last quarter in which a window can open
    (C_COHORTS, from engine.layout), not every calendar quarter: the results must be the
    same as with a cohort for every quarter."""
    sc = make_scenario({"calendar": {"tracking_from": tracking_from},
                        "workforce": {"leaving_rate_per_year": 0.4}}, base=with_money())
    n_cal = len(engine.layout(sc).calendar_quarters)
    trimmed = engine.simulate(sc, paths=120, seed=5)
    assert int(engine.layout(sc).config[L.C_COHORTS]) < n_cal or tracking_from == "treatment_end"
    real_layout = engine.layout

    def every_quarter_a_cohort(scenario):
        lay = real_layout(scenario)
        lay.config[L.C_COHORTS] = n_cal
        return lay

    monkeypatch.setattr(engine, "layout", every_quarter_a_cohort)
    full = engine.simulate(sc, paths=120, seed=5)
    assert (full.paths["outcome_payments"] > 0).any()
    assert full.paths.equals(trimmed.paths)
    assert np.array_equal(full.by_calendar_quarter, trimmed.by_calendar_quarter, equal_nan=True)
