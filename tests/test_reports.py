"""HTML reports: what report.html and batch_report.html hold, that they are built from
aggregates (size independent of the path count), rebuilt byte for byte by `sibsim report`,
written atomically, and that the views follow the scenario's sections."""
import html
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from simulator import metrics, plotly_js, reports
from simulator.batch import plan_batch, run_batch
from simulator.cli import main
from simulator.loader import load_scenario
from simulator.run import run_scenario

from helpers import small_scenario_dict, with_money

PLOTLY_BANNER = "plotly.js v"  # the licence header at the top of the bundled plotly.js


def scenario_file(tmp_path, d: dict, name: str):
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump({**d, "name": name}, sort_keys=False))
    return load_scenario(f)


def figures(page: str) -> dict:
    """The chart specs embedded in a report page."""
    m = re.search(r"const FIGURES=(\{.*?\});\n", page, re.S)
    assert m, "no FIGURES in the page"
    return json.loads(m.group(1).replace("<\\/", "</"))


def script_sources(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc='([^']*)'", page)


def titles(page: str) -> list[str]:
    return [re.sub(r"<br>", " ", f["layout"]["title"]["text"]) for f in figures(page).values()]


@pytest.fixture(scope="module")
def money_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("money")
    loaded = scenario_file(tmp, with_money(), "money")
    return run_scenario(loaded, tmp / "out", paths=300, seed=4, progress=False)


def test_run_writes_a_self_contained_report_with_every_view(money_run):
    folder = money_run.folder
    assert {"report.html", "charts.json"} <= {p.name for p in folder.iterdir()}
    assert "report.html" in money_run.manifest["outputs"]
    page = (folder / "report.html").read_text()
    assert page.count(PLOTLY_BANNER) == 1            # plotly.js inline, once
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched: works offline
    assert money_run.manifest["plotlyjs"] == "inline"
    for _, value in metrics.headline_rows(money_run.summary):
        assert value in page                          # the headline table, at the top
    assert page.index("probability of a loss") < page.index("id='chart-1'")
    for section in ("Investor view", "Commissioner view", "Service view"):
        assert section in page
    found = " | ".join(titles(page))
    for words in ("Multiple on committed capital", "Investor IRR", "Cumulative investor cash",
                  "SPV cash balance", "Capital drawn over time", "per UK financial year",
                  "Cumulative outcome payments against the cap", "Net saving",
                  "would have saved anyway", "if the service had no effect",
                  "baseline and the untreated counterfactual", "Referrals", "Treatment starts",
                  "Therapist vacancies", "Care proportion by quarter since referral"):
        assert words in found, words
    assert "Caseload and waiting list" in page   # the service view charts both


def test_every_chart_has_a_title_axis_titles_with_units_and_data(money_run):
    page = (money_run.folder / "report.html").read_text()
    figs = figures(page)
    assert len(figs) == page.count("class='sib-chart'") == 17
    for chart_id, fig in figs.items():
        layout = fig["layout"]
        assert layout["title"]["text"], chart_id
        for axis in ("xaxis", "yaxis"):
            text = layout[axis]["title"]["text"]
            assert re.search(r"\((£|%|×|days|quarters|young people|% a year|April–March)\)$",
                             text), (chart_id, axis, text)
        values = [v for t in fig["data"] for v in (t.get("y") or []) if v is not None]
        assert values and any(v != 0 for v in values), chart_id


def test_multiple_chart_marks_loss_region_median_and_var(money_run):
    (fig,) = [f for f in figures((money_run.folder / "report.html").read_text()).values()
              if f["layout"]["title"]["text"].startswith("Multiple on committed capital")]
    f = money_run.result.paths
    shapes = fig["layout"]["shapes"]
    lines = {round(s["x0"], 9) for s in shapes if s["type"] == "line"}
    assert round(float(np.median(f.multiple)), 9) in lines
    assert round(money_run.summary["investor"]["var95"], 9) in lines
    bars = fig["data"][0]
    assert sum(bars["y"]) == pytest.approx(100.0)     # shares of paths
    if f.multiple.min() < 1:                          # the loss region ends at a multiple of 1
        assert any(s["type"] == "rect" and s["x1"] == 1.0 for s in shapes)
    texts = " ".join(a["text"] for a in fig["layout"]["annotations"])
    assert "median" in texts and "VaR" in texts


def test_running_totals_are_quantiles_of_per_path_totals(money_run):
    q = metrics.quarters_table(money_run.result)
    f = money_run.result.paths
    last = q.iloc[-1]
    assert last["cumulative_outcome_payments_p95"] == pytest.approx(
        np.percentile(f.outcome_payments, 95))
    assert last["cumulative_capital_calls_p50"] == pytest.approx(np.percentile(f.capital_drawn, 50))
    position = f.distributions_investors - f.capital_drawn
    assert last["investor_cash_position_p05"] == pytest.approx(np.percentile(position, 5))
    assert last["investor_cash_position_mean"] == pytest.approx(position.mean())


def test_quarter_lines_worked_out_in_threads_are_those_of_one_line_at_a_time(money_run):
    """quarters_table shares the work among the cores: exactly the figures of each line's
    mean and percentiles across paths taken alone, on one thread or several."""
    import numba

    r = money_run.result
    q = metrics.quarters_table(r)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = metrics.quarters_table(r)
    finally:
        numba.set_num_threads(threads)
    assert q.equals(one)
    cal = np.ascontiguousarray(r.by_calendar_quarter)   # (path-major: summed in order)
    payments = cal[:, :, metrics.CALENDAR_QUARTER_COLUMNS.index("outcome_payments")]
    np.testing.assert_array_equal(q.outcome_payments_p95, np.percentile(payments, 95, axis=0))
    np.testing.assert_array_equal(q.outcome_payments_mean, payments.mean(axis=0))
    np.testing.assert_array_equal(q.cumulative_outcome_payments_p50,
                                  np.percentile(np.cumsum(payments, axis=1), 50, axis=0))


def test_care_proportion_data_adds_up_to_the_path_totals(money_run):
    tq = reports.chart_data(money_run.result)["tracking_quarters"]
    f = money_run.result.paths
    child = np.array(tq["child_days_mean"]) * len(f)
    treated = np.nansum(np.array(tq["treated"]["pooled"], dtype=float) * child)
    counterfactual = np.nansum(np.array(tq["counterfactual"]["pooled"], dtype=float) * child)
    assert treated == pytest.approx(f.care_days_treated.sum())
    assert counterfactual == pytest.approx(f.care_days_counterfactual.sum())
    assert tq["baseline"] == [0.55] * len(tq["quarter"])
    assert all(lo <= hi for lo, hi in zip(tq["treated"]["p05"], tq["treated"]["p95"])
               if lo is not None)


def test_sibsim_report_rebuilds_the_same_bytes(money_run, tmp_path):
    import shutil

    folder = tmp_path / "money"
    shutil.copytree(money_run.folder, folder)
    original = (folder / "report.html").read_bytes()
    (folder / "report.html").unlink()
    res = CliRunner().invoke(main, ["report", str(folder)])
    assert res.exit_code == 0, res.output
    assert (folder / "report.html").read_bytes() == original
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_undefined_figures_are_null_in_json_n_a_in_the_report_and_rebuilt_the_same(tmp_path):
    # nothing paid and nothing spent, so nothing drawn: no path has an IRR; one path: no
    # standard errors
    d = with_money()
    d["contract"]["price_per_care_day_saved"] = 0.0
    d["finance"]["reserve"] = 0.0   # (a reserve would be drawn, and paid back at the end)
    d["costs"] = {key: 0.0 for key in d["costs"]}
    for name, paths in (("unpaid", 40), ("one_path", 1)):
        run = run_scenario(scenario_file(tmp_path, d, name), tmp_path / "out", paths=paths,
                           seed=2, progress=False)

        def strict(constant):
            raise AssertionError(f"{constant} is not JSON")
        for f in ("summary.json", "charts.json", "manifest.json"):
            json.loads((run.folder / f).read_text(), parse_constant=strict)
        saved = json.loads((run.folder / "summary.json").read_text())
        assert saved["investor"]["irr"]["p50"] is None
        assert ("IRR p50", "n/a") in metrics.headline_rows(run.summary)
        assert ("IRR p50", "n/a") in metrics.headline_rows(saved)
        assert ">IRR p50</td><td>n/a<" in (run.folder / "report.html").read_text()
        original = (run.folder / "report.html").read_bytes()
        res = CliRunner().invoke(main, ["report", str(run.folder)])
        assert res.exit_code == 0, res.output
        assert (run.folder / "report.html").read_bytes() == original
    assert saved["investor"]["multiple"]["se"] is None   # (the one-path run)


def test_report_size_does_not_grow_with_paths(tmp_path):
    loaded = scenario_file(tmp_path, with_money(), "grow")
    sizes = []
    for n in (50, 1000):
        out = run_scenario(loaded, tmp_path / str(n), paths=n, seed=1, progress=False)
        sizes.append((out.folder / "report.html").stat().st_size)
    assert abs(sizes[1] - sizes[0]) < 20_000, sizes  # charts from quantiles and histograms


def test_reports_without_finance_or_contract_show_the_views_that_apply(tmp_path):
    no_finance = with_money()
    del no_finance["finance"]
    out = run_scenario(scenario_file(tmp_path, no_finance, "nofinance"), tmp_path / "o",
                       paths=60, seed=1, progress=False)
    page = (out.folder / "report.html").read_text()
    assert "Commissioner view" in page and "Investor view" not in page
    assert "no finance section" in page
    assert not any("IRR" in t or "Multiple" in t for t in titles(page))

    out = run_scenario(scenario_file(tmp_path, small_scenario_dict(), "service"),
                       tmp_path / "o", paths=60, seed=1, progress=False)
    page = (out.folder / "report.html").read_text()
    assert "Service view" in page and "Commissioner view" not in page
    assert "Investor view" not in page and "no finance or contract section" in page
    care = [f for f in figures(page).values()
            if f["layout"]["title"]["text"].startswith("Care proportion")]
    assert care and "contract baseline" not in [t.get("name") for t in care[0]["data"]]


def test_a_failing_report_leaves_nothing_and_keeps_the_old_one(tmp_path, monkeypatch,
                                                               money_run):
    loaded = scenario_file(tmp_path, with_money(), "fails")

    def boom(*args, **kwargs):
        raise RuntimeError("report bug")

    monkeypatch.setattr(reports, "render_page", boom)
    with pytest.raises(RuntimeError):
        run_scenario(loaded, tmp_path / "out", paths=20, progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    before = (money_run.folder / "report.html").read_bytes()
    with pytest.raises(RuntimeError):
        reports.write_report(money_run.folder)
    assert (money_run.folder / "report.html").read_bytes() == before


def test_report_command_without_results_says_so(tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no results here" in res.output


def test_batch_report_side_by_side_tornado_and_sweeps(tmp_path):
    base = with_money()
    base["simulation"]["paths"] = 80
    base["description"] = "A small bond & its stresses"
    base["stresses"] = {"fewer": {"description": "Fewer referrals",
                                  "referrals.per_team_per_month": {"scale": 0.7}}}
    base["sweeps"] = {"price": {"contract.price_per_care_day_saved": [40, 60, 80]}}
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "small.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    out = tmp_path / "out"
    # a sensitivity table in the batch folder, as `sibsim sensitivity --out` writes it
    sens = out / "small__sensitivity"
    sens.mkdir(parents=True)
    pd.DataFrame({"metric_base": [1.1, 1.1], "parameter": ["a.b", "c.d"], "low": [1, 2],
                  "high": [3, 4], "metric_low": [1.0, 1.05], "metric_high": [1.3, 1.12],
                  "diff_low": [-0.1, -0.05], "diff_low_se": [0.01, 0.01],
                  "diff_high": [0.2, 0.02], "diff_high_se": [0.01, 0.01],
                  "swing": [0.3, 0.07]}).to_csv(sens / "tornado.csv", index=False)
    (sens / "sensitivity.json").write_text(json.dumps({"metric": "investor.multiple.mean",
                                                       "scenario": "small"}))
    outcome = run_batch(plan_batch([scen]), out)
    assert not outcome.failed and outcome.report_error is None and outcome.report_written
    page = (out / reports.BATCH_REPORT_FILE).read_text()
    assert page.count(PLOTLY_BANNER) == 0 and script_sources(page) == ["plotly.min.js"]
    found = " | ".join(titles(page))
    for words in ("Multiple on committed capital by variant", "Probability of a loss",
                  "Change in mean multiple from its base", "Outcome payments: 95th percentile",
                  "Tornado: investor.multiple.mean of small", "Sweep price of small"):
        assert words in found, words
    figs = list(figures(page).values())
    boxes = next(f for f in figs if f["data"][0]["type"] == "box")["data"][0]
    assert boxes["y"] == ["small", "small__fewer", "small__price_1", "small__price_2",
                          "small__price_3"]
    multiple = pd.read_parquet(out / "small" / "paths.parquet").multiple
    assert boxes["median"][0] == pytest.approx(np.median(multiple))
    loss = next(f for f in figs if f["layout"]["title"]["text"].startswith("Probability"))
    table = pd.read_csv(out / "batch_summary.csv")
    assert loss["data"][0]["error_x"]["array"] == pytest.approx(
        list(table["investor.prob_loss_se"] * 100 * reports.Z95))
    # under each variant's figures, what it is: its description (as in the CSV) and change
    about = re.findall(r"<tr class='about'><td colspan='\d+'><div>(.*?)</div>", page)
    assert [html.unescape(a) for a in about] == [
        "A small bond & its stresses",
        "Fewer referrals. Changed: referrals.per_team_per_month={scale: 0.7}.",
        *[f"A small bond & its stresses. Changed: contract.price_per_care_day_saved={x}."
          for x in (40, 60, 80)]]
    assert list(table["description"][:2]) == ["A small bond & its stresses", "Fewer referrals"]
    sweep = next(f for f in figs if "Sweep price" in f["layout"]["title"]["text"])
    assert sweep["data"][-1]["x"] == [40.0, 60.0, 80.0]
    assert sweep["layout"]["xaxis"]["title"]["text"] == "contract.price_per_care_day_saved"
    # a rerun of the finished batch rewrites nothing, the report included
    again = run_batch(plan_batch([scen]), out)
    assert not again.report_written and again.report_error is None
    # and `sibsim report DIR` on the batch folder rebuilds the same page
    before = page
    res = CliRunner().invoke(main, ["report", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / reports.BATCH_REPORT_FILE).read_text() == before


@pytest.fixture(scope="module")
def small_batch(tmp_path_factory):
    """A scenario and its stress, written by `sibsim batch` (tests that change the folder
    work on a copy)."""
    tmp = tmp_path_factory.mktemp("batch")
    base = with_money()
    base["simulation"]["paths"] = 40
    base["stresses"] = {"fewer": {"referrals.per_team_per_month": {"scale": 0.7}}}
    (tmp / "small.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    res = CliRunner().invoke(main, ["batch", str(tmp / "small.yaml"), "--out", str(tmp / "out"),
                                    "--quiet"])
    assert res.exit_code == 0, res.output
    return tmp / "out"


def pages_of(out) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.html"))}


def test_a_batch_folder_holds_plotly_js_once_and_no_page_inlines_it(small_batch):
    from plotly.offline import get_plotlyjs

    out = small_batch
    holders = [p for p in sorted(out.rglob("*")) if p.is_file()
               and PLOTLY_BANNER.encode() in p.read_bytes()]
    assert holders == [out / plotly_js.FILE_NAME]
    assert holders[0].read_text() == get_plotlyjs()
    assert list(pages_of(out)) == ["batch_report.html", "small/report.html",
                                   "small__fewer/report.html"]
    for name in pages_of(out):
        page = out / name
        (src,) = script_sources(page.read_text())
        # a relative path to the batch's own copy: the folder can be moved or sent whole
        assert not src.startswith(("/", "file:", "http"))
        assert (page.parent / src).resolve() == (out / plotly_js.FILE_NAME).resolve()
    for name in ("small", "small__fewer"):
        assert json.loads((out / name / "manifest.json").read_text())["plotlyjs"] == "file"


def test_sibsim_report_rebuilds_a_batch_variant_page_the_same(small_batch, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(small_batch, out)
    original = pages_of(out)
    js = out / plotly_js.FILE_NAME
    inode = js.stat().st_ino
    (out / "small__fewer" / "report.html").unlink()
    res = CliRunner().invoke(main, ["report", str(out / "small__fewer"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert pages_of(out) == original
    for page in out.rglob("*.html"):
        page.unlink()
    res = CliRunner().invoke(main, ["report", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert pages_of(out) == original
    assert js.stat().st_ino == inode       # the same plotly.js: not written again
    js.write_text("stale")
    assert CliRunner().invoke(main, ["report", str(out), "--quiet"]).exit_code == 0
    assert js.read_bytes() == (small_batch / plotly_js.FILE_NAME).read_bytes()


def test_a_batch_rerun_with_another_plotlyjs_rebuilds_every_page_that_way(small_batch,
                                                                         tmp_path):
    from plotly.offline import get_plotlyjs_version

    out = tmp_path / "out"
    shutil.copytree(small_batch, out)
    results = out / "small" / "paths.parquet"
    written = results.stat().st_mtime_ns
    res = CliRunner().invoke(main, ["batch", str(small_batch.parent / "small.yaml"), "--out",
                                    str(out), "--plotlyjs", "cdn"])
    assert res.exit_code == 0, res.output
    assert "report.html rebuilt: plotly.js cdn" in res.output
    assert results.stat().st_mtime_ns == written            # nothing simulated again
    url = f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
    rebuilt = pages_of(out)
    for name, page in rebuilt.items():
        assert script_sources(page.decode()) == [url], name
    for name in ("small", "small__fewer"):
        assert json.loads((out / name / "manifest.json").read_text())["plotlyjs"] == "cdn"
    res = CliRunner().invoke(main, ["report", str(out), "--quiet"])   # the choice is kept
    assert res.exit_code == 0, res.output
    assert pages_of(out) == rebuilt


def test_sibsim_run_and_report_plotlyjs_choices(tmp_path):
    f = tmp_path / "one.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "one"}, sort_keys=False))
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["run", str(f), "--paths", "40", "--out", str(out),
                                    "--plotlyjs", "file", "--quiet"])
    assert res.exit_code == 0, res.output
    page = (out / "one" / "report.html").read_text()
    assert script_sources(page) == ["../plotly.min.js"] and PLOTLY_BANNER not in page
    assert PLOTLY_BANNER in (out / plotly_js.FILE_NAME).read_text()
    # `sibsim report --plotlyjs` rebuilds the page the other way and records the choice
    res = CliRunner().invoke(main, ["report", str(out / "one"), "--plotlyjs", "inline"])
    assert res.exit_code == 0, res.output
    page = (out / "one" / "report.html").read_bytes()
    assert page.count(PLOTLY_BANNER.encode()) == 1 and not script_sources(page.decode())
    assert json.loads((out / "one" / "manifest.json").read_text())["plotlyjs"] == "inline"
    assert CliRunner().invoke(main, ["report", str(out / "one")]).exit_code == 0
    assert (out / "one" / "report.html").read_bytes() == page
    for command in (["run", str(f)], ["batch", str(f)], ["report", str(out)]):
        res = CliRunner().invoke(main, [*command, "--plotlyjs", "foo"])
        assert res.exit_code == 2, command
        assert "'foo' is not one of 'inline', 'file', 'cdn'" in res.output, command


def test_parse_change_inverts_the_summary_format():
    from simulator.batch import format_change

    change = {"referrals.per_team_per_month": {"scale": 0.8}, "costs.per_case_started": 5000}
    assert reports._parse_change(format_change(change)) == change


def test_histogram_puts_the_loss_threshold_on_a_bin_edge():
    x = np.random.default_rng(1).normal(1.1, 0.3, 5000)
    centers, widths, share, edges = reports._histogram(x, anchor=1.0)
    assert np.any(np.isclose(edges, 1.0, atol=1e-12))
    assert share.sum() == pytest.approx(100.0)
    assert reports._histogram(np.array([np.nan])) is None
    one = reports._histogram(np.full(10, 2.0))             # every path the same
    assert one[2].sum() == pytest.approx(100.0)


def test_batch_report_of_service_only_scenarios(tmp_path):
    d = small_scenario_dict()
    d["simulation"]["paths"] = 40
    d["sweeps"] = {"rate": {"referrals.per_team_per_month": [{"scale": 0.8}, {"scale": 1.2}]}}
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "s.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    outcome = run_batch(plan_batch([scen]), tmp_path / "out")
    assert outcome.report_error is None
    found = titles((tmp_path / "out" / reports.BATCH_REPORT_FILE).read_text())
    assert found[0].startswith("Care days saved") and "Sweep rate of small" in found[1]
    sweep = figures((tmp_path / "out" / reports.BATCH_REPORT_FILE).read_text())["chart-2"]
    assert sweep["layout"]["xaxis"]["title"]["text"] == "referrals.per_team_per_month (× base)"
