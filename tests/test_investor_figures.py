"""The investor and commissioner figures mean what the contract says, on the shipped
scenarios: no capital after wind-up, a reserve that earns nothing, an IRR on every path,
and no-effect payments on common random numbers."""
from pathlib import Path

import numpy as np
import pytest

from simulator import engine, metrics
from simulator import layout as L
from simulator.compose import load_composed, load_variants
from simulator.layout import IRR_RULES

from helpers import ESSEX, ROOT, deep_update, make_scenario, with_money

SHIPPED = [f for f in sorted((ROOT / "scenarios").rglob("*.yaml")) if "targets" not in f.name]


def _essex(**changes):
    return load_composed(ESSEX, changes).scenario


@pytest.mark.parametrize("file", SHIPPED, ids=lambda f: str(f.relative_to(ROOT / "scenarios")))
def test_no_money_moves_from_wind_up_in_any_shipped_scenario_or_stress(file: Path):
    variants = load_variants(file)
    assert variants
    for variant in variants:
        scenario = variant.loaded.scenario
        if scenario.finance is None:
            continue
        cal = engine.simulate(scenario, paths=200, seed=scenario.simulation.seed
                              ).by_calendar_quarter
        wind_up = int(engine.layout(scenario).config[L.C_WIND_UP_Q])
        assert not cal[:, wind_up:, L.K_CAPITAL_CALLS].any(), variant.name
        for line in (L.K_OUTCOME_PAYMENTS, L.K_SERVICE_COSTS, L.K_DISTRIBUTIONS_INVESTORS,
                     L.K_DISTRIBUTIONS_PROVIDER, L.K_SPV_BALANCE):
            assert not cal[:, wind_up + 1:, line].any(), (variant.name, line)


EXACT = {"finance.capital_call": "exact", "finance.drawdown_schedule": None}


def test_a_larger_reserve_never_raises_the_essex_multiple_and_costs_a_little_irr():
    multiples, irrs = [], []
    for reserve in (0.0, 100_000.0, 217_076.0, 400_000.0):
        f = engine.simulate(_essex(**EXACT, **{"finance.reserve": reserve}), paths=1000,
                            seed=11).paths
        multiples.append(f.multiple.to_numpy())
        irrs.append(np.median(f.irr))
    for low, high in zip(multiples, multiples[1:]):
        assert np.all(high <= low + 1e-9)          # path by path, on the same draws
    assert irrs == sorted(irrs, reverse=True)      # idle cash drawn earlier earns nothing


def test_no_effect_payments_are_the_payments_at_hazard_ratio_one_path_by_path():
    essex = engine.simulate(_essex(), paths=600, seed=5)
    none = engine.simulate(_essex(**{"treatment.hazard_ratio_during": 1.0,
                                     "treatment.hazard_ratio_after": 1.0}), paths=600, seed=5)
    f, g = essex.paths, none.paths
    assert np.array_equal(f.no_effect_payments, g.outcome_payments)
    assert np.array_equal(g.no_effect_payments, g.outcome_payments)
    assert np.array_equal(essex.by_calendar_quarter[:, :, L.K_NO_EFFECT_PAYMENTS],
                          none.by_calendar_quarter[:, :, L.K_OUTCOME_PAYMENTS])
    # with no effect the treated are the counterfactual, day for day
    assert np.array_equal(g.care_days_treated, g.care_days_counterfactual)
    assert np.array_equal(g.deadweight_share, (g.outcome_payments > 0).astype(float))
    share = f.deadweight_share.to_numpy()
    assert np.all((0 <= share) & (share <= 1))
    expected = np.minimum(np.maximum(f.no_effect_payments, 0), f.outcome_payments) \
        / f.outcome_payments
    assert np.allclose(share, expected, rtol=1e-12)
    # a flat 55% baseline against a counterfactual that starts near 8%: Essex pays for
    # no effect on every path (the validation saw £1.72m on average)
    assert f.no_effect_payments.min() > 0
    assert 1.2e6 < f.no_effect_payments.mean() < 2.3e6


def test_no_effect_payments_count_outcome_events_on_the_counterfactual_walk():
    events = {"contract": {"price_per_care_day_saved": 0.0, "cap": None, "outcome_events": [
        {"name": "home_at_12m", "months_after_referral": 12, "price": 1000.0}]}}
    base = deep_update(with_money(), events)
    f = engine.simulate(make_scenario(base=base), paths=200, seed=6).paths
    g = engine.simulate(make_scenario({"treatment": {"hazard_ratio_during": 1.0,
                                                     "hazard_ratio_after": 1.0}}, base=base),
                        paths=200, seed=6).paths
    assert np.array_equal(f.no_effect_payments, g.outcome_payments)
    # the therapy keeps more young people at home at 12 months than no therapy
    assert f.outcome_payments.mean() > f.no_effect_payments.mean()


def test_every_path_has_an_irr_and_the_summary_says_by_which_rule():
    result = engine.simulate(_essex(**EXACT, **{"finance.reserve": 0.0}), paths=1000, seed=3)
    f = result.paths
    assert np.isfinite(f.irr).all()
    s = metrics.summary(result)["investor"]["irr"]
    assert s["undefined_paths"] == 0
    assert sum(s["rules"].values()) == 1000 and set(s["rules"]) == set(IRR_RULES)
    # without a reserve the SPV calls capital for its fees after paying investors back,
    # so many paths' flows change sign more than once
    assert s["rules"]["nearest_root"] > 100
    assert s["p50"] == pytest.approx(np.median(f.irr))


def test_the_start_like_stress_loses_everything_on_most_paths():
    (variant,) = load_variants(ROOT / "scenarios" / "stress" / "essex_start_like.yaml")
    scenario = variant.loaded.scenario
    result = engine.simulate(scenario, paths=1000, seed=scenario.simulation.seed)
    s = metrics.summary(result)["investor"]["irr"]
    assert s["p50"] == -1.0                      # over all paths, not only those with a root
    assert s["rules"]["nothing_back"] > 500


def test_a_drawdown_schedule_draws_the_whole_commitment_and_holds_idle_cash():
    (variant,) = load_variants(ROOT / "scenarios" / "stress" / "essex_exact_calls.yaml")
    exact = engine.simulate(variant.loaded.scenario, paths=500, seed=8).paths
    f = engine.simulate(_essex(), paths=500, seed=8).paths   # on its schedule
    # 23 draws of £134,782.60; the first quarter's set-up and reserve draw more early, so
    # the last draw takes what is left: the whole commitment
    assert np.allclose(f.capital_drawn, 3_100_000, rtol=1e-12)
    assert np.allclose(f.undrawn_commitment, 0.0, atol=1e-6)
    assert exact.capital_drawn.max() < 2_500_000
    # all to investors and no cost unpaid: what each pound committed became is the same
    # under either rule (the capital drawn on schedule comes back unused)...
    assert np.allclose(f.multiple, exact.multiple, rtol=1e-12)
    assert np.allclose(f.moic_drawn, f.multiple, rtol=1e-6)
    # ...but it waits in the SPV, so it costs the investors return a year
    assert np.all(f.idle_cash > exact.idle_cash)
    assert np.median(f.irr) < np.median(exact.irr) - 0.01


@pytest.mark.parametrize("schedule, message", [
    (None, "3: finance.capital_call: finance.drawdown_schedule is required when "
           "finance.capital_call is 'schedule', and only then"),
    ("[{date: 2013-01-01, amount: 1}, {date: 2020-01-01, share: 0.5}]",
     "finance.drawdown_schedule[1].date: finance.drawdown_schedule[1].date (2020-01-01) "
     "must lie between"),
    ("[{date: 2013-01-01, amount: 1, share: 0.2}]",
     "finance.drawdown_schedule[0]: give a draw either an amount or a share"),
    ("[{date: 2013-01-01, share: 0.6}, {date: 2014-01-01, share: 0.6}]",
     "more than the commitment"),
])
def test_a_bad_drawdown_schedule_is_refused_naming_file_line_and_key(tmp_path, schedule,
                                                                     message):
    from click.testing import CliRunner

    from simulator.cli import main

    rule = "schedule" if schedule else "exact"   # (Essex's own schedule left in place)
    text = f"extends: {ESSEX}\nname: bad\nfinance.capital_call: {rule}\n"
    if schedule:
        text += f"finance.drawdown_schedule: {schedule}\n"
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2
    assert "bad.yaml:" in result.output and message in result.output, result.output


def test_the_comparison_baseline_is_the_untreated_care_proportion_of_other_young_people():
    import yaml
    from click.testing import CliRunner

    from simulator.baseline import comparison_curve
    from simulator.cli import main

    essex = _essex()
    curve = comparison_curve(essex, paths=400, seed=9)
    q = engine.simulate(essex, paths=400, seed=9).by_tracking_quarter
    child = q[:, :, L.Q_CHILD_DAYS].sum(axis=0)
    expected = q[:, :, L.Q_CARE_COUNTERFACTUAL].sum(axis=0) / child
    assert curve == [round(float(x), 4) for x in expected]
    assert len(curve) == 10 and curve == sorted(curve)    # untreated care builds up
    # over the window, the 55% the calibration gives the untreated
    assert np.average(curve, weights=child) == pytest.approx(0.55, abs=0.015)
    # paid against it, what a service with no effect earns falls by more than half
    fair = _essex(**{"contract.baseline_care_proportion": curve})
    flat_none = engine.simulate(essex, paths=400, seed=1).paths.no_effect_payments
    fair_none = engine.simulate(fair, paths=400, seed=1).paths.no_effect_payments
    assert fair_none.mean() < 0.5 * flat_none.mean()
    result = CliRunner().invoke(main, ["baseline", str(ESSEX), "--paths", "400", "--seed", "9"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if not x.startswith("#")]
    assert yaml.safe_load(line) == {"contract.baseline_care_proportion": curve}


def test_a_run_whose_waterfall_calls_capital_after_wind_up_fails_and_writes_nothing(
        tmp_path, monkeypatch):
    """The defect an independent validation found: after wind-up the SPV topped its reserve
    up from the investors and paid it straight back. Cash still balances, so only the
    financial invariants can see it."""
    from click.testing import CliRunner

    from simulator.cli import main

    real = engine.run_chunk
    wind_up = int(engine.layout(_essex()).config[L.C_WIND_UP_Q])

    def with_phantom_calls(*args):
        real(*args)
        cal = args[4].cal   # the chunk's Outputs
        cal[7:, wind_up + 2, L.K_CAPITAL_CALLS] += 217_076.0
        cal[7:, wind_up + 2, L.K_DISTRIBUTIONS_INVESTORS] += 217_076.0

    monkeypatch.setattr(engine, "run_chunk", with_phantom_calls)
    result = CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "50", "--out",
                                       str(tmp_path), "--quiet"])
    assert result.exit_code == 1, result.output
    quarter = engine.layout(_essex()).calendar_quarters[wind_up + 2]
    assert (f"capital called in or after the wind-up quarter (path 7, quarter from {quarter}"
            in result.output), result.output
    assert "43 path(s) in all" in result.output and "nothing was written" in result.output
    assert not list(tmp_path.iterdir())


def test_no_effect_payments_are_exact_where_the_hazard_is_not_constant_too():
    # an age effect and a waning effect take the general entry rule, not the closed form
    changes = {"care.age_hazard_ratio_per_year": 1.1, "treatment.effect_half_life_days": 200.0}
    f = engine.simulate(_essex(**changes), paths=300, seed=6).paths
    g = engine.simulate(_essex(**changes, **{"treatment.hazard_ratio_during": 1.0,
                                             "treatment.hazard_ratio_after": 1.0}),
                        paths=300, seed=6).paths
    assert np.array_equal(f.no_effect_payments, g.outcome_payments)
    assert np.array_equal(g.care_days_treated, g.care_days_counterfactual)
