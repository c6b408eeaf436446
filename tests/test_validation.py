"""Bad input: clear errors with file, line and key; exit status 2; nothing written."""
import json
import subprocess
import sys

import numpy as np
import pytest

from simulator import engine
from simulator.distributions import Fixed
from simulator.loader import ScenarioError, load_scenario
from simulator.schema import iter_params

from helpers import ESSEX, make_scenario, with_money


def sibsim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True,
                          text=True, cwd=cwd)


def _value_in_essex(key: str) -> str:
    """The value of ``key`` as written in essex_mst.yaml (it moves with each calibration)."""
    import re
    return re.search(rf"^  {key}: (\S+)", ESSEX.read_text(), re.M).group(1)


def essex_with(tmp_path, replace: dict[str, str], name="bad.yaml"):
    text = ESSEX.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(path, needle):
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_essex_scenario_is_valid():
    loaded = load_scenario(ESSEX)
    assert loaded.scenario.name == "essex_mst"
    assert len(loaded.sha256) == 64


def test_three_problems_reported_with_file_line_and_key(tmp_path):
    bad = essex_with(tmp_path, {
        "  acceptance_share: 0.70": "  acceptence_share: 0.70",      # misspelt key
        "  caseload_limit: 5 ": "  caseload_limit: -5 ",              # negative caseload
        "  median_days: 142 ": "  median_days: lots ",               # string for a number
    })
    out = tmp_path / "results"
    for args in (["validate", str(bad)], ["run", str(bad), "--out", str(out), "--paths", "5"]):
        proc = sibsim(*args)
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr
        assert (f"{bad}:{line_of(bad, 'acceptence_share')}: referrals.acceptence_share: "
                "unknown key" in err)
        assert f"{bad}:{line_of(bad, 'caseload_limit')}: workforce.caseload_limit:" in err
        assert "greater than or equal to 1" in err
        assert (f"{bad}:{line_of(bad, 'median_days: lots')}: treatment.median_days: "
                "expected a number" in err)
        # the misspelling also leaves the required key missing: reported, not hidden
        assert "referrals.acceptance_share: required key is missing" in err
        assert not out.exists()


def test_python_object_tag_is_refused_without_executing(tmp_path):
    marker = tmp_path / "pwned"
    bad = essex_with(tmp_path, {
        "description: >":
            f"evil: !!python/object/apply:os.system ['touch {marker}']\ndescription: >"})
    proc = sibsim("validate", str(bad))
    assert proc.returncode == 2
    assert "unsafe or unknown YAML tag" in proc.stderr
    assert f"{bad}:{line_of(bad, 'evil:')}" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("replacement, message", [
    ("  acceptance_share: .nan", "finite number"),
    ("  acceptance_share: .inf", "finite number"),
    ("  acceptance_share: true", "boolean"),
    ("  acceptance_share: 1.5", "out of range"),
    ("  acceptance_share: {dist: uniform, low: 0.5, high: 1.5}", "support [0.5, 1.5] out of range"),
    ("  acceptance_share: {dist: gaussian, mean: 0.5}", "dist"),
    ("  acceptance_share: {dist: uniform, low: 0.9, high: 0.5}", "low < high"),
    ("  acceptance_share: {dist: beta, a: 2, b: 3, scale: 1}", "unknown key"),
    ("  acceptance_share: \"0.7\"", "expected a number"),
])
def test_bad_values(tmp_path, replacement, message):
    bad = essex_with(tmp_path, {"  acceptance_share: 0.70": replacement})
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    text = str(info.value)
    assert message in text
    assert f"{bad}:{line_of(bad, replacement.strip()[:20])}: referrals.acceptance_share" in text


def test_duplicate_key_and_cross_field_checks(tmp_path):
    bad = essex_with(tmp_path,
                     {"  screening_days: 14": "  screening_days: 14\n  screening_days: 15"})
    with pytest.raises(ScenarioError, match="referrals.screening_days: duplicate key"):
        load_scenario(bad)
    bad = essex_with(tmp_path, {"  service_end: 2018-12-31": "  service_end: 2011-12-31"}, "b.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    # a check across keys is placed at the first key it names (it had no line)
    assert (f"{bad}:{line_of(bad, 'contract_start:')}: calendar.contract_start: need "
            f"calendar.contract_start <= calendar.referrals_end <= calendar.service_end"
            in str(info.value))
    bad = essex_with(tmp_path, {"  min_days: 10 ": "  min_days: 400 "}, "c.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert (f"{bad}:{line_of(bad, 'min_days: 400')}: treatment.min_days: treatment.min_days "
            f"must be below treatment.max_days" in str(info.value))
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "missing.yaml")


def test_rejection_reason_names_are_names(tmp_path):
    """A reason becomes a paths.parquet column (rejected_<reason>) and a calibration
    quantity: its name is letters, digits, _ and - like a team's or a scenario's."""
    bad = essex_with(tmp_path, {"    not_living_at_home:": "    not living at home:"})
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert (f"{bad}:{line_of(bad, 'not living at home:')}: "
            f"referrals.rejection_reasons.not living at home: String should match pattern"
            in str(info.value))


def test_treatment_lengths_that_define_no_lognormal_are_refused_by_validate(tmp_path):
    # a median below the threshold with a share under it below 0.5: no lognormal has both
    bad = essex_with(tmp_path, {"  short_threshold_days: 90 ": "  short_threshold_days: 900 "})
    proc = sibsim("validate", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:{line_of(bad, 'median_days:')}: treatment.median_days: " \
           "treatment.median_days=142, " \
           "short_threshold_days=900 and share_under_threshold=0.139 do not define a " \
           "lognormal" in proc.stderr
    # a distribution of the median that reaches below the threshold fails some paths
    crossing = essex_with(tmp_path, {"  median_days: 142 ":
                                     "  median_days: {dist: uniform, low: 80, high: 200} "},
                          "crossing.yaml")
    with pytest.raises(ScenarioError, match=r"median_days in \[80, 200\].*allow paths"):
        load_scenario(crossing)
    # bounded on the right side of the threshold, it is fine
    fine = essex_with(tmp_path, {"  median_days: 142 ":
                                 "  median_days: {dist: uniform, low: 100, high: 200} "},
                      "fine.yaml")
    assert load_scenario(fine).scenario.treatment.median_days.support() == (100.0, 200.0)


def test_inconsistent_drawn_treatment_parameters_fail_before_simulating():
    # validation refuses these; a scenario changed without it (model_copy) still fails
    # before any kernel runs
    sc = make_scenario({})
    treatment = sc.treatment.model_copy(update={"median_days": Fixed(value=60.0)})
    sc = sc.model_copy(update={"treatment": treatment})
    with pytest.raises(engine.ParameterError, match="do not define a lognormal"):
        engine.simulate(sc, paths=3)


def test_schema_command_gives_units_for_editors():
    proc = sibsim("schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    props = schema["$defs"]["Referrals"]["properties"]
    assert "[share]" in props["acceptance_share"]["description"]
    assert props["acceptance_share"]["unit"] == "share"
    whole, extending = schema["anyOf"]
    assert whole["additionalProperties"] is False and extending["additionalProperties"] is False


def test_the_json_schema_accepts_every_shipped_scenario_file_and_flags_misspellings(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    import datetime as dt

    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(sibsim("schema").stdout))

    def as_editor_reads(o):   # dates are strings to a JSON Schema validator
        if isinstance(o, dict):
            return {k: as_editor_reads(v) for k, v in o.items()}
        if isinstance(o, list):
            return [as_editor_reads(v) for v in o]
        return o.isoformat() if isinstance(o, dt.date) else o

    files = [f for f in sorted((ESSEX.parent).rglob("*.yaml")) if "targets" not in f.name]
    assert len(files) >= 10   # whole scenarios, files that extend them, stresses and sweeps
    for f in files:
        data = as_editor_reads(yaml.safe_load(f.read_text()))
        assert list(validator.iter_errors(data)) == [], f
    essex = as_editor_reads(yaml.safe_load(ESSEX.read_text()))
    misspelt = {**essex, "referals": essex["referrals"]}
    assert not validator.is_valid(misspelt)
    assert not validator.is_valid({"extends": "essex_mst.yaml", "referals.dispersion": 5})
    assert validator.is_valid({"extends": "essex_mst.yaml", "referrals.dispersion": 5,
                               "contract.outcome_events[0].price": 10})


def test_every_distribution_kind_draws_within_its_support():
    kinds = {
        "fixed": {"dist": "fixed", "value": 0.6},
        "uniform": {"dist": "uniform", "low": 0.5, "high": 0.9},
        "normal": {"dist": "normal", "mean": 0.7, "sd": 0.1, "low": 0.4, "high": 0.95},
        "lognormal": None,
        "beta": {"dist": "beta", "a": 2.0, "b": 3.0, "low": 0.3, "high": 0.9},
        "triangular": {"dist": "triangular", "low": 0.4, "mode": 0.7, "high": 0.8},
    }
    for kind, spec in kinds.items():
        key, spec = (("care", "entry_rate_per_year"),
                     {"dist": "lognormal", "median": 0.8, "sigma": 0.3, "high": 2.0}) \
            if spec is None else (("referrals", "acceptance_share"), spec)
        sc = make_scenario({key[0]: {key[1]: spec}})
        dist = dict(iter_params(sc))[".".join(key)]
        params = engine.draw_parameters(sc, 11, 0, 4000)
        values = params[:, engine.PARAM_COLUMNS[".".join(key)]]
        lo, hi = dist.support()
        assert np.all(values >= lo) and np.all(values <= hi), kind
        if kind == "fixed":
            assert np.all(values == 0.6)
        else:
            se = values.std() / np.sqrt(len(values))
            assert abs(values.mean() - dist.mean()) < 4 * se, kind
            assert values.std() > 0


def test_every_model_parameter_has_a_kernel_column():
    names = [n for n, _ in iter_params(make_scenario(base=with_money()))]
    assert sorted(names) == sorted(engine.PARAM_COLUMNS)
    assert sorted(engine.PARAM_COLUMNS.values()) == list(range(len(names)))


def test_yaml_aliases_work_but_cannot_recurse_or_explode(tmp_path):
    # an anchor and alias, as a user might tie two values together, is fine
    hr = _value_in_essex("hazard_ratio_during")
    tied = essex_with(tmp_path, {f"  hazard_ratio_during: {hr}": f"  hazard_ratio_during: &hr {hr}",
                                 f"  hazard_ratio_after: {hr}": "  hazard_ratio_after: *hr"},
                      "tied.yaml")
    t = load_scenario(tied).scenario.treatment
    assert t.hazard_ratio_after.value == t.hazard_ratio_during.value == float(hr)
    # an alias inside its own anchor would be endless: refused with its line, no traceback
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("name: x\ncalendar: &c {again: *c}\n")
    proc = sibsim("validate", str(recursive))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{recursive}:2: <top>: a YAML alias refers to the anchored value it is inside" \
        in proc.stderr
    # nine aliases a level, nine levels: 9^9 values from a 600-byte file ("billion laughs")
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("name: x\n" + "\n".join(lines) + "\n")
    with pytest.raises(ScenarioError, match="aliases expand this file past 100,000 values"):
        load_scenario(bomb)
    # PyYAML recurses once per level of nesting
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ScenarioError, match="nested too deeply"):
        load_scenario(deep)


def test_numbers_in_exponent_form_are_numbers_as_in_yaml_1_2(tmp_path):
    # PyYAML alone follows YAML 1.1 and reads 7.1e6 and 5251e-3 as text
    rate = _value_in_essex("per_team_per_month")   # e.g. 5.087, written 5087e-3
    sci = essex_with(tmp_path, {"  cap: 7100000 ": "  cap: 7.1e6 ",
                                f"  per_team_per_month: {rate} ":
                                    f"  per_team_per_month: {round(float(rate) * 1000)}e-3 ",
                                "  commitment: 3100000 ": "  commitment: 31E+5 "})
    sc = load_scenario(sci).scenario
    assert sc.contract.cap == 7.1e6 and sc.finance.commitment == 3.1e6
    assert sc.referrals.per_team_per_month.value == float(rate)
    assert sc.workforce.caseload_limit == 5 and isinstance(sc.workforce.caseload_limit, int)
    assert sc.calendar.contract_start.isoformat() == "2012-11-01"
    proc = sibsim("validate", str(sci))
    assert proc.returncode == 0, proc.stderr
    # and on the command line
    out = tmp_path / "out"
    proc = sibsim("run", str(ESSEX), "--paths", "4", "--quiet", "--out", str(out),
                  "--set", "contract.cap=7.1e6", "--set", "care.entry_rate_per_year={scale: 1e0}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "essex_mst" / "manifest.json").read_text())["paths"] == 4


def test_quoted_dates_are_dates_and_impossible_dates_are_errors_at_their_line(tmp_path):
    # an editor following the JSON Schema ("format": "date") quotes dates
    quoted = essex_with(tmp_path, {"  contract_start: 2012-11-01 ":
                                   '  contract_start: "2012-11-01" ',
                                   "  last_payment_date: 2020-10-31 ":
                                   "  last_payment_date: '2020-10-31' "})
    sc = load_scenario(quoted).scenario
    assert sc.calendar.contract_start.isoformat() == "2012-11-01"
    assert sc.contract.last_payment_date.isoformat() == "2020-10-31"
    for i, (old, new, message) in enumerate([
            ("  contract_start: 2012-11-01 ", "  contract_start: 2012-02-30 ",
             "'2012-02-30' is not a calendar date (day is out of range for month)"),
            ("  contract_start: 2012-11-01 ", '  contract_start: "2012-02-30" ',
             "calendar.contract_start: '2012-02-30' is not a calendar date"),
            ("  contract_start: 2012-11-01 ", "  contract_start: 20121101 ",
             "calendar.contract_start: Input should be a valid date")]):
        bad = essex_with(tmp_path, {old: new}, f"bad{i}.yaml")
        proc = sibsim("validate", str(bad))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{bad}:{line_of(bad, 'contract_start:')}: " in proc.stderr
        assert message in proc.stderr


def test_utf16_files_from_windows_tools_are_read_like_utf8(tmp_path):
    text = ESSEX.read_text(encoding="utf-8")
    utf16 = tmp_path / "essex16.yaml"
    utf16.write_bytes(text.encode("utf-16"))          # with its byte-order mark
    assert load_scenario(utf16).scenario == load_scenario(ESSEX).scenario
    child = tmp_path / "child.yaml"                   # extends, read by the composer
    child.write_bytes(b"\xfe\xff" + "extends: essex16.yaml\nname: child\n"
                      "referrals.dispersion: 5\n".encode("utf-16-be"))   # big-endian
    proc = sibsim("validate", str(utf16), str(child))
    assert proc.returncode == 0, proc.stderr
    bad = tmp_path / "bad16.yaml"
    bad.write_bytes(text.replace("  median_days: 142 ", "  median_days: lots ").encode("utf-16"))
    proc = sibsim("validate", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:{line_of(ESSEX, 'median_days: 142')}: treatment.median_days: expected a number" \
        in proc.stderr


def test_a_targets_file_given_as_a_scenario_says_what_it_is():
    targets = ESSEX.parent / "essex_targets.yaml"
    for command in (("validate", str(targets)), ("run", str(targets), "--paths", "2")):
        proc = sibsim(*command)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"error: {targets}: <top>: a calibration targets file, "
                                      "not a scenario: give it to sibsim calibrate")
        assert "1 problem found" in proc.stderr


def test_a_seed_beyond_64_bits_is_a_usage_error_not_a_traceback(tmp_path):
    big = str(2**64)
    proc = sibsim("run", str(ESSEX), "--paths", "2", "--out", str(tmp_path), "--seed", big)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"'--seed': {big} is not in the range 0<=x<={2**63 - 1}" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    proc = sibsim("run", str(ESSEX), "--paths", "2", "--quiet", "--out", str(tmp_path),
                  "--seed", str(2**63 - 1))   # the largest seed a scenario file may give
    assert proc.returncode == 0, proc.stderr


def test_a_last_payment_date_before_the_contract_starts_is_an_error(tmp_path):
    bad = essex_with(tmp_path, {"  last_payment_date: 2020-10-31 ":
                                "  last_payment_date: 2010-01-01 "})
    with pytest.raises(ScenarioError, match="contract.last_payment_date is before "
                                            "calendar.contract_start"):
        load_scenario(bad)


def test_normal_and_lognormal_parameters_truncated_far_in_a_tail_draw_from_the_right_law():
    from scipy import stats

    from simulator.distributions import LogNormal, Normal

    u = (np.arange(2000) + 0.5) / 2000
    # a range 20 to 40 sd above the mean: the draws used to sit at the upper bound
    d = Normal(dist="normal", mean=0.1, sd=0.02, low=0.5, high=0.9)
    law = stats.truncnorm(20, 40, loc=0.1, scale=0.02)
    assert np.allclose(d.ppf(u), law.ppf(u), rtol=0, atol=1e-7)
    assert d.mean() == pytest.approx(law.mean(), abs=1e-9)
    logs = LogNormal(dist="lognormal", median=1.0, sigma=0.1, low=3.0, high=4.0)
    law = stats.truncnorm(np.log(3.0) / 0.1, np.log(4.0) / 0.1, scale=0.1)
    assert np.allclose(np.log(logs.ppf(u)), law.ppf(u), rtol=0, atol=1e-7)
    assert logs.mean() == pytest.approx(np.exp(law.rvs(200_000, random_state=1)).mean(), rel=1e-4)
    # no mass a double can hold (beyond about 37 sd): the bound nearest the mean
    far = Normal(dist="normal", mean=0.0, sd=1.0, low=40.0, high=50.0)
    assert (far.ppf(u) == 40.0).all() and far.mean() == 40.0
