"""Reverse stress tests (breakeven) and sensitivity (tornado, rank correlation)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator import engine, metrics
from simulator.cli import main
from simulator.compose import load_composed
from simulator.loader import ScenarioError
from simulator.stress import NoCrossing, Probe, breakeven, rank_correlations, scenario_value

from helpers import ESSEX, with_money

EFFECT = ["treatment.hazard_ratio_during", "treatment.hazard_ratio_after"]


def test_breakeven_on_the_essex_effect_holds_in_a_fresh_run():
    """Mean multiple 0.45 (0.58 at the base effect): the hazard ratio found on seed 1 gives
    a multiple within 0.05 of the target on fresh random numbers. At 400 and 1,000 paths
    the two standard errors are about 0.006 and 0.004, so 0.05 is over 4 combined SEs."""
    probe = Probe(load_composed(ESSEX), EFFECT, "investor.multiple.mean", paths=400, seed=1)
    result = breakeven(probe, 0.45)
    assert 0.25 < result.x < 0.5 and abs(result.value - 0.45) < 1e-3
    lo, hi = result.interval
    assert lo < result.x < hi and hi - lo < 0.05
    fresh = probe.base.derive({k: result.x for k in EFFECT}).scenario
    summary = metrics.summary(engine.simulate(fresh, paths=1000, seed=2))
    se = math.hypot(result.se, summary["investor"]["multiple"]["se"])
    assert 4 * se < 0.05
    assert abs(summary["investor"]["multiple"]["mean"] - 0.45) < 0.05


def test_breakeven_command_for_the_probability_of_a_loss(tmp_path):
    runner = CliRunner()
    args = ["breakeven", str(ESSEX), "--param", EFFECT[0], "--param", EFFECT[1],
            "--metric", "investor.prob_loss", "--target", "0.5", "--paths", "300",
            "--seed", "3", "--json", "--quiet", "--out", str(tmp_path)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    x = found["value"]
    assert found["interval"][0] <= x <= found["interval"][1]
    assert (tmp_path / "essex_mst__breakeven" / "breakeven.json").exists()
    evaluations = pd.read_csv(tmp_path / "essex_mst__breakeven" / "evaluations.csv")
    assert len(evaluations) == found["evaluations"]
    # a fresh `sibsim run` at the value found, on the same seed and paths (common random
    # numbers), puts the probability of a loss within 0.05 of the target
    run = runner.invoke(main, ["run", str(ESSEX), "--paths", "300", "--seed", "3", "--quiet",
                               "--out", str(tmp_path), "--set", f"{EFFECT[0]}={x!r}",
                               "--set", f"{EFFECT[1]}={x!r}"])
    assert run.exit_code == 0, run.output
    summary = json.loads((tmp_path / "essex_mst" / "summary.json").read_text())
    assert abs(summary["investor"]["prob_loss"] - 0.5) < 0.05


def test_breakeven_errors_are_clear():
    essex = load_composed(ESSEX)
    with pytest.raises(ScenarioError, match="investor.multple.mean: no key 'multple'"):
        Probe(essex, EFFECT, "investor.multple.mean", paths=20)
    with pytest.raises(ScenarioError, match="calendar.tracking_from is a text field"):
        Probe(essex, ["calendar.tracking_from"], "investor.prob_loss", paths=20)
    with pytest.raises(ScenarioError, match="workforce.caseload_limit: is a count"):
        Probe(essex, ["workforce.caseload_limit"], "investor.prob_loss", paths=20)
    probe = Probe(essex, EFFECT, "investor.multiple.mean", paths=50, seed=1)
    with pytest.raises(NoCrossing, match="does not cross 5"):
        breakeven(probe, 5.0, low=0.1, high=0.4)
    runner = CliRunner()
    result = runner.invoke(main, ["breakeven", str(ESSEX), "--param", "treatment.hazard_ratio",
                                  "--metric", "investor.prob_loss", "--target", "0.5"])
    assert result.exit_code == 2 and "treatment.hazard_ratio: unknown key" in result.output
    result = runner.invoke(main, ["breakeven", str(ESSEX), "--param", EFFECT[0], "--metric",
                                  "investor.multiple.mean", "--target", "5", "--low", "0.1",
                                  "--high", "0.4", "--paths", "30", "--quiet"])
    assert result.exit_code == 1 and "does not cross" in result.output


def test_breakeven_refuses_what_it_cannot_search(monkeypatch):
    """A target or bound that is not a finite number, and a parameter listed twice (it
    would be scaled twice), are refused as the command line is read; a power too large
    for a float is a clear error, not an OverflowError."""
    from simulator.overrides import operate

    runner = CliRunner()
    base = ["breakeven", str(ESSEX), "--param", EFFECT[0], "--metric", "investor.prob_loss",
            "--paths", "8", "--quiet"]
    calls = []
    monkeypatch.setattr("simulator.engine.simulate", lambda *a, **k: calls.append(1))
    for extra in (["--target", "nan"], ["--target", "inf"],
                  ["--target", "0.5", "--low", "-inf"], ["--target", "0.5", "--high", "nan"]):
        result = runner.invoke(main, base + extra)
        assert result.exit_code == 2 and "is not a finite number" in result.output, extra
    result = runner.invoke(main, base + ["--target", "0.5", "--param", EFFECT[0]])
    assert result.exit_code == 2 and f"{EFFECT[0]}: is listed twice" in result.output
    assert calls == []
    with pytest.raises(ValueError, match="90 to the power 400 is too large"):
        operate(90.0, "power", 400.0)
    with pytest.raises(ValueError, match="target must be a finite number"):
        breakeven(_Curve(lambda x: x), math.nan)


class _Curve:
    """A stand-in Probe: a known metric curve, so that the search itself is tested."""

    metric, keys, mode, paths, seed = "curve", ["x"], "set", 1, 0

    def __init__(self, f):
        self.f, self.cache = f, {}

    def __call__(self, x):
        from simulator.stress import Evaluation

        x = float(x)
        self.cache.setdefault(x, Evaluation(x, self.f(x), None))
        return self.cache[x]

    def valid(self, x):
        return True

    def start(self):
        return 1.0


def test_breakeven_where_the_metric_is_undefined_says_so():
    """A metric no path has a value for (NaN: the care proportion where nobody is accepted) is
    neither side of the target: skipped while bracketing, and a NoCrossing naming where
    it is undefined at the ends or inside the bracket (it was a ValueError traceback)."""
    # undefined above 1.5: the expansion from 1 skips 2 and 4 and brackets by 0.5, 0.25
    found = breakeven(_Curve(lambda x: math.nan if x > 1.5 else x - 0.3), 0.0)
    assert found.x == pytest.approx(0.3, abs=1e-3) and found.bracket == (0.25, 0.5)
    with pytest.raises(NoCrossing, match="curve is not defined at 0 "):
        breakeven(_Curve(lambda x: math.nan if x == 0 else x - 0.5), 0.0, low=0.0, high=1.0)
    with pytest.raises(NoCrossing, match="curve is not defined at 1 "):
        breakeven(_Curve(lambda x: math.nan), 0.0)
    gap = _Curve(lambda x: math.nan if 0.25 < x < 0.35 else x ** 3 - 0.3)
    with pytest.raises(NoCrossing, match="not defined at some values between 0 and 1"):
        breakeven(gap, 0.0, low=0.0, high=1.0)
    # end to end: nobody accepted, no young people, no care proportion
    result = CliRunner().invoke(main, [
        "breakeven", str(ESSEX), "--param", "referrals.acceptance_share", "--metric",
        "service.care_proportion.mean", "--target", "0.3", "--low", "0", "--high", "1",
        "--paths", "20", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "service.care_proportion.mean is not defined at 0" in result.output


def test_breakeven_scale_mode_moves_a_distribution():
    """Referrals given as a distribution: breakeven on a scale factor keeps its shape."""
    d = with_money()
    d["referrals"]["per_team_per_month"] = {"dist": "triangular", "low": 3, "mode": 4, "high": 5}
    from simulator.compose import ResolvedScenario
    from simulator.schema import Scenario

    base = ResolvedScenario(Scenario.model_validate(d), ESSEX, "", d, {})
    probe = Probe(base, ["referrals.per_team_per_month"], "service.children_treated.mean",
                  mode="scale", paths=100, seed=2)
    result = breakeven(probe, 60.0)
    assert abs(result.value - 60.0) < 1.0 and 0.3 < result.x < 1.0
    scaled = probe.scenario(result.x).scenario.referrals.per_team_per_month
    assert scaled.mode == pytest.approx(4 * result.x) and scaled.dist == "triangular"


def test_sensitivity_tornado_and_rank_correlation(tmp_path):
    d = with_money()
    d["simulation"]["paths"] = 300
    d["treatment"]["hazard_ratio_after"] = {"dist": "lognormal", "median": 0.4, "sigma": 0.5,
                                            "low": 0.05, "high": 1.5}
    d["young_people"]["female_share"] = {"dist": "uniform", "low": 0.3, "high": 0.7}  # no effect
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    result = CliRunner().invoke(main, ["sensitivity", str(f), "--out", str(tmp_path / "out"),
                                       "--param", "treatment.hazard_ratio_after",
                                       "--param", "costs.per_team_per_quarter=50000:70000",
                                       "--param", "young_people.female_share"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "small__sensitivity"
    tornado = pd.read_csv(folder / "tornado.csv")
    assert list(tornado.parameter) == ["treatment.hazard_ratio_after",
                                       "costs.per_team_per_quarter", "young_people.female_share"]
    hr = tornado.iloc[0]
    dist = load_composed(f).scenario.treatment.hazard_ratio_after
    assert hr.low == pytest.approx(float(dist.ppf(np.array([0.05]))[0]))
    assert hr.metric_low > hr.metric_base > hr.metric_high      # a stronger effect pays more
    assert hr.diff_high < -4 * hr.diff_high_se                  # paired differences are real
    assert tornado.iloc[2].swing < tornado.iloc[0].swing / 10   # sex does not change care here
    ranking = pd.read_csv(folder / "rank_correlation.csv")
    assert list(ranking.parameter) == ["treatment.hazard_ratio_after", "young_people.female_share"]
    top, other = ranking.iloc[0], ranking.iloc[1]
    assert top.spearman_rho < -4 / math.sqrt(300)               # beyond 4 standard errors
    assert abs(other.spearman_rho) < 4 / math.sqrt(300)
    assert top.share > 0.9
    meta = json.loads((folder / "sensitivity.json").read_text())
    assert meta["metric"] == "investor.multiple.mean" and meta["path_metric"] == "multiple"
    assert "uncertain parameters ranked" in result.output


def test_sensitivity_needs_a_range_for_a_fixed_parameter(tmp_path):
    result = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--out", str(tmp_path),
                                       "--param", "referrals.dispersion",
                                       "--param", "workforce.caseload_limit=lots"])
    assert result.exit_code == 2
    assert "workforce.caseload_limit: expected KEY=LOW:HIGH" in result.output
    assert not any(tmp_path.iterdir())
    result = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--out", str(tmp_path),
                                       "--param", "referrals.dispersion"])
    assert result.exit_code == 2 and "is a fixed value: give a range" in result.output


def test_sensitivity_varies_a_count_over_whole_numbers(tmp_path):
    result = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--out", str(tmp_path),
                                       "--param", "workforce.caseload_limit=3:7",
                                       "--paths", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    tornado = pd.read_csv(tmp_path / "essex_mst__sensitivity" / "tornado.csv")
    row = tornado.set_index("parameter").loc["workforce.caseload_limit"]
    assert (row["low"], row["high"]) == (3, 7)
    # fewer places a therapist: fewer treated, fewer days saved, less paid back
    assert row["metric_low"] < row["metric_high"]
    result = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--out", str(tmp_path),
                                       "--param", "workforce.caseload_limit=3.5:7"])
    assert result.exit_code == 2 and "valid integer" in result.output


def test_rank_correlations_on_a_known_relation():
    rng = np.random.default_rng(0)
    n = 2000
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    frame = pd.DataFrame({"param.a": a, "param.b": b, "multiple": np.exp(3 * a) + 0.3 * b})
    table = rank_correlations(frame, "multiple")
    assert list(table.parameter) == ["a", "b"]
    assert table.spearman_rho.iloc[0] > 0.9 and table.rho_low95.iloc[0] < table.spearman_rho.iloc[0]
    assert table.share.sum() == pytest.approx(1.0)


def test_breakeven_starts_from_whatever_value_the_scenario_sets():
    """A plain number (the contract price) is a start as much as an uncertain parameter's
    mean; only a key the scenario leaves null needs --low and --high. The command a
    commissioner would type runs as written."""
    essex = load_composed(ESSEX).scenario
    assert scenario_value(essex, "contract.price_per_care_day_saved") == 50.0
    assert scenario_value(essex, "treatment.hazard_ratio_during") == pytest.approx(
        essex.treatment.hazard_ratio_during.mean())
    assert scenario_value(essex, "workforce.teams[0].therapists") == float(
        essex.workforce.teams[0].therapists)
    assert scenario_value(essex, "treatment.effect_half_life_days") is None
    result = CliRunner().invoke(main, [
        "breakeven", str(ESSEX), "--param", "contract.price_per_care_day_saved",
        "--metric", "investor.irr.p50", "--target", "0.06", "--paths", "300", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["params"] == ["contract.price_per_care_day_saved"]
    assert 20.0 < found["value"] < 120.0 and found["metric_at_value"] == pytest.approx(0.06,
                                                                                         abs=1e-3)
