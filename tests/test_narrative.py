"""The report's words: sentences from the figures, what each headline figure means, the
contract and assumptions on the page, and the quick paired sensitivity behind them."""
import html
import json
import re

import pytest

import simulator
from simulator import metrics, narrative, reports
from simulator.run import run_scenario

from helpers import ESSEX


@pytest.fixture(scope="module")
def essex():
    return simulator.load_scenario(ESSEX)


@pytest.fixture(scope="module")
def essex_run(essex, tmp_path_factory):
    return run_scenario(essex, tmp_path_factory.mktemp("narrative"), paths=400, seed=3,
                        progress=False)


def _row(sens, label, figure):
    (row,) = [r for r in sens["rows"] if r["input"] == label and r["figure"] == figure]
    return row


def test_the_sensitivity_is_paired_and_exact_where_the_model_is_linear(essex):
    sens = narrative.quick_sensitivity(essex, seed=5, paths=200)
    base = simulator.simulate(essex, paths=200, seed=5).paths
    care_cost = _row(sens, "care cost per day", "commissioner.net_saving.mean")
    # net saving = days saved x care cost - payments: linear in the care cost
    avoided = base["care_costs_avoided"].mean()
    assert care_cost["high"] - care_cost["base"] == pytest.approx(0.2 * avoided, rel=1e-9)
    assert care_cost["base"] - care_cost["low"] == pytest.approx(0.2 * avoided, rel=1e-9)
    # the care cost moves no money between investors and the service; costs move none
    # of the commissioner's
    multiple = _row(sens, "care cost per day", "investor.multiple.mean")
    assert multiple["low"] == multiple["base"] == multiple["high"]
    assert multiple["low_se"] == 0.0
    costs = _row(sens, "service costs", "commissioner.net_saving.mean")
    assert costs["low"] == costs["base"] == costs["high"]
    dearer = _row(sens, "service costs", "investor.multiple.mean")
    assert dearer["high"] < dearer["base"] < dearer["low"]
    assert dearer["base"] == pytest.approx(base["multiple"].mean(), rel=1e-12)
    assert 0 < dearer["high_se"] < (dearer["base"] - dearer["high"]) / 4


def test_the_sentences_say_the_runs_figures(essex_run):
    s = json.loads((essex_run.folder / "summary.json").read_text())
    charts = json.loads((essex_run.folder / "charts.json").read_text())
    said = narrative.sentences(s, reports.input_rows(charts), charts["sensitivity"])
    text = " ".join(said)
    inv, c = s["investor"], s["commissioner"]
    assert f"In 19 of 20 simulated futures investors get back at least " \
           f"{inv['multiple']['p05']:.2f}× their £3.10m commitment" in text
    assert f"chance of a loss is {inv['prob_loss']:.1%}" in text
    assert f"£{c['outcome_payments']['p50'] / 1e6:,.2f}m in outcome payments" in text
    assert f"still have paid £{c['no_effect_payments']['mean'] / 1e6:,.2f}m" in text
    assert f"{c['deadweight_share']['mean']:.1%} of the payments" in text
    assert "at a care cost of £200 a day (ASSUMPTION)" in text
    top = narrative.most_sensitive(charts["sensitivity"], "investor.multiple.mean")
    assert len(top) == 3 and f"moves most with {top[0]['input']}" in text
    swings = [abs(r["high"] - r["low"]) for r in top]
    assert swings == sorted(swings, reverse=True)


def test_the_report_shows_the_summary_contract_and_assumptions(essex_run):
    page = (essex_run.folder / "report.html").read_text()
    s = json.loads((essex_run.folder / "summary.json").read_text())
    brief = page[page.index("id='in-brief'"):page.index("Headline figures")]
    assert f"{s['investor']['multiple']['p05']:.2f}×" in brief
    contract = page[page.index("Contract and finance terms"):]
    for key, value, source in [("contract.price_per_care_day_saved", "50", "ASSUMPTION"),
                               ("contract.cap", "7,100,000", "CITED"),
                               ("finance.commitment", "3,100,000", "CITED")]:
        assert re.search(rf"<td>{re.escape(key)}</td><td>{value}</td><td>[^<]*</td>"
                         rf"<td>{source}</td>", contract), key
    assert "finance.drawdown_schedule[*].amount" in contract   # a long list, one row
    assumed = page[page.index("Assumptions behind the figures"):]
    assert re.search(r"<td>contract.care_cost_per_day</td>", contract)
    assert re.search(r"<td>treatment.hazard_ratio_during</td><td>[^<]*</td><td>[^<]*</td>"
                     r"<td>FITTED</td>", assumed)
    for label, _ in metrics.headline_rows(s):   # each headline figure says what it measures
        meaning = html.escape(narrative.HEADLINE_MEANING[label])
        assert f"<td>{html.escape(label)}</td><td>" in page and f"<td>{meaning}</td>" in page


def test_money_puts_the_sign_before_the_pound():
    """A negative net saving reads −£7.64m everywhere (never £-7.64m)."""
    money = metrics.money
    assert money(-7_640_000.0) == "−£7.64m" and money(3_100_000.0) == "£3.10m"
    assert money(float("nan")) == "n/a" and money(None) == "n/a"
    summary = {"service": {"children_treated": {"mean": 1.0, "p05": 1.0, "p95": 1.0},
                           "care_proportion": {"mean": 0.1},
                           "counterfactual_care_proportion": {"mean": 0.2},
                           "care_days_saved": {"mean": 5.0}},
               "commissioner": {"outcome_payments": {"mean": 1e6, "p50": 1e6, "p95": 2e6},
                                "prob_cap_reached": 0.0, "no_effect_payments": {"mean": 0.0},
                                "net_saving": {"p50": -7_640_000.0}}}
    assert ("net saving to the commissioner (p50)", "−£7.64m") in metrics.headline_rows(summary)
