"""HTML reports people read: ``report.html`` per run, ``batch_report.html`` per batch.

A report is one page: plotly.js loaded once in the page head (inline, so that the page
works alone and offline, or from one file beside a batch's pages: :mod:`plotly_js`), a
headline table, then the investor, commissioner and service views, each chart a plotly
figure written as a JSON spec and drawn by one script at the end.
Specs are plain dicts rather than ``plotly.graph_objects`` figures: building and
validating a dozen graph objects costs about a second, which a batch of hundreds of
variants would pay for every variant.

Charts are drawn from pre-aggregated data only, never raw paths, so a 100,000-path
report is a few hundred kB (plus plotly.js, 4.8 MB, if inline):

- ``quarters.parquet``: per calendar quarter, quantiles of each cash-flow and service
  line, including the running totals (cumulative payments, capital drawn, investor
  cash position) computed path by path in :func:`metrics.quarters_table`;
- ``charts.json`` (written beside it by :func:`chart_data` and the run): the care
  proportion by quarter since tracking start, every input with its source, and the
  quick paired sensitivity the summary's sentences name (:mod:`narrative`);
- ``summary.json``: headline figures, payments per financial year, cap, commitment;
- histograms of a few ``paths.parquet`` columns (multiple, IRR, net saving, payments).

Output is deterministic (fixed element ids, no timestamps but the run's own), so
rebuilding a report from saved results (``sibsim report DIR``, plotly.js loaded as the
run's manifest records) gives the same bytes,
and a rerun of a finished batch leaves ``batch_report.html`` untouched.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import layout as L
from . import metrics, narrative, plotly_js

REPORT_FILE = "report.html"
CHARTS_FILE = "charts.json"
IMAGES_FILE = "images.json"   # the list of a figures folder's images (marks it as sibsim's)
BATCH_REPORT_FILE = "batch_report.html"
# the batch's table of variants, written by batch.run_batch, read by the batch report
SUMMARY_FILE = "batch_summary.csv"
# paths.parquet columns the run report draws histograms of
PATH_COLUMNS = ["multiple", "irr", "net_saving", "outcome_payments", "no_effect_payments",
                "deadweight_share"]
HISTOGRAM_BINS = 60
Z95 = 1.959964  # two-sided 95% normal interval: error bars are +-Z95 standard errors

BLUE, ORANGE, GREEN, RED, GREY, PURPLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                          "#7f7f7f", "#9467bd")


# --------------------------------------------------------------------------- chart data
def chart_data(result) -> dict[str, Any]:
    """Chart data that the other outputs do not hold (saved as charts.json).

    The care proportion by quarter since tracking start, for the treated, the
    untreated counterfactual (pooled over paths: care days / child days, and the
    p05-p95 of the per-path proportion) and the contract's baseline.
    """
    from .kernels.quantiles import percentiles

    q = result.by_tracking_quarter
    child = q[:, :, L.Q_CHILD_DAYS]
    n_q = q.shape[1]

    def proportions(col: int) -> dict[str, list]:
        care = q[:, :, col]
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = care.sum(axis=0) / child.sum(axis=0)
        p05 = np.full(n_q, np.nan)
        p95 = np.full(n_q, np.nan)
        for j in range(n_q):   # a quarter at a time: small arrays, their memory reused
            days = np.ascontiguousarray(child[:, j])
            tracked = days > 0   # (the paths with child days in the quarter)
            per_path = np.ascontiguousarray(care[:, j])[tracked] / days[tracked]
            per_path = per_path[~np.isnan(per_path)]   # (as nanpercentile took them)
            if np.isfinite(per_path).any():
                p05[j], p95[j] = percentiles(per_path, np.array([5.0, 95.0]))
        return {"pooled": _floats(pooled), "p05": _floats(p05), "p95": _floats(p95)}

    contract = result.scenario.contract
    baseline = None
    if contract is not None:
        b = contract.baseline_care_proportion
        baseline = [float(x) for x in b] if isinstance(b, list) else [float(b)] * n_q
    return {
        "tracking_quarters": {
            "quarter": list(range(1, n_q + 1)),
            "tracking_from": result.scenario.calendar.tracking_from,
            "child_days_mean": _floats(child.mean(axis=0)),
            "treated": proportions(L.Q_CARE_TREATED),
            "counterfactual": proportions(L.Q_CARE_COUNTERFACTUAL),
            "baseline": baseline,
        },
    }


def _floats(x: Iterable) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(x, dtype=np.float64)]


@dataclass
class RunData:
    """Everything a run report is drawn from (all small except ``paths``' few columns)."""

    summary: dict
    manifest: dict
    quarters: pd.DataFrame
    charts: dict | None          # None: a folder written before charts.json existed
    paths: pd.DataFrame          # PATH_COLUMNS that exist


def load_run(folder: str | Path) -> RunData:
    """Read a run folder's saved results (the inputs of its report)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    summary = json.loads((folder / "summary.json").read_text())
    manifest_file = folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {}
    charts_file = folder / CHARTS_FILE
    charts = json.loads(charts_file.read_text()) if charts_file.exists() else None
    present = set(pq.read_schema(folder / "paths.parquet").names)
    paths = pd.read_parquet(folder / "paths.parquet",
                            columns=[c for c in PATH_COLUMNS if c in present])
    return RunData(summary, manifest, pd.read_parquet(folder / "quarters.parquet"), charts, paths)


def write_report(folder: str | Path, plotlyjs: str | None = None) -> Path:
    """Rebuild ``folder/report.html`` from the folder's saved results (atomically),
    loading plotly.js as its manifest records, or as ``plotlyjs`` says: a new choice is
    then recorded, so that later rebuilds keep it."""
    from .io import json_text, write_text_atomic

    folder = Path(folder)
    data = load_run(folder)
    recorded = plotly_js.recorded(data.manifest)
    plotlyjs = plotlyjs or recorded
    plotly_js.provide(plotly_js.results_of_run(folder), plotlyjs)
    target = folder / REPORT_FILE
    write_text_atomic(target, build_report(data, plotlyjs))
    if plotlyjs != recorded and data.manifest:
        # after the page: a kill in between leaves the old choice recorded, which the
        # next rebuild follows
        write_text_atomic(folder / "manifest.json",
                          json_text({**data.manifest, "plotlyjs": plotlyjs}))
    return target


# --------------------------------------------------------------------------- run report
def build_report(data: RunData, plotlyjs: str | None = None) -> str:
    """The run report as one HTML page (plotly.js as the manifest records, by default)."""
    return render_page(*run_sections(data), plotlyjs or plotly_js.recorded(data.manifest),
                       plotly_js.RUN_PAGE_TO_RESULTS)


def run_sections(data: RunData) -> tuple[str, str, list[tuple[str, str, list]]]:
    """(title, headline HTML, sections): each section (id, heading, items), an item a figure
    spec or a note in HTML."""
    s = data.summary
    q = _active_quarters(data.quarters)
    sections: list[tuple[str, str, list]] = []
    terms = _contract_section(data)
    if terms:
        sections.append(("contract", "Contract and assumptions", terms))
    if "investor" in s:
        sections.append(("investor", "Investor view", _investor_view(data, q)))
    if "commissioner" in s:
        sections.append(("commissioner", "Commissioner view", _commissioner_view(data, q)))
    sections.append(("service", "Service view", _service_view(data, q)))
    missing = [name for name in ("investor", "commissioner") if name not in s]
    intro = _headline_html(data)
    if missing:
        needs = {"investor": "finance", "commissioner": "contract"}
        intro += (f"<p class='note'>This scenario has no "
                  f"{' or '.join(needs[m] for m in missing)}"
                  f" section, so the report has no {' or '.join(missing)} view.</p>")
    title = f"sibsim report: {s.get('scenario', data.manifest.get('scenario', ''))}"
    return title, intro, sections


def _headline_html(data: RunData) -> str:
    s, m = data.summary, data.manifest
    rows = [(label, value, narrative.HEADLINE_MEANING.get(label, ""))
            for label, value in metrics.headline_rows(s)]
    head = html_table([("figure", "value", "what it measures")], rows,
                  caption="Headline figures (mean over paths unless stated; p05/p50/p95 are "
                          "the 5th, 50th and 95th percentiles)")
    details = [("scenario", s.get("scenario", "")), ("paths", f"{s.get('paths', 0):,}"),
               ("seed", str(s.get("seed", "")))]
    for key, label in (("scenario_file", "scenario file"), ("package_version", "sibsim version"),
                       ("git_commit", "git commit"), ("finished_at", "simulated at (UTC)")):
        if m.get(key):
            details.append((label, str(m[key])))
    run = html_table([("item", "value")], details, caption="Run")
    return f"{_in_brief(data)}<div class='tables'>{head}{run}</div>"


def _in_brief(data: RunData) -> str:
    charts = data.charts or {}
    said = narrative.sentences(data.summary, input_rows(charts), charts.get("sensitivity"))
    items = "".join(f"<li>{html.escape(x)}</li>" for x in said)
    return f"<section id='in-brief'><h2>In brief</h2><ul>{items}</ul></section>" if said else ""


# inputs shown as the contract's terms; the others are shown when they are assumptions,
# fitted or uncertain (a figure rests on them)
CONTRACT_SECTIONS = ("contract.", "finance.")
_SOURCE_KINDS = ("ASSUMPTION", "FITTED")


def _contract_section(data: RunData) -> list:
    inputs = input_rows(data.charts or {})
    if not inputs:
        return []
    terms = [r for r in inputs if r["input"].startswith(CONTRACT_SECTIONS)]
    assumed = [r for r in inputs if not r["input"].startswith(CONTRACT_SECTIONS)
               and (r["source"] in _SOURCE_KINDS or r["distribution"] not in (None, "fixed"))]
    items: list = [_inputs_table(terms, "Contract and finance terms"),
                   _inputs_table(assumed, "Assumptions behind the figures: inputs not "
                                          "published (ASSUMPTION), fitted to published "
                                          "figures (FITTED), or uncertain (drawn per path)")]
    sens = (data.charts or {}).get("sensitivity")
    items += [f for f in (_sensitivity_figure(sens, fig) for fig in
                          narrative.SENSITIVITY_FIGURES) if f]
    return items


def input_rows(charts: dict) -> list[dict] | None:
    """charts.json's inputs (columns and rows) as a dict a row."""
    table = charts.get("inputs")
    return None if not table else [dict(zip(table["columns"], row, strict=True))
                                   for row in table["rows"]]


def _inputs_table(rows: list[dict], caption: str) -> str:
    body = [(key, value, _str(r["description"]), r["source"], _str(r["source_note"]))
            for key, value, r in _collapsed_lists(rows)]
    return html_table([("input", "value", "what it is [unit]", "source", "why (scenario file)")],
                  body, caption=caption, css="inputs")


def _shown(r: dict) -> str:
    if r["distribution"] not in (None, "fixed"):
        return f"{r['distribution']}, mean {r['mean']:.4g}"
    v = r["value"]
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _str(v)
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:,.6g}"


def _collapsed_lists(rows: list[dict], most: int = 3):
    """(key, value shown, row): a list of more than ``most`` entries (a drawdown schedule)
    as one row a field, ``key[*].field``, its first and last values (all in results.xlsx)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(re.sub(r"\[\d+\]", "[*]", r["input"], count=1), []).append(r)
    for key, members in groups.items():
        if len(members) <= most or "[*]" not in key:
            yield from ((r["input"], _shown(r), r) for r in members)
            continue
        values = [_shown(r) for r in members]
        same = len(set(values)) == 1
        shown = (f"{values[0]} (all {len(values)})" if same
                 else f"{values[0]} … {values[-1]} ({len(values)} entries)")
        yield key, shown, members[0]


SENSITIVITY_TITLES = {"investor.multiple.mean": "investors' mean multiple",
                      "commissioner.net_saving.mean": "commissioner's mean net saving"}


def _sensitivity_figure(sens: dict | None, figure: str) -> dict | None:
    rows = [r for r in (sens or {}).get("rows", []) if r["figure"] == figure]
    if not rows:
        return None
    rows.sort(key=lambda r: abs(r.get("high", r["base"]) - r.get("low", r["base"])))
    base = rows[0]["base"]
    step = sens["step"]
    traces = []
    for side, factor, color in (("low", 1 - step, BLUE), ("high", 1 + step, ORANGE)):
        diff = [r[side] - base if side in r else None for r in rows]
        se = [(r.get(f"{side}_se") or 0.0) * Z95 for r in rows]
        traces.append({"type": "bar", "orientation": "h", "y": [r["input"] for r in rows],
                       "x": diff, "base": base, "name": f"input × {factor:g}",
                       "marker": {"color": color},
                       "error_x": {"type": "data", "array": se, "visible": True,
                                   "color": "black"}})
    money = figure.startswith("commissioner")
    what = SENSITIVITY_TITLES.get(figure, figure)
    fig = figure_spec(traces, f"What moves the {what}: each input at ×{1 - step:g} and "
                          f"×{1 + step:g} ({sens['paths']:,} paired paths; ±95% interval)",
                  f"{what} ({'£' if money else '×'})", "input, scaled by (×)", x_money=money,
                  markers=[(base, "base", GREY, 1.0)])
    fig["layout"]["barmode"] = "overlay"
    return fig


def _active_quarters(q: pd.DataFrame) -> pd.DataFrame:
    """The calendar quarters in which anything happens (the engine's horizon runs on to
    the end of the last possible tracking window and payment)."""
    flows = ["outcome_payments", "capital_calls", "distributions_investors", "service_costs",
             "referrals", "started", "child_days", "vacancy_days"]
    cols = [f"{f}_{s}" for f in flows for s in ("mean", "p95") if f"{f}_{s}" in q]
    busy = np.flatnonzero((q[cols].abs() > 0).any(axis=1).to_numpy()) if cols else []
    if len(busy) == 0:
        return q
    return q.iloc[: min(len(q), busy[-1] + 2)].reset_index(drop=True)


def _investor_view(data: RunData, q: pd.DataFrame) -> list:
    inv = data.summary["investor"]
    items: list = []
    multiple = data.paths["multiple"].to_numpy(dtype=np.float64) if "multiple" in data.paths \
        else None
    if multiple is not None:
        items.append(_multiple_histogram(multiple, inv))
    if "irr" in data.paths:
        items.append(_irr_histogram(data.paths["irr"].to_numpy(dtype=np.float64), inv))
    if "investor_cash_position_p50" in q:
        items.append(_fan_figure(
            q, [("investor_cash_position", "investor cash position", BLUE)],
            "Cumulative investor cash position: distributions less capital drawn",
            "cumulative cash position (£)", money=True, zero_line=True))
    items.append(_fan_figure(q, [("spv_balance", "SPV cash balance", GREEN)],
                             "SPV cash balance at quarter end", "balance (£)", money=True))
    if "cumulative_capital_calls_p50" in q:
        items.append(_fan_figure(
            q, [("cumulative_capital_calls", "capital drawn to date", PURPLE)],
            "Capital drawn over time, against the commitment", "capital drawn to date (£)",
            money=True, hline=(inv.get("commitment"), "commitment")))
    return items


def _commissioner_view(data: RunData, q: pd.DataFrame) -> list:
    c = data.summary["commissioner"]
    items: list = [_payments_by_year(c)]
    if "cumulative_outcome_payments_p50" in q:
        items.append(_fan_figure(
            q, [("cumulative_outcome_payments", "payments to date", ORANGE),
                ("cumulative_no_effect_payments", "payments had the service no effect", GREY)],
            "Cumulative outcome payments against the cap, and what the contract would pay "
            "if the service had no effect", "payments to date (£)", money=True,
            hline=(c.get("cap"), "cap on total payments")))
    if "net_saving" in data.paths:
        x = data.paths["net_saving"].to_numpy(dtype=np.float64)
        h = _histogram(x)
        if h is not None:
            centers, widths, share, _ = h
            colors = [RED if v < 0 else GREEN for v in centers]
            items.append(figure_spec(
                [_bar(centers, share, widths, colors, "net saving", money=True)],
                f"Net saving to the commissioner: care costs avoided (true counterfactual) less "
                f"payments; negative on {np.mean(x < 0):.1%} of paths",
                "net saving (£)", "share of paths (%)", x_money=True,
                markers=[(float(np.median(x)), f"median {metrics.money(np.median(x))}", BLUE, 1.0)]
                + _zero_marker(x, "break-even")))
    if {"outcome_payments", "no_effect_payments"} <= set(data.paths) \
            and "no_effect_payments" in c:
        items.append(_no_effect_payments(data.paths, c))
    tq = (data.charts or {}).get("tracking_quarters")
    if tq and tq.get("baseline"):
        items.append(_baseline_against_counterfactual(tq))
    return items


def _service_view(data: RunData, q: pd.DataFrame) -> list:
    items: list = [
        _fan_figure(q, [("referrals", "referrals", BLUE), ("accepted", "accepted", ORANGE)],
                    "Referrals and accepted referrals per quarter",
                    "referrals per quarter (young people)"),
        _fan_figure(q, [("started", "treatment starts", GREEN)],
                    "Treatment starts per quarter", "starts per quarter (young people)"),
        _fan_figure(q, [("vacancy_days", "vacant therapist days", RED),
                        ("therapist_days", "staffed therapist days", BLUE)],
                    "Therapist vacancies: vacant and staffed post-days per quarter",
                    "therapist post-days per quarter (days)"),
    ]
    tq = (data.charts or {}).get("tracking_quarters")
    if tq:
        items.append(_care_by_tracking_quarter(tq))
    else:
        items.append("<p class='note'>The care proportion by quarter since referral needs "
                     f"{CHARTS_FILE}, which this result folder (written by an older sibsim) "
                     "does not have: rerun the scenario to get it.</p>")
    if "open_cases_mean" in q:
        items.insert(2, _fan_figure(
            q, [("open_cases", "open cases (caseload)", BLUE),
                ("waiting_list", "young people waiting", ORANGE)],
            "Caseload and waiting list: average open cases and young people waiting per day",
            "young people on an average day (young people)"))
    return items


# --------------------------------------------------------------------------- figures
def _multiple_histogram(x: np.ndarray, inv: dict) -> dict:
    h = _histogram(x, anchor=1.0)
    if h is None:
        return _empty("Multiple on committed capital", "no finite multiples")
    centers, widths, share, edges = h
    colors = [RED if c < 1.0 else BLUE for c in centers]
    median, var = float(np.median(x)), float(inv.get("var95", np.percentile(x, 5)))
    fig = figure_spec([_bar(centers, share, widths, colors, "multiple")],
                  f"Multiple on committed capital: P(loss) {inv['prob_loss']:.1%}, "
                  f"multiple below 1 on {np.mean(x < 1.0):.1%} of paths",
                  "distributions / committed capital (×)", "share of paths (%)",
                  markers=[(median, f"median {median:.2f}", BLUE, 1.0),
                           (var, f"VaR 95% (p05) {var:.2f}", RED, 0.9)])
    if edges[0] < 1.0:
        fig["layout"]["shapes"].insert(0, {
            "type": "rect", "xref": "x", "yref": "paper", "x0": float(edges[0]), "x1": 1.0,
            "y0": 0, "y1": 1, "fillcolor": "rgba(214,39,40,0.08)", "line": {"width": 0},
            "layer": "below"})
        fig["layout"]["annotations"].append({
            "x": float(edges[0]), "xref": "x", "y": 0.8, "yref": "paper", "xanchor": "left",
            "text": "loss region (< 1)", "showarrow": False, "font": {"color": RED}})
    return fig


def _irr_histogram(irr: np.ndarray, inv: dict) -> dict:
    undefined = int(np.isnan(irr).sum())
    h = _histogram(irr * 100)
    note = f"; undefined on {undefined:,} paths (no capital drawn)" if undefined else ""
    rules = inv["irr"].get("rules") or {}
    if rules.get("nearest_root") or rules.get("modified"):
        note += (f"; several roots on {rules.get('nearest_root', 0):,} paths (the one nearest "
                 f"the multiple's rate), none on {rules.get('modified', 0):,} (modified IRR)")
    if h is None:
        return _empty("Investor IRR", f"IRR undefined on every path{note}")
    centers, widths, share, _ = h
    colors = [RED if c < 0 else BLUE for c in centers]
    med = float(np.nanmedian(irr) * 100)
    return figure_spec([_bar(centers, share, widths, colors, "IRR", suffix="%")],
                   f"Investor IRR (annualised), median {med:.1f}%{note}",
                   "IRR (% a year)", "share of paths with an IRR (%)",
                   markers=[(med, f"median {med:.1f}%", BLUE, 1.0)]
                   + _zero_marker(irr * 100, "0%"))


def _payments_by_year(c: dict) -> dict | str:
    years = c.get("payments_by_financial_year") or []
    if not years:
        return _empty("Outcome payments per financial year", "no payments on any path")
    labels = [y["year"] for y in years]
    traces = [
        {"type": "bar", "name": "median", "x": labels, "y": [y["p50"] for y in years],
         "marker": {"color": ORANGE}, "hovertemplate": "%{x}: median £%{y:,.0f}<extra></extra>"},
        {"type": "bar", "name": "95th percentile", "x": labels, "y": [y["p95"] for y in years],
         "marker": {"color": RED}, "hovertemplate": "%{x}: p95 £%{y:,.0f}<extra></extra>"},
        {"type": "scatter", "mode": "markers", "name": "mean", "x": labels,
         "y": [y["mean"] for y in years], "marker": {"color": "black", "symbol": "diamond"},
         "hovertemplate": "%{x}: mean £%{y:,.0f}<extra></extra>"},
    ]
    cap = c.get("cap")
    cap_text = (f"cap on total payments {metrics.money(cap)}, reached on "
                f"{c['prob_cap_reached']:.1%} of paths" if cap is not None else "no cap")
    fig = figure_spec(traces, f"Outcome payments per UK financial year (April–March); {cap_text}",
                  "UK financial year (April–March)", "payments in the year (£)", y_money=True)
    fig["layout"]["barmode"] = "group"
    fig["layout"]["xaxis"]["type"] = "category"
    return fig


def _no_effect_payments(paths: pd.DataFrame, c: dict) -> dict | str:
    """Total payments beside what the same contract would pay on each path had the service
    had no effect (its counterfactual care days, same draws): the deadweight a flat
    baseline pays for."""
    paid = paths["outcome_payments"].to_numpy(dtype=np.float64)
    none = paths["no_effect_payments"].to_numpy(dtype=np.float64)
    both = np.concatenate([paid, none])
    both = both[np.isfinite(both)]
    title = "Outcome payments, and what the contract would pay if the service had no effect"
    if len(both) == 0:
        return _empty(title, "no payments")
    lo, hi = np.percentile(both, [0.5, 99.5])
    edges = _edges(float(lo), float(hi), HISTOGRAM_BINS)
    traces = []
    for x, name, color in ((paid, "outcome payments", ORANGE),
                           (none, "payments had the service no effect", GREY)):
        counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
        bar = _bar((edges[:-1] + edges[1:]) / 2, counts / len(x) * 100, np.diff(edges), color,
                   name, money=True)
        bar["opacity"] = 0.7
        traces.append(bar)
    ne, share = c["no_effect_payments"], c["deadweight_share"]
    fig = figure_spec(traces, f"{title}: with no effect {metrics.money(ne['mean'])} on average "
                          f"(p95 {metrics.money(ne['p95'])}, some payment on {ne['prob_any']:.0%} "
                          f"of paths); {share['mean']:.0%} of payments are for days the "
                          f"counterfactual would have saved anyway",
                  "total outcome payments over the bond (£)", "share of paths (%)",
                  x_money=True)
    fig["layout"]["barmode"] = "overlay"
    return fig


def _baseline_against_counterfactual(tq: dict) -> dict:
    """The contract's baseline against the untreated counterfactual by quarter since
    tracking start: where the baseline lies above, the contract pays for care days the
    young people would have stayed out of care anyway."""
    x = tq["quarter"]
    cf = tq["counterfactual"]
    below = [None if b is None or c is None else min(b, c)
             for b, c in zip(tq["baseline"], cf["pooled"])]
    traces = _band(x, cf["p05"], cf["p95"], "untreated counterfactual", RED) + [
        {"type": "scatter", "mode": "lines+markers", "x": x, "y": cf["pooled"],
         "name": "untreated counterfactual (all paths)", "line": {"color": RED, "width": 2},
         "hovertemplate": "counterfactual: %{y:.1%}<extra>quarter %{x}</extra>"},
        # the shading runs from the lower of the two lines up to the baseline: only where
        # the baseline is above the counterfactual
        {"type": "scatter", "mode": "lines", "x": x, "y": below, "line": {"width": 0},
         "showlegend": False, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "lines", "x": x, "y": tq["baseline"],
         "name": "contract baseline (paid against)", "line": {"color": "black", "dash": "dash"},
         "fill": "tonexty", "fillcolor": _rgba(GREY, 0.35),
         "hovertemplate": "baseline: %{y:.1%}<extra>quarter %{x}</extra>"}]
    since = {"treatment_start": "treatment start", "treatment_end": "treatment end"}.get(
        tq.get("tracking_from"), "referral")
    fig = figure_spec(traces, f"What the contract pays against: its baseline and the untreated "
                          f"counterfactual by quarter since {since} (shaded: baseline above "
                          f"the counterfactual, care days a service with no effect is paid "
                          f"for)",
                  f"quarter since {since} (quarters)", "share of child days in care (%)")
    fig["layout"]["yaxis"].update({"tickformat": ".0%", "rangemode": "tozero"})
    fig["layout"]["xaxis"]["dtick"] = 1
    return fig


def _care_by_tracking_quarter(tq: dict) -> dict:
    x = tq["quarter"]
    traces = []
    for key, name, color in (("counterfactual", "untreated counterfactual", RED),
                             ("treated", "treated", BLUE)):
        d = tq[key]
        traces += _band(x, d["p05"], d["p95"], name, color)
        traces.append({"type": "scatter", "mode": "lines+markers", "x": x, "y": d["pooled"],
                       "name": f"{name} (all paths)", "line": {"color": color, "width": 2},
                       "hovertemplate": f"{name}: %{{y:.1%}}<extra>quarter %{{x}}</extra>"})
    if tq.get("baseline"):
        traces.append({"type": "scatter", "mode": "lines", "x": x, "y": tq["baseline"],
                       "name": "contract baseline", "line": {"color": GREY, "dash": "dash"},
                       "hovertemplate": "baseline: %{y:.1%}<extra></extra>"})
    since = {"treatment_start": "treatment start", "treatment_end": "treatment end"}.get(
        tq.get("tracking_from"), "referral")
    fig = figure_spec(traces, f"Care proportion by quarter since {since}: treated, counterfactual "
                          f"and baseline (band: p05–p95 of paths)",
                  f"quarter since {since} (quarters)", "share of child days in care (%)")
    fig["layout"]["yaxis"].update({"tickformat": ".0%", "rangemode": "tozero"})
    fig["layout"]["xaxis"]["dtick"] = 1
    return fig


def _fan_figure(q: pd.DataFrame, lines: list[tuple[str, str, str]], title: str, ytitle: str,
                *, money: bool = False, zero_line: bool = False,
                hline: tuple[float | None, str] | None = None) -> dict:
    x = [_date(d) for d in q["quarter_start"]]
    traces = []
    for line, name, color in lines:
        if f"{line}_p50" not in q:
            continue
        traces += _band(x, q[f"{line}_p05"], q[f"{line}_p95"], name, color)
        fmt = "£%{y:,.0f}" if money else "%{y:,.1f}"
        traces.append({"type": "scatter", "mode": "lines", "x": x, "y": _floats(q[f"{line}_p50"]),
                       "name": f"{name} median", "line": {"color": color, "width": 2},
                       "hovertemplate": f"{name} median {fmt}<extra>%{{x}}</extra>"})
        traces.append({"type": "scatter", "mode": "lines", "x": x,
                       "y": _floats(q[f"{line}_mean"]), "name": f"{name} mean",
                       "line": {"color": color, "width": 1, "dash": "dot"},
                       "hovertemplate": f"{name} mean {fmt}<extra>%{{x}}</extra>"})
    markers = []
    if zero_line:
        markers.append((0.0, "", GREY, 1.0))
    fig = figure_spec(traces, title + " (band: p05–p95 of paths)", "calendar quarter (quarters)",
                  ytitle, y_money=money, hmarkers=markers)
    if hline and hline[0] is not None:
        fig["layout"]["shapes"].append({
            "type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": hline[0],
            "y1": hline[0], "line": {"color": RED, "dash": "dash"}})
        fig["layout"]["annotations"].append({
            "xref": "paper", "x": 0, "xanchor": "left", "yref": "y", "y": hline[0],
            "yanchor": "bottom", "text": f"{hline[1]} {metrics.money(hline[0])}",
            "showarrow": False, "font": {"color": RED}})
    return fig


def _band(x, low, high, name: str, color: str) -> list[dict]:
    """A shaded band from ``low`` to ``high`` (the second trace fills down to the first)."""
    fill = _rgba(color, 0.18)
    return [
        {"type": "scatter", "mode": "lines", "x": x, "y": _floats(low), "line": {"width": 0},
         "showlegend": False, "hoverinfo": "skip", "legendgroup": f"{name} band"},
        {"type": "scatter", "mode": "lines", "x": x, "y": _floats(high), "line": {"width": 0},
         "fill": "tonexty", "fillcolor": fill, "name": f"{name} p05–p95",
         "hoverinfo": "skip", "legendgroup": f"{name} band"},
    ]


def _bar(centers, share, widths, colors, name: str, *, money: bool = False,
         suffix: str = "") -> dict:
    xfmt = "£%{x:,.0f}" if money else f"%{{x:.3g}}{suffix}"
    return {"type": "bar", "x": _floats(centers), "y": _floats(share), "width": _floats(widths),
            "marker": {"color": colors if isinstance(colors, str) else list(colors),
                       "line": {"width": 0}},
            "name": name, "hovertemplate": f"{xfmt}: %{{y:.2f}}% of paths<extra>{name}</extra>"}


def _zero_marker(x: np.ndarray, label: str) -> list[tuple[float, str, str, float]]:
    """A line at zero, where zero is within (or near) the data's range: far outside it, it
    would squeeze the histogram into a corner."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return []
    lo, hi = np.percentile(x, [0.5, 99.5])
    near = 0.25 * max(hi - lo, 1e-12)
    return [(0.0, label, GREY, 0.9)] if lo - near <= 0.0 <= hi + near else []


def _histogram(x: np.ndarray, *, anchor: float | None = None, bins: int = HISTOGRAM_BINS):
    """Share of paths (%) per bin over the 0.5th-99.5th percentiles, outliers counted in the
    end bins (so one extreme path does not squash the picture); None if no finite values."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    lo, hi = np.percentile(x, [0.5, 99.5])
    edges = _edges(float(lo), float(hi), bins, anchor)
    counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
    return (edges[:-1] + edges[1:]) / 2, np.diff(edges), counts / len(x) * 100, edges


def _edges(lo: float, hi: float, bins: int, anchor: float | None = None) -> np.ndarray:
    """Bin edges over [lo, hi]; if ``anchor`` lies inside, it is an edge (so bars do not
    straddle the loss threshold)."""
    if not hi > lo:
        pad = max(abs(lo) * 0.01, 1e-9)
        lo, hi = lo - pad, hi + pad
    width = (hi - lo) / bins
    if anchor is not None and lo < anchor < hi:
        lo = anchor - math.ceil((anchor - lo) / width) * width
        bins = math.ceil((hi - lo) / width - 1e-9)
    return lo + width * np.arange(bins + 1)


def figure_spec(traces: list[dict], title: str, xtitle: str, ytitle: str, *,
            x_money: bool = False, y_money: bool = False,
            markers: list[tuple[float, str, str, float]] = (),
            hmarkers: list[tuple[float, str, str, float]] = ()) -> dict:
    """A figure spec with title, axis titles and vertical (``markers``) or horizontal
    (``hmarkers``) reference lines: (value, label, colour, label height on the paper)."""
    def axis(t: str, money: bool) -> dict:
        a = {"title": {"text": t}, "automargin": True, "zeroline": False}
        if money:
            a.update({"tickprefix": "£", "tickformat": "~s"})
        return a

    layout: dict[str, Any] = {
        "title": {"text": _wrap(title), "font": {"size": 14}, "x": 0.01, "xanchor": "left"},
        "xaxis": axis(xtitle, x_money), "yaxis": axis(ytitle, y_money),
        "margin": {"t": 70, "r": 20, "b": 50, "l": 60}, "height": 420,
        "legend": {"orientation": "h", "y": -0.22}, "bargap": 0,
        "shapes": [], "annotations": [], "template": {"layout": {"paper_bgcolor": "white",
                                                                 "plot_bgcolor": "#f7f7f7"}},
    }
    for value, label, color, height in markers:
        layout["shapes"].append({"type": "line", "xref": "x", "x0": value, "x1": value,
                                 "yref": "paper", "y0": 0, "y1": 1,
                                 "line": {"color": color, "dash": "dash", "width": 1.5}})
        if label:
            layout["annotations"].append({"x": value, "xref": "x", "y": height, "yref": "paper",
                                          "text": label, "showarrow": False, "xanchor": "left",
                                          "font": {"color": color}, "bgcolor": "white"})
    for value, _label, color, _ in hmarkers:
        layout["shapes"].append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                                 "y0": value, "y1": value,
                                 "line": {"color": color, "width": 1}})
    return {"data": traces, "layout": layout}


def _empty(title: str, message: str) -> str:
    return f"<p class='note'><b>{html.escape(title)}</b>: {html.escape(message)}.</p>"


def _wrap(title: str, width: int = 70) -> str:
    """Break a long title over lines (plotly does not wrap titles)."""
    words, lines, line = title.split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "<br>".join(html.escape(x) for x in lines)


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _date(d) -> str:
    return d.isoformat()[:10] if hasattr(d, "isoformat") else str(d)[:10]


# --------------------------------------------------------------------------- batch report
def build_batch_report(out_dir: str | Path, plotlyjs: str | None = None) -> str:
    """The batch report of ``out_dir`` (batch_summary.csv and the variant folders);
    plotly.js loaded as its variants' pages load it, by default."""
    out = Path(out_dir)
    return render_page(*batch_sections(out), plotlyjs or batch_plotlyjs(out),
                       plotly_js.BATCH_PAGE_TO_RESULTS)


def batch_sections(out_dir: str | Path) -> tuple[str, str, list[tuple[str, str, list]]]:
    from .io import read_table

    out = Path(out_dir)
    table = read_table(out / SUMMARY_FILE)
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    sections: list[tuple[str, str, list]] = []
    side = _batch_side_by_side(out, ok)
    if side:
        sections.append(("variants", "Scenarios and stresses side by side", side))
    tornado = _tornado_figures(out)
    if tornado:
        sections.append(("tornado", "Sensitivity (tornado)", tornado))
    sweeps = _sweep_figures(ok)
    if sweeps:
        sections.append(("sweeps", "Sweeps", sweeps))
    return f"sibsim batch report: {out.resolve().name}", _batch_table_html(table), sections


def write_batch_report(out_dir: str | Path, plotlyjs: str | None = None) -> bool:
    """Write ``out_dir/batch_report.html`` atomically; False if it already held the same."""
    from .io import write_text_atomic

    out = Path(out_dir)
    plotlyjs = plotlyjs or batch_plotlyjs(out)
    plotly_js.provide(out, plotlyjs)
    return write_text_atomic(out / BATCH_REPORT_FILE, build_batch_report(out, plotlyjs))


def batch_plotlyjs(out: Path) -> str:
    """How the batch's pages load plotly.js: as its first variant's manifest records (a
    batch writes every page one way); with no variant written, "file" if the folder holds
    plotly.min.js."""
    from .io import read_table

    for name in read_table(out / SUMMARY_FILE)["scenario"]:
        try:
            manifest = json.loads((out / str(name) / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        return plotly_js.recorded(manifest)
    return "file" if (out / plotly_js.FILE_NAME).is_file() else "inline"


# the batch table's figures: (batch_summary.csv column, heading, format)
BATCH_FIGURES = [("investor.multiple.mean", "multiple mean", "{:.3f}"),
                 ("investor.prob_loss", "P(loss)", "{:.1%}"),
                 ("commissioner.outcome_payments.p95", "payments p95", "money"),
                 ("commissioner.net_saving.mean", "net saving mean", "money"),
                 ("service.children_treated.mean", "treated", "{:,.1f}"),
                 ("service.care_days_saved.mean", "care days saved", "{:,.0f}")]


def _batch_table_html(table: pd.DataFrame) -> str:
    """The variants, a row of figures each with a line under it saying what the variant is:
    the long text spans the table and wraps, so the table fits the page."""
    cols = [c for c in BATCH_FIGURES if c[0] in table and table[c[0]].notna().any()]
    head = ["scenario", "kind", "base", "paths", *[c[1] for c in cols], "status"]
    rows = []
    for _, r in table.iterrows():
        cells = [_breakable(r["scenario"]), html.escape(_str(r["kind"])),
                 _breakable(_str(r.get("base"))), f"{int(r['paths']):,}",
                 *[_figure_cell(r[key], r.get(f"{key}_se"), fmt) for key, _, fmt in cols],
                 html.escape(_str(r["status"]))]
        rows.append("<tr class='variant'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        rows.append(f"<tr class='about'><td colspan='{len(head)}'><div>"
                    f"{html.escape(_about(r))}</div></td></tr>")
    caption = ("Variants: each figure a mean, ± its standard error under it (stresses and sweep "
               "points run on their base's seed and paths: common random numbers); under each "
               "variant, what it is")
    thead = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return (f"<table class='variants'><caption>{html.escape(caption)}</caption>"
            f"<thead>{thead}</thead><tbody>{''.join(rows)}</tbody></table>")


def _about(r: pd.Series) -> str:
    """A variant's description, and its change unless the description says it already."""
    description, change = _str(r.get("description")), _str(r.get("change"))
    return with_change(description, change) if change and change not in description \
        else description


def with_change(description: str, change: str) -> str:
    """``description``, then what a variant changes (batch_summary.csv's change)."""
    if not description:
        return f"Changed: {change}."
    stop = "" if description.endswith((".", "!", "?")) else "."
    return f"{description}{stop} Changed: {change}."


def _breakable(name: str) -> str:
    """A variant name that may break after its ``__`` (base__stress), not mid-word."""
    return "__<wbr>".join(html.escape(part) for part in name.split("__"))


def _batch_side_by_side(out: Path, ok: pd.DataFrame) -> list:
    items: list = []
    names = list(ok["scenario"])
    has_money = "investor.multiple.mean" in ok and ok["investor.multiple.mean"].notna().any()
    if has_money:
        inv = ok[ok["investor.multiple.mean"].notna()]
        stats = []
        for name in inv["scenario"]:
            x = _read_column(out / name, "multiple")
            if x is not None and np.isfinite(x).any():
                x = x[np.isfinite(x)]
                p = np.percentile(x, [5, 25, 50, 75, 95])
                stats.append((name, p, float(x.mean())))
        if stats:
            items.append(_multiple_boxes(stats))
        items.append(_metric_bars(inv, "investor.prob_loss", "Probability of a loss "
                                  "(distributions below capital drawn), ±95% interval",
                                  "probability of a loss (%)", percent=True, color=RED))
        diffs = inv[inv["base"].fillna("").astype(str) != ""]
        if len(diffs) and "investor.multiple.mean_diff" in diffs:
            items.append(_metric_bars(
                diffs, "investor.multiple.mean_diff",
                "Change in mean multiple from its base, ±95% interval (paired, common random "
                "numbers)", "difference in mean multiple (×)",
                se_col="investor.multiple.mean_diff_se",
                color=PURPLE))
    key = "commissioner.outcome_payments.p95"
    if key in ok and ok[key].notna().any():
        com = ok[ok[key].notna()]
        fig = _metric_bars(com, key, "Outcome payments: 95th percentile over the bond, ±95% "
                           "interval, with each variant's cap", "payments p95 (£)",
                           money=True, color=ORANGE)
        caps = [_summary_value(out / n, ("commissioner", "cap")) for n in com["scenario"]]
        if any(c is not None for c in caps):
            fig["data"].append({"type": "scatter", "mode": "markers", "name": "cap",
                                "y": list(com["scenario"]), "x": [c for c in caps],
                                "orientation": "h",
                                "marker": {"symbol": "line-ns-open", "size": 18, "color": RED,
                                           "line": {"width": 3, "color": RED}},
                                "hovertemplate": "cap £%{x:,.0f}<extra>%{y}</extra>"})
        items.append(fig)
    if not items and names:
        items.append(_metric_bars(ok, "service.care_days_saved.mean",
                                  "Care days saved (true counterfactual), mean ±95% interval",
                                  "care days saved (days)", color=GREEN))
    return items


def _multiple_boxes(stats: list[tuple[str, np.ndarray, float]]) -> dict:
    names = [s[0] for s in stats]
    p = np.array([s[1] for s in stats])
    trace = {"type": "box", "orientation": "h", "y": names, "name": "multiple",
             "lowerfence": _floats(p[:, 0]), "q1": _floats(p[:, 1]), "median": _floats(p[:, 2]),
             "q3": _floats(p[:, 3]), "upperfence": _floats(p[:, 4]),
             "mean": _floats([s[2] for s in stats]), "boxmean": True,
             "marker": {"color": BLUE}, "fillcolor": _rgba(BLUE, 0.3), "showlegend": False}
    fig = figure_spec([trace], "Multiple on committed capital by variant (box: p25–p75, whiskers: "
                  "p05–p95, line: median, dashed: mean)", "distributions / committed capital (×)",
                  "variant")
    lo = float(min(p[:, 0].min(), 1.0))
    fig["layout"]["shapes"].append({"type": "rect", "xref": "x", "x0": lo - 0.05, "x1": 1.0,
                                    "yref": "paper", "y0": 0, "y1": 1, "layer": "below",
                                    "fillcolor": "rgba(214,39,40,0.08)", "line": {"width": 0}})
    _variant_axis(fig, len(names))
    return fig


def _metric_bars(rows: pd.DataFrame, key: str, title: str, xtitle: str, *,
                 se_col: str | None = None, percent: bool = False, money: bool = False,
                 color: str = BLUE) -> dict:
    se_col = se_col or f"{key}_se"
    scale = 100.0 if percent else 1.0
    values = rows[key].to_numpy(dtype=np.float64) * scale
    se = (rows[se_col].to_numpy(dtype=np.float64) if se_col in rows else
          np.full(len(rows), np.nan)) * scale
    fmt = "£%{x:,.0f}" if money else ("%{x:.2f}%" if percent else "%{x:.4g}")
    trace = {"type": "bar", "orientation": "h", "y": list(rows["scenario"]),
             "x": _floats(values), "marker": {"color": color}, "name": xtitle,
             "error_x": {"type": "data", "array": _floats(np.nan_to_num(se) * Z95),
                         "visible": True, "color": "black"},
             "hovertemplate": f"{fmt}<extra>%{{y}}</extra>", "showlegend": False}
    fig = figure_spec([trace], title, xtitle, "variant", x_money=money)
    _variant_axis(fig, len(rows))
    return fig


def _variant_axis(fig: dict, n: int) -> None:
    fig["layout"]["yaxis"].update({"autorange": "reversed", "type": "category"})
    fig["layout"]["height"] = max(360, 140 + 24 * n)
    fig["layout"]["bargap"] = 0.25


def _tornado_figures(out: Path) -> list:
    from .io import read_table

    files = sorted(out.glob("*__sensitivity/tornado.csv")) + sorted(
        p for p in [out / "tornado.csv"] if p.exists())
    items = []
    for f in files:
        t = read_table(f)
        if not len(t):
            continue
        meta_file = f.parent / "sensitivity.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        metric = meta.get("metric", "metric")
        base = float(t["metric_base"].iloc[0])
        labels = [f"{r.parameter} ({r.low:.3g} → {r.high:.3g})" for r in t.itertuples()]
        traces = []
        for side, name, color in (("low", "parameter at low", BLUE),
                                  ("high", "parameter at high", ORANGE)):
            diff = t[f"diff_{side}"].to_numpy(dtype=np.float64)
            se = t[f"diff_{side}_se"].to_numpy(dtype=np.float64) if f"diff_{side}_se" in t \
                else np.zeros(len(t))
            traces.append({"type": "bar", "orientation": "h", "y": labels, "x": _floats(diff),
                           "base": base, "name": name, "marker": {"color": color},
                           "error_x": {"type": "data", "array": _floats(np.nan_to_num(se) * Z95),
                                       "visible": True, "color": "black"},
                           "hovertemplate": f"{metric} %{{x:.4g}}<extra>%{{y}}</extra>"})
        scenario = meta.get("scenario", f.parent.name)
        fig = figure_spec(traces, f"Tornado: {metric} of {scenario} with each parameter at its low "
                              f"and high value (base {base:.4g}; ±95% paired interval)",
                      f"{metric}", "parameter (low → high)",
                      markers=[(base, "base", GREY, 1.0)])
        fig["layout"]["barmode"] = "overlay"
        _variant_axis(fig, len(t))
        items.append(fig)
    return items


SWEEP_NAME = re.compile(r"^(?P<base>.+)__(?P<sweep>.+)_(?P<k>\d+)$")


def _sweep_figures(ok: pd.DataFrame) -> list:
    sweeps: dict[tuple[str, str], list] = {}
    for _, r in ok[ok["kind"] == "sweep"].iterrows():
        m = SWEEP_NAME.match(str(r["scenario"]))
        if m:
            sweeps.setdefault((m["base"], m["sweep"]), []).append(
                (int(m["k"]), _parse_change(_str(r.get("change"))), r))
    items = []
    for (base, sweep), points in sweeps.items():
        points.sort(key=lambda p: p[0])
        keys = [k for k in points[0][1] if len({_str(p[1].get(k)) for p in points}) > 1]
        if not keys:
            continue
        xkey, group_key = keys[0], (keys[1] if len(keys) > 1 else None)
        metric_list = [("investor.multiple.mean", "mean multiple on committed capital (×)", False),
                       ("investor.prob_loss", "probability of a loss (%)", True),
                       ("commissioner.outcome_payments.p95", "outcome payments p95 (£)", False)]
        metric_list = [m for m in metric_list
                       if m[0] in ok and pd.notna(points[0][2].get(m[0]))]
        if not metric_list:
            metric_list = [("service.care_days_saved.mean", "care days saved (days)", False)]
        for metric, ytitle, percent in metric_list:
            traces = []
            groups: dict[str, list] = {}
            for _, change, r in points:
                g = _describe(group_key, change.get(group_key)) if group_key else sweep
                groups.setdefault(g, []).append((_numeric(change[xkey]), r))
            colors = [BLUE, ORANGE, GREEN, RED, PURPLE, GREY]
            scale = 100.0 if percent else 1.0
            for i, (g, pts) in enumerate(groups.items()):
                pts.sort(key=lambda p: (isinstance(p[0], str), p[0]))
                x = [p[0] for p in pts]
                y = np.array([p[1][metric] for p in pts], dtype=np.float64) * scale
                se = np.array([p[1].get(f"{metric}_se", np.nan) for p in pts],
                              dtype=np.float64) * scale
                color = colors[i % len(colors)]
                traces += _band(x, y - Z95 * np.nan_to_num(se), y + Z95 * np.nan_to_num(se),
                                g, color)
                traces.append({"type": "scatter", "mode": "lines+markers", "x": x,
                               "y": _floats(y), "name": g, "line": {"color": color},
                               "hovertemplate": "%{y:.4g}<extra>%{x}</extra>"})
            fig = figure_spec(traces, f"Sweep {sweep} of {base}: {ytitle.split(' (')[0]} against "
                                  f"{xkey} (band: ±95% interval)",
                          _axis_label(xkey, points[0][1][xkey]), ytitle,
                          y_money=metric.startswith("commissioner"))
            items.append(fig)
    return items


def _parse_change(text: str) -> dict[str, Any]:
    """Invert batch.format_change: 'a.b={scale: 0.8}; c=5000' -> {'a.b': {'scale': 0.8}, ...}."""
    import yaml

    from .yamlfiles import load_yaml

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split("; "))):
        key, _, value = part.partition("=")
        try:
            out[key] = load_yaml(value)
        except yaml.YAMLError:
            out[key] = value
    return out


def _numeric(v: Any) -> Any:
    if isinstance(v, dict) and len(v) == 1:
        v = next(iter(v.values()))
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _axis_label(key: str, example: Any) -> str:
    if isinstance(example, dict) and len(example) == 1:
        op = next(iter(example))
        return f"{key} ({ {'scale': '× base', 'add': '+ base', 'power': 'base ^'}.get(op, op) })"
    return key


def _describe(key: str, value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        op, v = next(iter(value.items()))
        return f"{key} {op} {v}"
    return f"{key} = {value}"


def _read_column(folder: Path, column: str) -> np.ndarray | None:
    import pyarrow.parquet as pq

    f = folder / "paths.parquet"
    try:
        if column not in pq.read_schema(f).names:
            return None
        return pd.read_parquet(f, columns=[column])[column].to_numpy(dtype=np.float64)
    except OSError:
        return None


def _summary_value(folder: Path, keys: tuple[str, ...]) -> Any:
    try:
        node = json.loads((folder / "summary.json").read_text())
        for k in keys:
            node = node[k]
        return node
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _str(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _figure_cell(x: Any, se: Any, fmt: str) -> str:
    """A figure and, on a line under it, its standard error (HTML): narrow columns."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    f = metrics.money if fmt == "money" else fmt.format
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return html.escape(f(x))
    return f"{html.escape(f(x))}<span class='se'>± {html.escape(f(se))}</span>"


# --------------------------------------------------------------------------- static images
class ImageExportUnavailable(RuntimeError):
    """Static images need kaleido and a Chromium browser."""


def export_images(sections: list[tuple[str, str, list]], folder: str | Path,
                  fmt: str = "png") -> list[Path]:
    """Write every chart of ``sections`` as ``folder/<section>_<n>.<fmt>`` (PNG or SVG).

    plotly renders static images with kaleido, which drives a Chromium browser (Debian's
    ``chromium`` package works); raise ImageExportUnavailable with what is missing."""
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError:
        raise ImageExportUnavailable(
            "static images need the kaleido package (pip install 'sibsim[images]') and a "
            "Chromium browser (apt-get install chromium); the HTML report has a "
            "download-as-PNG button on every chart instead") from None
    from . import io

    figs, names = [], []
    for sid, _, items in sections:
        charts = [item for item in items if isinstance(item, dict)]
        for n, fig in enumerate(charts, start=1):
            figs.append(_clean(fig))
            names.append(f"{sid}_{n}.{fmt}")
    folder = Path(folder)
    try:
        with io.atomic_folder(folder, marker=IMAGES_FILE) as tmp:  # all the images or none
            io.write_json(tmp / IMAGES_FILE, {"images": names})
            pio.write_images(figs, [str(tmp / n) for n in names], format=fmt, width=900,
                             height=480)
    except Exception as exc:  # noqa: BLE001 - kaleido reports a missing browser in many ways
        raise ImageExportUnavailable(f"static image export failed ({type(exc).__name__}: "
                                     f"{exc}); kaleido needs a Chromium browser (apt-get "
                                     f"install chromium)") from exc
    return [folder / n for n in names]


# --------------------------------------------------------------------------- page
# tr.about div: its width 0 (at least the cell's) keeps a variant's long description out
# of the column widths, which then follow the figures; the text wraps under them
CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;
max-width:1400px;padding:1rem 2rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 1.5rem 1rem 0;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f0f0}.tables{display:flex;flex-wrap:wrap;align-items:flex-start}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1rem}
.sib-chart{min-height:360px;border:1px solid #eee}.note{color:#555;font-size:.9rem}
nav a{margin-right:1rem}#in-brief li{margin:.3rem 0;max-width:70rem}
.grid>div:has(>table.inputs){grid-column:1/-1}table.inputs{width:100%}
table.inputs td{overflow-wrap:anywhere}
table.inputs td:first-child,table.inputs td:nth-child(4){overflow-wrap:normal;white-space:nowrap}
table.variants{width:100%;margin-right:0}table.variants td{overflow-wrap:break-word}
tr.variant td{border-bottom:0}.se{display:block;color:#555;font-size:.8rem}
tr.about td{border-top:0;color:#555;font-size:.85rem;padding-bottom:.45rem}
tr.about div{width:0;min-width:100%;overflow-wrap:anywhere}
"""


def render_page(title: str, intro_html: str, sections: list[tuple[str, str, list]],
                plotlyjs: str = "inline", to_results: str = "") -> str:
    """One HTML page: plotly.js loaded once in the head (:func:`plotly_js.script`), then
    the sections' charts and notes."""
    figures: dict[str, dict] = {}
    body = [f"<h1>{html.escape(title)}</h1>",
            "<nav>" + "".join(f"<a href='#{sid}'>{html.escape(name)}</a>"
                              for sid, name, _ in sections) + "</nav>", intro_html]
    for sid, name, items in sections:
        body.append(f"<section id='{sid}'><h2>{html.escape(name)}</h2><div class='grid'>")
        for item in items:
            if isinstance(item, str):
                body.append(f"<div>{item}</div>")
            else:
                chart_id = f"chart-{len(figures) + 1}"
                figures[chart_id] = item
                body.append(f"<div class='sib-chart' id='{chart_id}'></div>")
        body.append("</div></section>")
    specs = json.dumps(_clean(figures), separators=(",", ":"),
                       allow_nan=False).replace("</", "<\\/")
    script = ("const FIGURES=" + specs + ";\n"
              "const CONFIG={responsive:true,displaylogo:false,"
              "toImageButtonOptions:{format:'png',scale:2}};\n"
              "for(const [id,fig] of Object.entries(FIGURES)){"
              "Plotly.newPlot(id,fig.data,fig.layout,CONFIG);}\n")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            f"{plotly_js.script(plotlyjs, to_results)}</head>\n<body>\n"
            + "\n".join(body) + f"\n<script type='text/javascript'>{script}</script>\n"
            "</body></html>\n")


def _clean(x: Any) -> Any:
    """Chart specs as plain JSON: numpy scalars and arrays to Python, NaN and inf to null
    (plotly draws a gap)."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def html_table(head: list[tuple], rows: list[tuple], caption: str = "", css: str = "") -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    thead = "".join("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in h) + "</tr>"
                    for h in head)
    tbody = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                    for r in rows)
    cls = f" class='{css}'" if css else ""
    return f"<table{cls}>{cap}<thead>{thead}</thead><tbody>{tbody}</tbody></table>"
