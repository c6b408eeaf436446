"""The calibration machinery: statistics as at a date, intervals, the fit, the YAML rewrite,
the CLI."""
import datetime as dt
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from simulator import calibrate as C
from simulator import engine
from simulator.loader import load_scenario
from simulator.schema import Scenario

from helpers import ROOT, make_scenario, small_scenario_dict, with_money


@pytest.fixture(scope="module")
def result():
    return engine.simulate(make_scenario(base=with_money()), paths=400, seed=3)


def test_as_at_date_counts_only_quarters_ended_by_then(result):
    full = C.quantity(result, "child_days")
    np.testing.assert_allclose(C.quantity(result, "child_days", dt.date(2060, 1, 1)), full)
    assert np.all(C.quantity(result, "child_days", dt.date(2019, 12, 31)) == 0)
    # at the end of a quarter: exactly the quarters up to it, from the calendar-quarter array
    quarters = result.calendar_quarters
    k = quarters.index(dt.date(2021, 1, 1))
    col = engine.CALENDAR_QUARTER_COLUMNS.index("child_days")
    expected = result.by_calendar_quarter[:, :k + 1, col].sum(axis=1)
    np.testing.assert_allclose(C.quantity(result, "child_days", dt.date(2021, 3, 31)), expected)
    # a date inside a quarter does not count that quarter yet
    np.testing.assert_allclose(C.quantity(result, "child_days", dt.date(2021, 3, 30)),
                               result.by_calendar_quarter[:, :k, col].sum(axis=1))
    days = [C.quantity(result, "care_days_saved", dt.date(y, 12, 31)).mean()
            for y in range(2020, 2026)]
    assert days[-1] == pytest.approx(C.quantity(result, "care_days_saved").mean())


def test_derived_quantities_match_path_columns(result):
    f = result.paths
    np.testing.assert_allclose(C.quantity(result, "care_proportion"),
                               f.care_days_treated / f.child_days)
    np.testing.assert_allclose(C.quantity(result, "true_care_days_saved"),
                               f.care_days_counterfactual - f.care_days_treated, rtol=1e-9)
    np.testing.assert_allclose(C.quantity(result, "care_days_saved"),
                               f.baseline_care_days - f.care_days_treated, rtol=1e-9)
    with pytest.raises(KeyError, match="unknown quantity"):
        C.quantity(result, "no_such_thing")


def test_estimates_and_their_intervals(result):
    x = result.paths.started.to_numpy()
    e = C.estimate(result, "mean(started)")
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert e.value == pytest.approx(x.mean())
    assert (e.low, e.high) == pytest.approx((x.mean() - 1.96 * se, x.mean() + 1.96 * se))
    m = C.estimate(result, "median(started)")
    assert m.value == np.median(x) and m.low <= m.value <= m.high
    assert C.estimate(result, "max(started)").value == x.max()
    with pytest.raises(ValueError, match="aggregate"):
        C.parse_statistic("average(started)")
    with pytest.raises(ValueError, match=r"'mean\(care_proportion@2019-02-30\)': 2019-02-30 is "
                                         r"not a date \(day is out of range for month\)"):
        C.parse_statistic("mean(care_proportion@2019-02-30)")


def _target(**kw):
    base = {"name": "t", "statistic": "mean(started)", "role": "fit", "published": 10.0,
            "tolerance": 1.0, "source": "test"}
    return C.Target.model_validate({**base, **kw})


def test_comparison_verdicts_and_residuals(result):
    v = result.paths.started.mean()
    assert C.compare(result, [_target(published=v + 0.9)])[0].ok
    assert not C.compare(result, [_target(published=v + 1.1)])[0].ok
    below = C.compare(result, [_target(published=v + 5, kind="at_most")])[0]
    assert below.ok and below.residual == 0.0
    above = C.compare(result, [_target(published=v - 3, kind="at_most")])[0]
    assert not above.ok and above.residual == pytest.approx(2.0)
    assert C.compare(result, [_target(published=v / 1.04, tolerance=None,
                                      relative_tolerance=0.05)])[0].ok
    with pytest.raises(ValueError, match="exactly one"):
        _target(relative_tolerance=0.1)


def test_fit_recovers_a_known_entry_rate():
    """Targets made from a run at entry rate 0.8 bring a fit started at 1.3 back to 0.8."""
    truth = make_scenario({"care": {"entry_rate_per_year": 0.8}})
    r = engine.simulate(truth, paths=300, seed=11)
    published = C.estimate(r, "mean(counterfactual_care_proportion)").value
    target = _target(statistic="mean(counterfactual_care_proportion)", published=published,
                     tolerance=0.005)
    start = make_scenario({"care": {"entry_rate_per_year": 1.3}})
    fit = C.calibrate(start, [target], ["care.entry_rate_per_year"], paths=300, seed=11,
                      max_evaluations=60)
    assert fit.values["care.entry_rate_per_year"] == pytest.approx(0.8, rel=0.02)
    assert fit.comparisons[0].ok


def test_tied_keys_share_one_value():
    start = make_scenario()
    target = _target(statistic="mean(care_proportion)", published=0.05, tolerance=0.01)
    fit = C.calibrate(start, [target],
                      ["treatment.hazard_ratio_during+treatment.hazard_ratio_after"],
                      paths=200, seed=2, max_evaluations=30)
    assert fit.values["treatment.hazard_ratio_during"] == fit.values["treatment.hazard_ratio_after"]
    assert fit.scenario.treatment.hazard_ratio_after.value == pytest.approx(
        fit.values["treatment.hazard_ratio_after"])
    with pytest.raises(ValueError, match="plain number"):
        C.calibrate(start, [target], ["calendar.tracking_from"], paths=10, seed=1)
    # a count: refused before fitting (the first evaluation failed pydantic's int check)
    with pytest.raises(ValueError, match="workforce.caseload_limit: is a count"):
        C.calibrate(start, [target], ["workforce.caseload_limit"], paths=10, seed=1)


def test_rewrite_keeps_comments_and_changes_only_values():
    text = (ROOT / "scenarios" / "essex_mst.yaml").read_text()
    new = C.rewrite_values(text, {"care.entry_rate_per_year": 1.23456,
                                  "contract.price_per_care_day_saved": 81.0}, "FITTED to x")
    old_lines, new_lines = text.splitlines(), new.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert len(old_lines) == len(new_lines) and len(changed) == 2
    for a, b in changed:  # an earlier fit's note is replaced, any other comment kept
        kept = re.sub(r";?\s*FITTED \(sibsim calibrate.*$", "", a.split("#", 1)[1].strip())
        assert b.split("#", 1)[1].strip() == kept + "; FITTED to x"
        assert "[" in kept or "ASSUMPTION" in kept  # the citation survives
    data = yaml.safe_load(new)
    assert data["care"]["entry_rate_per_year"] == 1.235  # four significant figures
    assert data["contract"]["price_per_care_day_saved"] == 81
    assert Scenario.model_validate(data).care.entry_rate_per_year.value == 1.235
    with pytest.raises(KeyError):
        C.rewrite_values(text, {"care.no_such_key": 1.0}, "x")


def test_shipped_targets_file_is_valid():
    targets = C.load_targets(ROOT / "scenarios" / "essex_targets.yaml").targets
    assert len(targets) >= 12 and all(t.source for t in targets)


def _sibsim(*args, cwd):
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_cli_bad_targets_file_reports_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("targets:\n  - name: x\n    statistic: mean(started)\n    role: fit\n"
                   "    published: 1\n    tolerance: 1\n    source: s\n    colour: red\n")
    out = tmp_path / "fitted.yaml"
    p = _sibsim("calibrate", str(ROOT / "scenarios" / "essex_mst.yaml"), "--targets", str(bad),
                "--free", "care.entry_rate_per_year", "--out", str(out), cwd=tmp_path)
    assert p.returncode == 2
    assert f"{bad}:8: targets[0].colour: unknown key" in p.stderr
    assert not out.exists()


def test_cli_names_targets_whose_quantity_the_scenario_lacks_before_fitting(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("targets:\n"
                   "  - {name: a, statistic: mean(strated), role: fit, published: 1, "
                   "tolerance: 1, source: s}\n"
                   "  - {name: b, statistic: mean(started@2019-03-31), role: fit, published: 1, "
                   "tolerance: 1, source: s}\n"
                   "  - {name: c, statistic: mean(multiple@2019-03-31), role: hold-out, "
                   "published: 1, tolerance: 1, source: s}\n")
    out = tmp_path / "fitted.yaml"
    for free in ([], ["--free", "care.entry_rate_per_year", "--out", str(out)]):
        p = _sibsim("calibrate", str(ROOT / "scenarios" / "essex_mst.yaml"), "--targets",
                    str(bad), *free, cwd=tmp_path)
        assert p.returncode == 2, p.stderr
        assert f"{bad}:2: targets[0].statistic: unknown quantity 'strated'; known: " in p.stderr
        assert (f"{bad}:4: targets[2].statistic: multiple is a total over the whole run, not "
                f"by quarter, so it has no value as at a date") in p.stderr
        assert "targets[1]" not in p.stderr   # started is counted by quarter too
        assert "Traceback" not in p.stderr and "fitting" not in p.stderr
        assert not out.exists()


def test_cli_refuses_a_check_run_too_big_for_memory_before_fitting(tmp_path):
    out = tmp_path / "fitted.yaml"
    p = _sibsim("calibrate", str(ROOT / "scenarios" / "essex_mst.yaml"), "--targets",
                str(ROOT / "scenarios" / "essex_targets.yaml"), "--free",
                "care.entry_rate_per_year", "--out", str(out), "--check-paths", "100000000",
                cwd=tmp_path)
    assert p.returncode == 2
    assert "100,000,000 paths of essex_mst need about" in p.stderr
    assert "Traceback" not in p.stderr and "fitting" not in p.stderr
    assert not out.exists()


def test_cli_fits_and_writes_a_loadable_scenario(tmp_path):
    scenario = tmp_path / "s.yaml"
    d = small_scenario_dict()
    d["care"]["entry_rate_per_year"] = 1.3
    scenario.write_text("# a comment that must survive\n" + yaml.safe_dump(d))
    targets = tmp_path / "t.yaml"
    targets.write_text(yaml.safe_dump({"targets": [{
        "name": "cf", "statistic": "mean(counterfactual_care_proportion)", "role": "fit",
        "published": 0.45, "tolerance": 0.01, "source": "test"}]}))
    out = tmp_path / "fitted.yaml"
    p = _sibsim("calibrate", str(scenario), "--targets", str(targets), "--free",
                "care.entry_rate_per_year", "--out", str(out), "--paths", "200",
                "--check-paths", "400", "--max-evaluations", "40", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "published" in p.stdout and "cf" in p.stdout
    text = out.read_text()
    assert text.startswith("# a comment that must survive") and "FITTED (sibsim calibrate" in text
    fitted = load_scenario(out).scenario
    assert fitted.care.entry_rate_per_year.value != 1.3


def test_an_investor_outcome_cannot_be_a_fit_target(tmp_path):
    bad = tmp_path / "targets.yaml"
    bad.write_text("targets:\n"
                   "  - {name: served, statistic: mean(started), role: fit, published: 388, "
                   "tolerance: 19, source: s}\n"
                   "  - {name: multiple, statistic: median(multiple), role: fit, published: "
                   "1.45, tolerance: 0.1, source: s}\n")
    p = _sibsim("calibrate", str(ROOT / "scenarios" / "essex_mst.yaml"), "--targets", str(bad),
                cwd=tmp_path)
    assert p.returncode == 2
    assert (f"{bad}:3: targets[1]: role: fit, but multiple is an investor or commissioner "
            f"outcome: it is held out (role: hold-out)") in p.stderr
    with pytest.raises(ValueError, match="role"):
        _target(statistic="mean(capital_drawn)", published=1)
    assert not _target(statistic="mean(capital_drawn)", role="hold-out", published=1).fit


def test_cli_calibrates_a_file_that_extends_another_and_labels_in_full(tmp_path):
    base = tmp_path / "base.yaml"
    d = small_scenario_dict()
    d["care"]["entry_rate_per_year"] = 1.3
    base.write_text(yaml.safe_dump(d))
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nname: child\nreferrals.dispersion: 8   # kept\n")
    targets = tmp_path / "t.yaml"
    long_name = "untreated care proportion over the whole tracking window (model target)"
    targets.write_text(yaml.safe_dump({"targets": [
        {"name": long_name, "statistic": "mean(counterfactual_care_proportion)", "role": "fit",
         "published": 0.45, "tolerance": 0.01, "source": "test"},
        {"name": "paid", "statistic": "mean(outcome_payments)", "role": "hold-out",
         "published": 0.0, "tolerance": 1.0, "source": "test"}]}))
    table_only = _sibsim("calibrate", str(child), "--targets", str(targets), "--check-paths",
                         "200", cwd=tmp_path)
    assert table_only.returncode == 0, table_only.stderr
    assert long_name in table_only.stdout and "hold-out" in table_only.stdout
    out = tmp_path / "fitted.yaml"
    p = _sibsim("calibrate", str(child), "--targets", str(targets), "--free",
                "care.entry_rate_per_year", "--out", str(out), "--paths", "200",
                "--check-paths", "400", "--max-evaluations", "40", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert text.startswith("extends: base.yaml\nname: child\nreferrals.dispersion: 8   # kept\n")
    (line,) = [x for x in text.splitlines() if x.startswith("care.entry_rate_per_year:")]
    assert "FITTED (sibsim calibrate" in line
    fitted = load_scenario(base).scenario   # the base is untouched ...
    assert fitted.care.entry_rate_per_year.value == 1.3
    from simulator.compose import load_composed
    child_fitted = load_composed(out).scenario   # ... and the child overrides it
    assert child_fitted.care.entry_rate_per_year.value == pytest.approx(
        float(line.split(":")[1].split("#")[0]))
    assert child_fitted.referrals.dispersion.value == 8
    assert "held out (predicted, not fitted to): " in p.stdout
    # written elsewhere, it still extends the same base
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "fitted.yaml"
    p = _sibsim("calibrate", str(child), "--targets", str(targets), "--free",
                "care.entry_rate_per_year", "--out", str(moved), "--paths", "200",
                "--check-paths", "400", "--max-evaluations", "40", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert moved.read_text().startswith("extends: ../base.yaml\n")
    assert load_composed(moved).scenario.care.entry_rate_per_year.value == \
        child_fitted.care.entry_rate_per_year.value
