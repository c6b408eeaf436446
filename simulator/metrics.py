"""Risk metrics: per-path results -> summary.json and quarterly fan-chart tables.

Plain numpy/pandas over the engine's per-path arrays. Every mean comes with its
Monte Carlo standard error (``se``); undefined IRRs are counted, never averaged.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import layout as L
from .layout import CALENDAR_QUARTER_COLUMNS

if TYPE_CHECKING:
    from .engine import SimulationResult


def _finite(x) -> np.ndarray:
    """x as float64 without its undefined values (copied only if it has some)."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    return x if finite.all() else x[finite]


def _mean_se(x: np.ndarray) -> dict[str, float]:
    x = _finite(x)
    if len(x) == 0:
        return {"mean": math.nan, "se": math.nan}
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return {"mean": float(x.mean()), "se": se}


def _quantiles(x: np.ndarray, qs=(5, 50, 95)) -> dict[str, float]:
    x = _finite(x)
    if len(x) == 0:
        return {f"p{q:02d}": math.nan for q in qs}
    # numpy's percentiles, found by a quickselect of the few values near them
    from .kernels.quantiles import percentiles

    return {f"p{q:02d}": float(v) for q, v in zip(qs, percentiles(x.copy(), np.array(qs, float)))}


def _stats(x, qs=(5, 50, 95)) -> dict[str, float]:
    x = _finite(x)
    return {**_mean_se(x), **_quantiles(x, qs)}


def financial_year(d) -> int:
    """UK local-authority financial year (April-March), named by its starting year."""
    return d.year if d.month >= 4 else d.year - 1


def summary(result: SimulationResult) -> dict[str, Any]:
    f = result.paths
    n = len(f)
    cal = result.by_calendar_quarter
    out: dict[str, Any] = {"scenario": result.scenario.name, "paths": n, "seed": result.seed}
    child = f.child_days.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        care_prop = f.care_days_treated.to_numpy() / child
        cf_prop = f.care_days_counterfactual.to_numpy() / child
    saved = (f.care_days_counterfactual - f.care_days_treated).to_numpy()
    contract = result.scenario.contract
    out["service"] = {
        "referrals": _stats(f.referrals),
        "children_treated": _stats(f.started),
        "completed": _stats(f.completed),
        "lost_from_waiting_list": _mean_se(f.lost_wait + f.lost_care + f.lost_service_end),
        "care_proportion": _stats(care_prop),
        "counterfactual_care_proportion": _stats(cf_prop),
        "baseline_care_proportion": (contract.baseline_care_proportion if contract else None),
        "care_days_saved": _stats(saved),
        "therapist_leavers": _mean_se(f.leavers),
    }
    if contract is not None:
        payments = f.outcome_payments.to_numpy()
        years = [financial_year(q) for q in result.calendar_quarters]
        by_year = []
        for year in sorted(set(years)):
            cols = [i for i, y in enumerate(years) if y == year]
            x = cal[:, cols, L.K_OUTCOME_PAYMENTS].sum(axis=1)
            if np.any(x != 0):
                by_year.append({"year": f"{year}/{(year + 1) % 100:02d}", **_mean_se(x),
                                **_quantiles(x, (50, 95))})
        out["commissioner"] = {
            "outcome_payments": {**_stats(payments), "max": float(np.max(payments))},
            "outcome_payments_present_value": _mean_se(f.payments_pv),
            "payments_by_financial_year": by_year,
            "cap": contract.cap,
            "prob_cap_reached": float(f.cap_reached.mean()),
            "prob_cap_reached_se": _mean_se(f.cap_reached)["se"],
            "care_costs_avoided": _stats(f.care_costs_avoided),
            "net_saving": _stats(f.net_saving),
            # what the same contract would have paid on each path had the service had no
            # effect (its counterfactual care days, on the same draws), and the share of
            # the payments that were for days the counterfactual would have saved anyway
            "no_effect_payments": {**_stats(f.no_effect_payments),
                                   "prob_any": float((f.no_effect_payments > 0.005).mean())},
            "deadweight_share": _stats(f.deadweight_share),
            "service_costs": _stats(f.service_costs),
        }
    if result.scenario.finance is not None:
        multiple = f.multiple.to_numpy()
        irr = f.irr.to_numpy()
        var95 = float(np.percentile(multiple, 5))
        tail = multiple[multiple <= var95]
        out["investor"] = {
            "commitment": result.scenario.finance.commitment,
            "multiple": _stats(multiple),
            "moic_drawn": _stats(f.moic_drawn, (50,)),
            # over every path: -100% where nothing came back; undefined (NaN) only where
            # nothing was drawn. "rules" counts the paths by how their IRR was found.
            "irr": {**_stats(irr), "undefined_paths": int(np.isnan(irr).sum()),
                    "rules": irr_rule_counts(f.irr_rule.to_numpy())},
            "prob_loss": float(f.loss.mean()),
            "prob_loss_se": _mean_se(f.loss)["se"],
            # value at risk and expected shortfall of the multiple on committed capital:
            # the 5th percentile, and the mean of the worst 5% of paths
            "var95": var95,
            "cvar95": float(tail.mean()),
            "capital_drawn": _stats(f.capital_drawn),
            "undrawn_commitment": _stats(f.undrawn_commitment),
            "idle_cash": _stats(f.idle_cash),
            "peak_capital_at_risk": _stats(f.peak_capital_at_risk),
            "costs_unfunded": {**_mean_se(f.costs_unfunded),
                               "prob_any": float((f.costs_unfunded > 0.005).mean())},
            "distributions_to_provider": _mean_se(f.distributions_provider),
        }
    return out


def irr_rule_counts(rule: np.ndarray) -> dict[str, int]:
    """Paths by the rule that gave their IRR (layout.IRR_RULES names)."""
    return {name: int((rule == code).sum()) for code, name in enumerate(L.IRR_RULES)}


QUARTER_LINES = ["outcome_payments", "no_effect_payments", "service_costs", "costs_paid",
                 "costs_unfunded", "capital_calls", "distributions_investors",
                 "distributions_provider", "spv_balance", "referrals", "accepted", "started",
                 "child_days", "care_treated", "care_counterfactual", "baseline_care_days",
                 "vacancy_days", "therapist_days", "caseload_days", "waiting_days"]
# Averages over each quarter's days: open cases and young people waiting on an average day.
DAILY_AVERAGE_LINES = {"open_cases": "caseload_days", "waiting_list": "waiting_days"}
# Running totals per path, for the report's fan charts: a percentile of a running total is
# not the running total of the percentiles, so they are computed path by path here.
CUMULATIVE_LINES = {
    "cumulative_outcome_payments": ("outcome_payments",),
    "cumulative_no_effect_payments": ("no_effect_payments",),
    "cumulative_capital_calls": ("capital_calls",),       # capital drawn to date
    "investor_cash_position": ("distributions_investors", "-capital_calls"),
}


def _next_quarter(start):
    month = start.month + 3
    return start.replace(year=start.year + (month > 12), month=(month - 1) % 12 + 1)


def quarters_table(result: SimulationResult) -> pd.DataFrame:
    """Per calendar quarter: mean and p05/p50/p95 of each line across paths."""
    from .kernels.quantiles import lanes, line_figures

    cal = result.by_calendar_quarter
    names, spec = _line_specs(result)
    parts, signs, cumulative, divisor = spec
    figures = np.empty((len(names), cal.shape[1], 4))
    line_figures(cal, parts, signs, cumulative, divisor, np.array([5.0, 50.0, 95.0]), lanes(),
                 figures)
    table: dict[str, Any] = {
        "quarter_start": list(result.calendar_quarters),
        "financial_year": [financial_year(q) for q in result.calendar_quarters]}
    for i, name in enumerate(names):
        for j, stat in enumerate(("mean", "p05", "p50", "p95")):
            table[f"{name}_{stat}"] = figures[i, :, j]
    return pd.DataFrame(table)


def _line_specs(result: SimulationResult) -> tuple[list[str], tuple[np.ndarray, ...]]:
    """The quarterly table's lines as quantiles.line_figures reads them: each line's
    columns of the calendar-quarter array with their signs, whether it is a running
    total, and what each quarter is divided by (days, for averages over a quarter)."""
    starts = list(result.calendar_quarters)
    days = np.diff([*(q.toordinal() for q in starts),
                    _next_quarter(starts[-1]).toordinal()]).astype(float)
    lines: list[tuple[str, tuple[str, ...], bool, np.ndarray]] = []
    ones = np.ones(len(starts))
    for name in QUARTER_LINES:
        if name in CALENDAR_QUARTER_COLUMNS:
            lines.append((name, (name,), False, ones))
    for name, cols in CUMULATIVE_LINES.items():
        lines.append((name, cols, True, ones))
    for name, col in DAILY_AVERAGE_LINES.items():
        lines.append((name, (col,), False, days))
    width = max(len(cols) for _, cols, _, _ in lines)
    parts = np.full((len(lines), width), -1, np.int64)
    signs = np.zeros((len(lines), width))
    for i, (_, cols, _, _) in enumerate(lines):
        for j, col in enumerate(cols):
            parts[i, j] = CALENDAR_QUARTER_COLUMNS.index(col.lstrip("-"))
            signs[i, j] = -1.0 if col.startswith("-") else 1.0
    cumulative = np.array([c for _, _, c, _ in lines])
    divisor = np.array([d for _, _, _, d in lines])
    return [n for n, _, _, _ in lines], (parts, signs, cumulative, divisor)


def _fmt(x: Any, spec: str) -> str:
    """``x`` formatted, or "n/a" for a figure that is undefined: NaN in a summary made in
    this process, null in one read back from summary.json (e.g. the IRR where no path
    has one, or a care proportion without any child days)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return format(x, spec)


def money(x: Any) -> str:
    """Pounds in millions as every output writes them: £3.10m, −£7.64m; "n/a" where
    undefined."""
    if _fmt(x, "") == "n/a":
        return "n/a"
    return f"{'−' if x < 0 else ''}£{abs(x) / 1e6:,.2f}m"


def headline_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The short table `sibsim run` prints."""
    sv = s["service"]
    treated = sv["children_treated"]
    rows = [("young people treated", f"{_fmt(treated['mean'], ',.1f')} "
             f"(p05-p95 {_fmt(treated['p05'], ',.0f')}-{_fmt(treated['p95'], ',.0f')})"),
            ("care proportion treated / counterfactual",
             f"{_fmt(sv['care_proportion']['mean'], '.1%')} / "
             f"{_fmt(sv['counterfactual_care_proportion']['mean'], '.1%')}"),
            ("care days saved (true)", _fmt(sv["care_days_saved"]["mean"], ",.0f"))]
    if "commissioner" in s:
        c = s["commissioner"]
        rows += [("outcome payments mean (p50, p95)",
                  f"{money(c['outcome_payments']['mean'])} ({money(c['outcome_payments']['p50'])}, "
                  f"{money(c['outcome_payments']['p95'])})"),
                 ("probability the cap is reached", _fmt(c["prob_cap_reached"], ".1%")),
                 ("payments if the service had no effect (mean)",
                  money(c["no_effect_payments"]["mean"])),
                 ("net saving to the commissioner (p50)", money(c["net_saving"]["p50"]))]
    if "investor" in s:
        i = s["investor"]
        m = i["multiple"]
        rows += [("multiple on committed capital p05/p50/p95",
                  f"{_fmt(m['p05'], '.2f')} / {_fmt(m['p50'], '.2f')} / {_fmt(m['p95'], '.2f')}"),
                 ("IRR p50", _fmt(i["irr"]["p50"], ".1%")),
                 ("probability of a loss", _fmt(i["prob_loss"], ".1%")),
                 ("capital drawn p50", money(i["capital_drawn"]["p50"]))]
    return rows
