"""Composable scenarios: overrides and operations, extends, stresses, sweeps, --set, and
clear errors (file, line, key; exit status 2; nothing written) before any simulation."""
import json
import textwrap

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from simulator import compose
from simulator.cli import main
from simulator.compose import apply_overrides, load_composed, load_variants
from simulator.loader import ScenarioError, load_scenario
from simulator.schema import Scenario, iter_params

from helpers import ESSEX, small_scenario_dict, with_money

U = np.linspace(0.001, 0.999, 101)
KINDS = {
    "fixed": 0.8,
    "uniform": {"dist": "uniform", "low": 0.5, "high": 1.0},
    "normal": {"dist": "normal", "mean": 0.8, "sd": 0.1, "low": 0.5, "high": 1.2},
    "lognormal": {"dist": "lognormal", "median": 0.8, "sigma": 0.3, "low": 0.2, "high": 2.0},
    "beta": {"dist": "beta", "a": 2.0, "b": 3.0},
    "triangular": {"dist": "triangular", "low": 0.4, "mode": 0.7, "high": 1.1},
}
KEY = "care.entry_rate_per_year"


def ppf_of(data: dict, key: str = KEY) -> np.ndarray:
    return dict(iter_params(Scenario.model_validate(data)))[key].ppf(U)


def with_entry_rate(spec) -> dict:
    d = small_scenario_dict()
    d["care"]["entry_rate_per_year"] = spec
    return d


def write(path, data: dict | str):
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


# --------------------------------------------------------------------------- operations
@pytest.mark.parametrize("kind", list(KINDS))
def test_scale_multiplies_every_draw_of_every_distribution_kind(kind):
    d = with_entry_rate(KINDS[kind])
    scaled = apply_overrides(d, {KEY: {"scale": 1.7}})
    np.testing.assert_allclose(ppf_of(scaled), 1.7 * ppf_of(d), rtol=1e-12)
    assert d["care"]["entry_rate_per_year"] == KINDS[kind]  # the input is not modified


@pytest.mark.parametrize("kind", ["fixed", "uniform", "normal", "beta", "triangular"])
def test_add_shifts_every_draw(kind):
    d = with_entry_rate(KINDS[kind])
    shifted = apply_overrides(d, {KEY: {"add": 0.25}})
    np.testing.assert_allclose(ppf_of(shifted), ppf_of(d) + 0.25, rtol=1e-12)


def test_power_is_exact_for_numbers_and_lognormals_and_halves_the_log_effect():
    for kind in ("fixed", "lognormal"):
        d = with_entry_rate(KINDS[kind])
        np.testing.assert_allclose(ppf_of(apply_overrides(d, {KEY: {"power": 0.5}})),
                                   ppf_of(d) ** 0.5, rtol=1e-12)
    halved = apply_overrides(small_scenario_dict(),
                             {"treatment.hazard_ratio_after": {"power": 0.5}})
    assert halved["treatment"]["hazard_ratio_after"] == pytest.approx(0.4 ** 0.5)
    # uniform: the bounds are raised to the power (the shape between them is kept)
    d = with_entry_rate(KINDS["uniform"])
    assert apply_overrides(d, {KEY: {"power": 2}})["care"]["entry_rate_per_year"] == \
        {"dist": "uniform", "low": 0.25, "high": 1.0}


@pytest.mark.parametrize("spec, op, message", [
    (KINDS["lognormal"], {"add": 1}, "cannot add to a lognormal"),
    (KINDS["normal"], {"power": 2}, "cannot raise a normal"),
    (KINDS["uniform"], {"scale": -1}, "factor >= 0"),
    (KINDS["uniform"], {"power": 0}, "exponent > 0"),
    (KINDS["uniform"], {"scale": "lots"}, "needs a finite number"),
])
def test_impossible_operations_are_errors(spec, op, message):
    with pytest.raises(ScenarioError, match=message):
        apply_overrides(with_entry_rate(spec), {KEY: op})


def test_set_merge_replace_and_counts():
    d = small_scenario_dict()
    dotted = apply_overrides(d, {"referrals.dispersion": 8,
                                 "workforce.teams[1].therapists": {"scale": 2}})
    nested = apply_overrides(d, {"referrals": {"dispersion": 8},
                                 "workforce": {"teams[1]": {"therapists": {"scale": 2}}}})
    assert dotted == nested
    assert dotted["referrals"]["acceptance_share"] == 0.7          # sections merge key by key
    assert dotted["workforce"]["teams"][1]["therapists"] == 6      # a count stays a whole number
    assert isinstance(dotted["workforce"]["teams"][1]["therapists"], int)
    replaced = apply_overrides(d, {"referrals.rejection_reasons": {"c": 1.0}})
    assert replaced["referrals"]["rejection_reasons"] == {"c": 1.0}  # mappings of values replace
    dist = apply_overrides(with_entry_rate(KINDS["uniform"]),
                           {KEY: {"dist": "fixed", "value": 0.3}})
    assert dist["care"]["entry_rate_per_year"] == {"dist": "fixed", "value": 0.3}
    # an absent field is scaled from its schema default; a null one cannot be
    money = with_money()
    added = apply_overrides(money, {"costs.per_case_started": {"add": 100}})
    assert added["costs"]["per_case_started"] == 100
    with pytest.raises(ScenarioError, match="not set"):
        apply_overrides(d, {"treatment.effect_half_life_days": {"scale": 2}})


@pytest.mark.parametrize("key, message", [
    ("referrals.per_team_per_mnth", "unknown key"),
    ("nonsense", "unknown key"),
    ("workforce.teams.t1", "is a list"),
    ("workforce.teams[7].therapists", "there is no [7]"),
    ("calendar.tracking_from.x", "has no key"),
])
def test_unknown_keys_are_named(key, message):
    with pytest.raises(ScenarioError) as info:
        apply_overrides(small_scenario_dict(), {key: 3})
    assert message in str(info.value) and key.split(".")[0] in str(info.value)


def test_scaling_a_text_field_is_an_error():
    with pytest.raises(ScenarioError, match="calendar.tracking_from: scale applies to numbers"):
        apply_overrides(small_scenario_dict(), {"calendar.tracking_from": {"scale": 2}})


def test_two_operations_in_one_mapping_are_a_clear_error_and_two_overrides_work():
    with pytest.raises(ScenarioError, match=r"an operation is one of .* alone; got "
                                            r"\{'scale': 2, 'add': 1\}"):
        apply_overrides(small_scenario_dict(),
                        {"referrals.per_team_per_month": {"scale": 2, "add": 1}})
    from simulator.overrides import apply, flatten
    both = apply(small_scenario_dict(), flatten({"referrals.per_team_per_month": {"scale": 2}})
                 + flatten({"referrals.per_team_per_month": {"add": 1}}))
    assert both["referrals"]["per_team_per_month"] == 4.0 * 2 + 1


# --------------------------------------------------------------------------- extends
@pytest.fixture
def family(tmp_path):
    """base.yaml <- child.yaml <- grandchild.yaml, in two folders."""
    base = write(tmp_path / "base.yaml", with_money())
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml", textwrap.dedent("""\
        extends: ../base.yaml
        name: child
        referrals.per_team_per_month: {scale: 0.5}   # referrals/team/month
        treatment:
          hazard_ratio_after: {power: 0.5}           # ratio
        """))
    grandchild = write(tmp_path / "sub" / "grandchild.yaml", textwrap.dedent("""\
        extends: child.yaml
        name: grandchild
        costs.set_up: {scale: 2}
        """))
    return base, child, grandchild


def test_extends_chain_applies_each_layer(family):
    base, child, grandchild = family
    b = load_composed(base)
    assert b.sha256 == load_scenario(base).sha256   # a plain file loads exactly as before
    c = load_composed(child)
    g = load_composed(grandchild)
    assert c.scenario.referrals.per_team_per_month.value == 2.0
    assert c.scenario.treatment.hazard_ratio_after.value == pytest.approx(0.4 ** 0.5)
    assert c.scenario.referrals.acceptance_share == b.scenario.referrals.acceptance_share
    assert g.scenario.costs.set_up.value == 100_000.0 and g.scenario.name == "grandchild"
    assert g.scenario.referrals.per_team_per_month.value == 2.0
    assert [s.rsplit("/", 1)[-1] for s, _ in g.sources] == ["base.yaml", "child.yaml",
                                                            "grandchild.yaml"]
    assert g.sha256 != c.sha256 and len(g.sha256) == 64
    assert g.manifest_extra()["sources"][-1]["file"].endswith("child.yaml")


def test_errors_name_the_file_and_line_that_set_the_key(family, tmp_path):
    base, child, _ = family
    bad = write(tmp_path / "sub" / "bad.yaml", textwrap.dedent("""\
        extends: child.yaml
        name: bad
        referrals.acceptance_share: {scale: 3}
        workforce.caseload_limt: 4
        """))
    with pytest.raises(ScenarioError) as info:
        load_composed(bad)
    text = str(info.value)
    assert f"{bad}:3: referrals.acceptance_share: value 2.1 out of range" in text
    assert f"{bad}:4: workforce.caseload_limt: unknown key" in text
    # a value that is wrong in the base is reported at the base's line
    base.write_text(base.read_text().replace("acceptance_share: 0.7", "acceptance_share: 7"))
    with pytest.raises(ScenarioError) as info:
        load_composed(child)
    assert (f"{base}:{line_of(base, 'acceptance_share: 7')}: referrals.acceptance_share"
            in str(info.value))


def test_extends_cycle_and_missing_base_are_clear_errors(tmp_path):
    a = write(tmp_path / "a.yaml", "name: a\nextends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(ScenarioError) as info:
        load_composed(a)
    assert "b.yaml:1: extends: extends cycle:" in str(info.value)
    assert str(info.value).count("a.yaml") >= 2
    lost = write(tmp_path / "lost.yaml", "name: lost\n\nextends: nowhere/base.yaml\n")
    with pytest.raises(ScenarioError,
                       match=r"lost.yaml:3: extends: base file not found: nowhere/base.yaml"):
        load_composed(lost)


# --------------------------------------------------------------------------- stresses and sweeps
def test_stresses_and_sweeps_become_named_variants_on_the_same_seed(tmp_path):
    d = with_money()
    d["stresses"] = {"fewer": {"referrals.per_team_per_month": {"scale": 0.7}},
                     "late": {"calendar.start_delay_months": {"add": 6}}}
    d["sweeps"] = {"price": {"contract.price_per_care_day_saved": [40, 80]},
                   "grid": {"treatment.hazard_ratio_after": [0.3, 0.5, 0.7],
                            "costs.per_team_per_quarter": [{"scale": 0.9}, {"scale": 1.1}]}}
    f = write(tmp_path / "s.yaml", d)
    variants = load_variants(f)
    names = [v.name for v in variants]
    assert names[:5] == ["small", "small__fewer", "small__late", "small__price_1", "small__price_2"]
    assert len(names) == 1 + 2 + 2 + 6 and names[-1] == "small__grid_6"
    assert {v.seed for v in variants} == {7} and {v.n_paths() for v in variants} == {200}
    assert all(v.base == "small" for v in variants[1:]) and variants[0].base is None
    last = variants[-1].loaded.scenario
    assert last.treatment.hazard_ratio_after.value == 0.7
    assert last.costs.per_team_per_quarter.value == pytest.approx(66_000)
    assert variants[2].loaded.scenario.calendar.start_delay_months.value == 6
    assert variants[-1].change == {"treatment.hazard_ratio_after": 0.7,
                                   "costs.per_team_per_quarter": {"scale": 1.1}}


@pytest.mark.parametrize("entry, message", [
    ("sweeps:\n  s:\n    calendar.tracking_from: [referral, treatment_start]\n",
     "calendar.tracking_from: sweeps vary numbers and distributions; calendar.tracking_from "
     "is a text field"),
    ("sweeps:\n  s:\n    referrals.dispersion: [1, two]\n", "sweep values must be numbers"),
    ("stresses:\n  s:\n    simulation.seed: 3\n", "cannot change name or simulation"),
    ("stresses:\n  s:\n    referrals.dispersal: 3\n", "referrals.dispersal: unknown key"),
    ("stresses:\n  bad name:\n    referrals.dispersion: 3\n", "letters, digits"),
    ("stresses:\n  s: {}\n", "stresses.s: expected a mapping of keys to values, e.g. "
     "{referrals.per_team_per_month: {scale: 0.7}} (this one is empty: it would change nothing)"),
    ("stresses: {}\n", "stresses must be a mapping of names to overrides (this one is empty"),
])
def test_malformed_stresses_and_sweeps_name_file_and_line(tmp_path, entry, message):
    f = write(tmp_path / "s.yaml", yaml.safe_dump(with_money(), sort_keys=False) + entry)
    with pytest.raises(ScenarioError) as info:
        load_variants(f)
    text = str(info.value)
    assert message in text
    last_line = len(f.read_text().splitlines())
    assert f"{f}:{last_line}:" in text or f"{f}:{last_line - 1}:" in text


def test_the_scenario_file_rule(tmp_path):
    targets = write(tmp_path / "targets.yaml", "targets:\n  children_treated: 388\n")
    assert "not a scenario" in compose.scenario_file_kind(targets)
    assert compose.scenario_file_kind(ESSEX) is None
    assert compose.scenario_file_kind(write(tmp_path / "x.yaml", "extends: a.yaml\n")) is None
    assert compose.scenario_file_kind(write(tmp_path / "y.yaml", "a: [unclosed\n")) is None


# --------------------------------------------------------------------------- command line
def test_run_set_is_validated_like_the_file_and_recorded(tmp_path):
    f = write(tmp_path / "small.yaml", with_money())
    out = tmp_path / "out"
    runner = CliRunner()
    bad = runner.invoke(main, ["run", str(f), "--out", str(out), "--paths", "5",
                               "--set", "referrals.per_team_per_mnth=3",
                               "--set", "referrals.acceptance_share=1.5",
                               "--set", "novalue"])
    assert bad.exit_code == 2
    assert ("--set referrals.per_team_per_mnth=3: referrals.per_team_per_mnth: unknown key"
            in bad.output)
    assert "--set novalue: novalue: expected KEY=VALUE" in bad.output
    assert not out.exists()
    bad = runner.invoke(main, ["run", str(f), "--out", str(out), "--set",
                               "referrals.acceptance_share=1.5"])
    assert bad.exit_code == 2 and ("--set referrals.acceptance_share=1.5: "
                                   "referrals.acceptance_share: value 1.5" in bad.output)
    assert not out.exists()
    good = runner.invoke(main, ["run", str(f), "--out", str(out), "--paths", "20", "--quiet",
                                "--set", "treatment.hazard_ratio_after={power: 0.5}",
                                "--set", "name=small_weaker"])
    assert good.exit_code == 0, good.output
    manifest = json.loads((out / "small_weaker" / "manifest.json").read_text())
    assert manifest["overrides"] == {"treatment.hazard_ratio_after": {"power": 0.5},
                                     "name": "small_weaker"}


def test_a_key_inside_a_mapping_an_earlier_value_replaced_is_an_error(tmp_path):
    """--set a mapping to a list, then --set a key inside it: a problem naming both, not a
    TypeError traceback."""
    f = write(tmp_path / "small.yaml", with_money())
    with pytest.raises(ScenarioError) as info:
        compose.load_with_assignments(f, ["referrals.rejection_reasons=[1]",
                                          "referrals.rejection_reasons.placed_in_care=1"])
    assert ("--set referrals.rejection_reasons.placed_in_care=1: "
            "referrals.rejection_reasons.placed_in_care: referrals.rejection_reasons is not a "
            "mapping here (it was set to [1]), so it has no key placed_in_care"
            in str(info.value))


def test_a_check_across_keys_names_the_key_just_changed(tmp_path):
    """A section's or the scenario's own check (no key of its own) is reported at the key
    it names that was set last: on the command line, else in the extending file."""
    f = write(tmp_path / "small.yaml", with_money())
    cases = {"treatment.min_days=400": "treatment.min_days",
             "calendar.referrals_end=2000-01-01": "calendar.referrals_end",
             "workforce.teams[0].start_date=2030-01-01": "workforce.teams[0].start_date",
             "referrals.rejection_reasons={a: 0.5, b: 0.6}": "referrals.rejection_reasons"}
    for assignment, key in cases.items():
        with pytest.raises(ScenarioError) as info:
            compose.load_with_assignments(f, [assignment])
        [problem] = info.value.problems
        assert (problem.file, problem.key) == (f"--set {assignment}", key), problem
    child = write(tmp_path / "child.yaml", "extends: small.yaml\nname: child\n\n"
                                            "treatment.max_days: 5\n")
    with pytest.raises(ScenarioError) as info:
        compose.load_composed(child)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.key) == (str(child), 4, "treatment.max_days")
    assert problem.message == "treatment.min_days must be below treatment.max_days"


def test_validate_checks_stresses_and_extends(tmp_path, family):
    _, child, _ = family
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(child), str(ESSEX)])
    assert ok.exit_code == 0 and "ok: " in ok.output and "(child)" in ok.output
    d = with_money()
    d["sweeps"] = {"s": {"name": ["a", "b"]}}
    bad = write(tmp_path / "bad.yaml", d)
    result = runner.invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2 and "bad.yaml" in result.output and "name" in result.output


@pytest.mark.parametrize("case", ["sweep_text", "cycle", "missing_base", "unknown_key",
                                  "duplicate_name"])
def test_batch_rejects_malformed_variants_before_simulating(tmp_path, case):
    scen = tmp_path / "scen"
    scen.mkdir()
    d = with_money()
    write(scen / "good.yaml", d)
    if case == "sweep_text":
        d = dict(d, name="other", sweeps={"s": {"calendar.tracking_from": ["referral"]}})
        write(scen / "bad.yaml", d)
        expected = "bad.yaml:"
    elif case == "cycle":
        write(scen / "c1.yaml", "extends: c2.yaml\nname: c1\n")
        write(scen / "c2.yaml", "extends: c1.yaml\nname: c2\n")
        expected = "extends cycle"
    elif case == "missing_base":
        write(scen / "m.yaml", "extends: ../nowhere.yaml\nname: m\n")
        expected = "m.yaml:1: extends: base file not found"
    elif case == "unknown_key":
        write(scen / "u.yaml", "extends: good.yaml\nname: u\nfinance.comitment: 3\n")
        expected = "u.yaml:3: finance.comitment: unknown key"
    else:
        write(scen / "v.yaml", "extends: good.yaml\nfinance.commitment: 3000000\n")
        expected = "v.yaml: name: 'small' (inherited through extends) is also the name"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["batch", str(scen), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "nothing was written" in result.output
    assert not out.exists()


def test_every_reader_composes_a_file_that_extends_another():
    """One loader: the plain load_scenario (notebooks, benchmarks, the library) composes a
    file that extends another exactly as sibsim run does."""
    from simulator.compose import load_composed
    from simulator.loader import load_scenario

    stress = ESSEX.parent / "stress" / "essex_start_like.yaml"
    assert load_scenario(stress).scenario == load_composed(stress).scenario
    assert load_scenario(stress).scenario.treatment.hazard_ratio_during.value == 0.9
