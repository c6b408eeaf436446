"""The Python API: simulate() over any range of paths, results as pandas frames."""
import numpy as np
import pandas as pd
import pytest

import simulator
from simulator import layout as L

from helpers import ESSEX


@pytest.fixture(scope="module")
def essex():
    return simulator.load_scenario(ESSEX)


def test_two_ranges_of_paths_concatenated_are_the_whole_run(essex):
    """Paths [0, 300) and [300, 600) are paths [0, 600): a path depends on its number only."""
    whole = simulator.simulate(essex, paths=600, seed=5)
    first = simulator.simulate(essex, paths=300, seed=5)
    second = simulator.simulate(essex, paths=300, seed=5, path_start=300)
    assert second.path_start == 300 and second.paths["path"].tolist() == list(range(300, 600))
    joined = pd.concat([first.paths, second.paths], ignore_index=True)
    pd.testing.assert_frame_equal(joined, whole.paths, check_exact=True)
    assert np.array_equal(np.concatenate([first.by_quarter("outcome_payments"),
                                          second.by_quarter("outcome_payments")]),
                          whole.by_quarter("outcome_payments"))


@pytest.mark.parametrize("cached", [False, True])
def test_a_first_simulation_loads_the_kernels_as_sibsim_run_does(essex, monkeypatch, cached):
    """On a cold cache, simulate() compiles the kernels through precompile.load_kernels
    (two cores: a helper compiles the contract's and figures' meanwhile); warm, it
    simulates at once."""
    from simulator import engine, precompile

    loaded = []
    monkeypatch.setattr(engine, "kernels_cached", lambda part="simulation": cached)
    monkeypatch.setattr(precompile, "load_kernels",
                        lambda scenario, say=True: loaded.append((scenario.name, say)))
    result = simulator.simulate(essex, paths=20, seed=1)
    assert len(result.paths) == 20
    assert loaded == ([] if cached else [("essex_mst", False)])


def test_overrides_are_checked_and_applied_like_set(essex):
    cheaper = simulator.load_scenario(ESSEX, {"contract.price_per_care_day_saved": 25})
    assert cheaper.scenario.contract.price_per_care_day_saved == 25
    a = simulator.simulate(essex, paths=200, seed=3)
    b = simulator.simulate(cheaper, paths=200, seed=3)
    # common random numbers: the service is the same, every path is paid less
    assert np.array_equal(a.paths["care_days_treated"], b.paths["care_days_treated"])
    assert (b.paths["outcome_payments"] < a.paths["outcome_payments"]).all()
    with pytest.raises(simulator.api.ScenarioError, match="price_per_care_day_saved"):
        simulator.load_scenario(ESSEX, {"contract.price_per_care_day_saved": -1})


def test_the_frames_hold_the_summary_and_the_quarterly_table(essex):
    r = simulator.simulate(essex, paths=400, seed=2)
    flat = r.summary_frame.set_index("figure")["value"]
    assert flat["investor.multiple.mean"] == pytest.approx(r.paths["multiple"].mean(), rel=1e-12)
    assert flat["paths"] == 400
    q = r.quarters
    assert list(q.columns) == ["quarter_start", "financial_year", "line", "statistic", "value"]
    pay = q[(q.line == "outcome_payments") & (q.statistic == "mean")].set_index("quarter_start")
    by_path = r.by_quarter("outcome_payments")
    assert np.allclose(pay["value"].to_numpy(), by_path.mean(axis=0).to_numpy(), rtol=1e-12,
                       atol=1e-9)
    assert by_path.shape == (400, len(r.simulation.calendar_quarters))
    assert set(L.CALENDAR_QUARTER_COLUMNS) >= {"outcome_payments", "capital_calls"}
    with pytest.raises(KeyError, match="not a quarterly line"):
        r.by_quarter("multiple")


def test_importing_the_package_loads_neither_numba_nor_pandas():
    import subprocess
    import sys
    code = "import sys, simulator; print('numba' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_a_result_writes_the_runs_workbook(essex, tmp_path):
    r = simulator.simulate(essex, paths=150, seed=4)
    book = pd.read_excel(r.to_excel(tmp_path / "r.xlsx"), sheet_name=None)
    head = book["Headline"].set_index(["section", "figure"])
    assert head.loc[("investor", "multiple"), "mean"] == pytest.approx(
        r.summary["investor"]["multiple"]["mean"], rel=1e-12)
    assert len(book["Sample of paths"]) == 150


def test_a_result_writes_the_folder_sibsim_run_writes(essex, tmp_path):
    import json

    from simulator.run import run_scenario
    r = simulator.simulate(essex, paths=120, seed=6)
    folder = r.write(tmp_path / "api")
    ran = run_scenario(essex, tmp_path / "cli", paths=120, seed=6, progress=False).folder
    assert folder == tmp_path / "api" / "essex_mst"
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in ran.iterdir())
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "paths.parquet"),
                                  pd.read_parquet(ran / "paths.parquet"), check_exact=True)
    assert json.loads((folder / "summary.json").read_text()) == \
        json.loads((ran / "summary.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["paths"], manifest["seed"]) == (120, 6)
    # the page's plotly.js as sibsim run --plotlyjs file writes it: one file beside the run
    shared = r.write(tmp_path / "shared", plotlyjs="file")
    assert (tmp_path / "shared" / "plotly.min.js").is_file()
    assert "src='../plotly.min.js'" in (shared / "report.html").read_text()
    assert json.loads((shared / "manifest.json").read_text())["plotlyjs"] == "file"
    with pytest.raises(ValueError, match="plotlyjs must be one of inline, file, cdn"):
        r.write(tmp_path / "bad", plotlyjs="embedded")
    assert not (tmp_path / "bad").exists()


def test_a_difference_is_paired_on_the_same_seed_and_paths(essex):
    import math
    base = simulator.simulate(essex, paths=300, seed=8)
    dearer = simulator.simulate(essex.derive({"costs.per_team_per_quarter": {"scale": 1.2}}),
                                 paths=300, seed=8)
    d = dearer.paths["multiple"].to_numpy() - base.paths["multiple"].to_numpy()
    paired = dearer.difference(base, "investor.multiple.mean")
    assert bool(paired["paired"]) and paired["difference"] == pytest.approx(d.mean(), rel=1e-12)
    assert paired["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(300), rel=1e-9)
    other = simulator.simulate(essex.derive({"costs.per_team_per_quarter": {"scale": 1.2}}),
                               paths=300, seed=9)
    independent = other.difference(base, "investor.multiple.mean")
    se = [r.paths["multiple"].std(ddof=1) / math.sqrt(300) for r in (other, base)]
    assert not independent["paired"]
    assert independent["se"] == pytest.approx(math.hypot(*se), rel=1e-9)
    assert independent["se"] > 10 * paired["se"]   # what common random numbers buy
    same = base.difference(base, "investor.multiple.mean")
    assert (same["difference"], same["se"]) == (0.0, 0.0)
    with pytest.raises(KeyError, match="per-path definition"):
        base.difference(base, "investor.multiple.colour")


def test_a_run_against_the_published_targets(essex):
    from helpers import ROOT
    r = simulator.simulate(essex, paths=200, seed=2)
    table = r.against_targets(ROOT / "scenarios" / "essex_targets.yaml").set_index("target")
    served = table.loc["young people served"]
    assert served["published"] == 388 and served["role"] == "fit"
    assert served["simulated"] == pytest.approx(r.paths["started"].mean(), rel=1e-12)
    assert served["low"] < served["simulated"] < served["high"]
    within = table[table.bound == "within"]
    inside = (within.simulated - within.published).abs() <= within.tolerance
    assert (inside == within.met).all()


def test_a_batch_from_python(tmp_path):
    from helpers import ROOT
    stress = ROOT / "scenarios" / "stress" / "essex_costs_plus20.yaml"
    b = simulator.run_batch([stress], tmp_path, paths=60)
    assert set(b.table["scenario"]) == {"essex_mst", "essex_costs_plus20"}
    assert b.report.is_file() and not b.failed
    row = b.table.set_index("scenario").loc["essex_costs_plus20"]
    mine = pd.read_parquet(tmp_path / "essex_costs_plus20" / "paths.parquet")
    assert row["investor.multiple.mean"] == pytest.approx(mine["multiple"].mean(), rel=1e-12)
    assert (tmp_path / "plotly.min.js").is_file()   # one copy, which every page loads
    alone = simulator.run_batch([stress], tmp_path / "inline", paths=60, plotlyjs="inline")
    assert not (tmp_path / "inline" / "plotly.min.js").exists()
    assert "plotly.min.js" not in alone.report.read_text()
