"""results.xlsx, written with every run: read back, its figures are summary.json's."""
import json

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from simulator.compose import load_composed
from simulator.run import run_scenario

from helpers import ROOT

SHEETS = ["Headline", "Inputs", "Quarterly cash flows", "Payments by year",
          "Investor distribution", "Sample of paths"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wb")
    return run_scenario(load_composed(ROOT / "scenarios" / "essex_uncertain.yaml"), out,
                        paths=300, progress=False)


def test_the_workbook_holds_the_summarys_figures(run):
    book = pd.read_excel(run.folder / "results.xlsx", sheet_name=None)
    assert list(book) == SHEETS
    summary = json.loads((run.folder / "summary.json").read_text())
    head = book["Headline"].set_index(["section", "figure"])
    for section, figure, stat in [("investor", "multiple", "mean"), ("investor", "multiple", "se"),
                                  ("investor", "irr", "p50"), ("commissioner", "net_saving", "p95"),
                                  ("service", "care_proportion", "mean")]:
        assert head.loc[(section, figure), stat] == pytest.approx(summary[section][figure][stat],
                                                                  rel=1e-12)
    prob_loss = summary["investor"]["prob_loss"]
    assert head.loc[("investor", "prob_loss"), "mean"] == pytest.approx(prob_loss, abs=1e-12)
    by_year = book["Payments by year"]
    expected = pd.DataFrame(summary["commissioner"]["payments_by_financial_year"])
    assert by_year["year"].tolist() == expected["year"].tolist()
    assert np.allclose(by_year["p95"], expected["p95"], rtol=1e-12)
    quarters = pd.read_parquet(run.folder / "quarters.parquet")
    assert np.allclose(book["Quarterly cash flows"]["capital_calls_p50"],
                       quarters["capital_calls_p50"], rtol=1e-12)
    paths = pd.read_parquet(run.folder / "paths.parquet")
    dist = book["Investor distribution"].set_index("percentile")
    assert dist.loc[0.5, "multiple"] == pytest.approx(np.percentile(paths["multiple"], 50))
    assert len(book["Sample of paths"]) == 200


def test_every_input_with_its_distribution_and_unit(run):
    inputs = pd.read_excel(run.folder / "results.xlsx", sheet_name="Inputs").set_index("input")
    price = inputs.loc["contract.price_per_care_day_saved"]
    assert price["value"] == 50 and "[GBP/day]" in price["description"]
    referrals = inputs.loc["referrals.per_team_per_month"]
    assert referrals["distribution"].startswith("triangular(")
    assert referrals["mean"] == pytest.approx(5.0833333, rel=1e-6)
    # each input's source, read from the comment on the line that sets it
    assert referrals["source"] == "ASSUMPTION" and \
        "scenarios/essex_uncertain.yaml:" in referrals["set_at"]
    care_cost = inputs.loc["contract.care_cost_per_day"]
    assert care_cost["source"] == "ASSUMPTION" and "essex_mst.yaml:" in care_cost["set_at"]
    assert inputs.loc["treatment.median_days", "source"] == "CITED"
    assert "[REES2019]" in inputs.loc["treatment.median_days", "source_note"]


def test_money_in_pounds_shares_in_per_cent_and_frozen_headers(run):
    book = load_workbook(run.folder / "results.xlsx")
    head = book["Headline"]
    assert head.freeze_panes == "A2"
    formats = {head.cell(row=i, column=2).value: head.cell(row=i, column=3).number_format
               for i in range(2, head.max_row + 1)}
    assert formats["net_saving"] == '"£"#,##0' and formats["prob_loss"] == "0.0%"
    assert formats["multiple"] == "General"
    assert book["Payments by year"].cell(row=2, column=2).number_format == '"£"#,##0'


def test_a_batch_writes_its_summary_as_a_workbook_too(tmp_path):
    from test_batch import EXPECTED, scenario_folder

    from simulator.batch import plan_batch, run_batch
    out = tmp_path / "out"
    scenarios = scenario_folder(tmp_path)
    run_batch(plan_batch([scenarios]), out)
    csv = pd.read_csv(out / "batch_summary.csv")
    book = pd.read_excel(out / "batch_summary.xlsx", sheet_name="Batch")
    assert book["scenario"].tolist() == csv["scenario"].tolist() == EXPECTED
    assert np.allclose(book["investor.multiple.mean"], csv["investor.multiple.mean"],
                       rtol=1e-12, equal_nan=True)
    # each variant's own workbook only when asked for (a batch of hundreds would carry
    # hundreds); a finished variant without it is run again when it is
    assert not any(out.glob("*/results.xlsx"))
    leftover = out / ".batch_summary.xlsx.k1ll3d.tmp.xlsx"   # a batch killed mid-write
    leftover.write_bytes(b"PK")
    run_batch(plan_batch([scenarios]), out, workbooks=True)
    assert not leftover.exists()
    assert {p.parent.name for p in out.glob("*/results.xlsx")} == set(EXPECTED)
