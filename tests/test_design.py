"""Contract design: the contract run alone over paths simulated once gives the figures of
a full simulation with those terms, path by path; the search, its answer and its errors."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simulator
from simulator import compare, design, engine, metrics
from simulator import layout as L
from simulator.cli import main

from helpers import ESSEX, ROOT, with_money

PATHS = 60


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    f = tmp_path_factory.mktemp("design") / "small.yaml"
    f.write_text(yaml.safe_dump(with_money(), sort_keys=False))
    return simulator.load_scenario(f)


@pytest.fixture(scope="module")
def small_search(small):
    return design.ContractSearch(small, PATHS, 11)


def _same_as_full_simulation(search, terms):
    scenario = search.scenario(terms)
    frame, payments, quarters = search.outputs(scenario)
    full = engine.simulate(scenario.scenario, paths=search.paths, seed=search.seed)
    for column in L.OUTPUT_COLUMNS:
        assert np.array_equal(frame[column].to_numpy(), full.paths[column].to_numpy(),
                              equal_nan=True), (terms, column)
    assert np.array_equal(payments, full.by_calendar_quarter[:, :, L.K_OUTCOME_PAYMENTS])
    assert quarters == full.calendar_quarters
    return full


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(price=st.floats(5, 150), cap=st.floats(2e5, 5e6), lag=st.integers(0, 3),
       clawback=st.booleans(), reserve=st.floats(0, 3e5), care_cost=st.floats(50, 500),
       call=st.sampled_from(["exact", "tranche"]), share=st.floats(0, 1))
def test_the_contract_alone_is_a_full_simulation_path_by_path(small_search, price, cap, lag,
                                                              clawback, reserve, care_cost,
                                                              call, share):
    terms = {"contract.price_per_care_day_saved": price, "contract.cap": cap,
             "contract.payment_lag_quarters": lag, "contract.care_cost_per_day": care_cost,
             "finance.reserve": reserve, "finance.investor_share_of_surplus": share}
    terms_more = {"contract.clawback": clawback, "finance.capital_call": call,
                  "finance.tranche_size": 250_000.0}
    search = small_search
    scenario = search.base.derive({**terms, **terms_more})
    frame, payments, _ = search.outputs(scenario)
    full = engine.simulate(scenario.scenario, paths=search.paths, seed=search.seed)
    for column in L.OUTPUT_COLUMNS:
        assert np.array_equal(frame[column].to_numpy(), full.paths[column].to_numpy(),
                              equal_nan=True), column
    assert np.array_equal(payments, full.by_calendar_quarter[:, :, L.K_OUTCOME_PAYMENTS])


def test_a_change_of_service_gets_its_own_simulation(small):
    search = design.ContractSearch(small, PATHS, 3)
    _same_as_full_simulation(search, {"contract.price_per_care_day_saved": 30})
    _same_as_full_simulation(search, {"contract.cap": 1e6})
    assert search.services_simulated == 1          # the contract alone changed
    _same_as_full_simulation(search, {"contract.baseline_care_proportion": 0.4})
    assert search.services_simulated == 2          # the baseline is counted with the care
    _same_as_full_simulation(search, {"contract.payment_lag_quarters": 3})
    assert search.services_simulated == 3          # a longer horizon: another layout


def test_only_the_contract_reads_what_counts_as_contract_only():
    """layout.CONTRACT_ONLY_* name the configuration and parameters that only the contract
    kernels (and the invariants checking them) read: anything else must not."""
    def named(prefix, indices):
        return [k for k, v in vars(L).items() if re.fullmatch(prefix + r"[A-Z_]+", k)
                and isinstance(v, int) and v in indices]
    only = named("C_", L.CONTRACT_ONLY_CONFIG) + named("P_", L.CONTRACT_ONLY_PARAMS)
    assert len(only) == len(L.CONTRACT_ONLY_CONFIG) + len(L.CONTRACT_ONLY_PARAMS)
    allowed = {"contract.py", "invariants.py", "recontract.py"}
    for f in (ROOT / "simulator" / "kernels").glob("*.py"):
        if f.name in allowed:
            continue
        text = f.read_text()
        for name in only:
            assert not re.search(rf"\b{name}\b", text), (f.name, name)


def test_figures_agree_with_the_summary(small_search):
    terms = {"contract.price_per_care_day_saved": 45.0}
    full = _same_as_full_simulation(small_search, terms)
    frame, payments, quarters = small_search.outputs(small_search.scenario(terms))
    s = metrics.summary(full)
    for m in ("investor.multiple.p50", "investor.irr.p50", "investor.prob_loss",
              "commissioner.net_saving.mean", "commissioner.outcome_payments.p95"):
        assert design.figure(m, frame, payments, quarters) == pytest.approx(
            compare.metric_value(s, m), rel=1e-12, abs=1e-12)
    heaviest = max(y["p95"] for y in s["commissioner"]["payments_by_financial_year"])
    assert design.figure("commissioner.year_payments.p95", frame, payments, quarters) == \
        pytest.approx(heaviest, rel=1e-12)


def test_the_search_recommends_the_best_candidate_meeting_every_requirement(small):
    q = design.Question((design.parse_axis("contract.price_per_care_day_saved=20:100:5"),
                         design.parse_axis("contract.cap=1e6:3e6:3")),
                        (design.parse_requirement("investor.multiple.p50>=1.0"),),
                        "commissioner.net_saving.p50", True)
    found = design.search(design.ContractSearch(small, PATHS, 11), q)
    grid = found.grid
    assert len(grid) == 15 and found.services == 1
    ok = grid[grid["investor.multiple.p50"] >= 1.0]
    assert (grid["feasible"] == (grid["investor.multiple.p50"] >= 1.0)).all()
    assert found.best["commissioner.net_saving.p50"] == ok["commissioner.net_saving.p50"].max()
    edge = design.frontier(found)
    assert set(edge["contract.price_per_care_day_saved"]) == set(
        ok["contract.price_per_care_day_saved"])


def test_no_terms_names_the_binding_requirement(small_search):
    q = design.Question((design.parse_axis("contract.price_per_care_day_saved=20:60:3"),),
                        (design.parse_requirement("investor.multiple.p50>=50"),
                         design.parse_requirement("investor.prob_loss<=1")),
                        "commissioner.net_saving.p50", True)
    found = design.search(small_search, q)
    assert found.best is None and not found.grid["feasible"].any()
    requirement, missed = found.binding
    assert requirement.metric == "investor.multiple.p50"
    best_multiple = found.grid["investor.multiple.p50"].max()
    assert missed == pytest.approx(50 - best_multiple)   # the nearest: the largest multiple
    assert found.nearest["investor.multiple.p50"] == best_multiple


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_the_command_answers_and_writes_its_folder(tmp_path):
    done = _run("design", str(ESSEX), "--paths", "400", "--out", str(tmp_path), "--quiet",
                "--vary", "contract.price_per_care_day_saved=30:90:4",
                "--vary", "contract.cap=6e6:9e6:4",
                "--require", "investor.irr.p50>=0.06", "--require", "investor.prob_loss<=0.1",
                "--maximise", "commissioner.net_saving.p50")
    assert done.exit_code == 0, done.output
    assert "recommended: contract.price_per_care_day_saved = " in done.output
    assert "(the same)" in done.output        # the full simulation of the answer agrees
    folder = tmp_path / "essex_mst__design"
    answer = json.loads((folder / "design.json").read_text())
    grid = pd.read_csv(folder / "design_grid.csv")
    feasible = grid[grid["feasible"]]
    assert answer["recommended"]["commissioner.net_saving.p50"] == pytest.approx(
        feasible["commissioner.net_saving.p50"].max(), rel=1e-12)
    book = pd.read_excel(folder / "design.xlsx", sheet_name=None)
    assert list(book) == ["Recommended", "Frontier", "Grid"] and len(book["Grid"]) == 16
    page = (folder / "design.html").read_text()
    assert "Recommended terms" in page and "boundary" in page


def test_a_spec_file_asks_the_same_question(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("vary:\n  contract.price_per_care_day_saved: [30, 90, 4]\n"
                    "require:\n  - investor.multiple.p50 >= 100\n"
                    "maximise: commissioner.net_saving.p50\n")
    done = _run("design", str(ESSEX), "--paths", "200", "--out", str(tmp_path), "--quiet",
                "--spec", str(spec))
    assert done.exit_code == 0, done.output
    assert "no terms meet every requirement: investor.multiple.p50 >= 100 binds" in done.output


@pytest.mark.parametrize("args, named", [
    (["--require", "investor.irr.p50=>0.06"], "investor.irr.p50=>0.06"),
    (["--require", "investor.colour.p50>=1"], "investor.colour.p50"),
    (["--vary", "contract.price_per_care_day_saved=90:30"], "price_per_care_day_saved"),
    (["--vary", "contract.pirce=1:2"], "contract.pirce"),
])
def test_bad_syntax_exits_2_naming_it(tmp_path, args, named):
    base = ["design", str(ESSEX), "--out", str(tmp_path), "--maximise",
            "commissioner.net_saving.p50"]
    if "--vary" not in args:
        base += ["--vary", "contract.cap=6e6:9e6:2"]
    done = _run(*base, *args)
    assert done.exit_code == 2 and named in done.output, done.output
    assert not list(tmp_path.iterdir())   # nothing written


def test_a_bad_spec_file_names_its_line_and_key(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("vary:\n  contract.cap: [4e6]\nmaximise: commissioner.net_saving.p50\n")
    done = _run("design", str(ESSEX), "--out", str(tmp_path / "o"), "--spec", str(spec))
    assert done.exit_code == 2 and f"{spec}:1" in done.output and "vary.contract.cap" in \
        done.output, done.output
