"""The report's words: a summary in sentences, what each headline figure measures, and
the quick paired sensitivity behind "most sensitive to".

The sensitivity scales each of a few inputs the figures rest on by ×0.8 and ×1.2 and
simulates a few hundred paths on the run's seed: common random numbers, so each
difference is the input's effect, with a paired standard error. It is saved with the
report's chart data, so a rebuilt report says the same.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import compare, engine
from .compose import Override, ResolvedScenario, parse_key
from .metrics import money
from .yamlfiles import ScenarioError

SENSITIVITY_STEP = 0.2
SENSITIVITY_PATHS = 500
_COSTS = ("per_team_per_quarter", "per_case_started", "flexible_fund_per_family", "set_up",
          "licence_per_team_per_year", "management_fee_per_quarter")
SENSITIVITY_INPUTS = (
    ("referrals per team per month", ("referrals.per_team_per_month",)),
    ("the treatment effect (hazard ratios)",
     ("treatment.hazard_ratio_during", "treatment.hazard_ratio_after")),
    ("therapist turnover", ("workforce.leaving_rate_per_year",)),
    ("service costs", tuple(f"costs.{c}" for c in _COSTS)),
    ("care entry without the service", ("counterfactual.hazard_multiplier",)),
    ("price per care day saved", ("contract.price_per_care_day_saved",)),
    ("care cost per day", ("contract.care_cost_per_day",)),
)
SENSITIVITY_FIGURES = ("investor.multiple.mean", "commissioner.net_saving.mean")

# What each headline figure of metrics.headline_rows measures: which paths, which dates,
# which definition (so that a run's figures and the calibration table can be told apart).
HEADLINE_MEANING = {
    "young people treated":
        "Young people who started therapy over the service's life; mean over paths, and "
        "the 5th to 95th percentile.",
    "care proportion treated / counterfactual":
        "Days in care over days tracked, over every young person's whole tracking window, "
        "with the service and (same paths) without it. The calibration's care proportion "
        "at March 2019 counts only the quarters ended by then, when many windows were "
        "still open, so it differs.",
    "care days saved (true)":
        "Care days without the service less care days with it, over the whole tracking "
        "windows: the true saving. The calibration's days saved by March 2019 are the "
        "contract's measure (baseline days less actual) over the quarters ended by then.",
    "outcome payments mean (p50, p95)":
        "Outcome payments from the commissioner over the contract, per path: mean, "
        "median and 95th percentile.",
    "probability the cap is reached": "Share of paths on which the cap on payments binds.",
    "payments if the service had no effect (mean)":
        "What the same contract would have paid on the same paths had the therapy changed "
        "nothing: care days without the service measured against the baseline.",
    "net saving to the commissioner (p50)":
        "Care costs avoided (true care days saved × care cost per day) less outcome "
        "payments; median over paths.",
    "multiple on committed capital p05/p50/p95":
        "What investors end with (distributions plus commitment never drawn) over their "
        "commitment; 5th, 50th and 95th percentiles over paths.",
    "IRR p50": "Investors' internal rate of return a year on their quarterly cash flows "
               "(capital calls out, distributions in); median over paths.",
    "probability of a loss": "Share of paths on which investors get back less than they "
                             "were called for.",
    "capital drawn p50": "Capital called from investors over the bond's life; median.",
}


def quick_sensitivity(loaded: ResolvedScenario, seed: int,
                      paths: int = SENSITIVITY_PATHS) -> dict[str, Any]:
    """Each of SENSITIVITY_INPUTS the scenario sets (non-zero) at ×0.8 and ×1.2, on
    ``paths`` paths of ``seed``: the mean multiple and net saving at each, with the paired
    standard errors of their differences from the unchanged scenario."""
    base = engine.simulate(loaded.scenario, paths=paths, seed=seed).paths
    figures = [f for f in SENSITIVITY_FIGURES if np.isfinite(_value(base, f))]
    rows = []
    for label, keys in _inputs_set(loaded):
        sides = {}
        for side, factor in (("low", 1 - SENSITIVITY_STEP), ("high", 1 + SENSITIVITY_STEP)):
            try:
                scaled = loaded.derive([Override(parse_key(k), {"scale": factor},
                                                 ("sensitivity", None)) for k in keys])
            except ScenarioError:   # e.g. a share scaled past 1: that side is left out
                continue
            sides[side] = engine.simulate(scaled.scenario, paths=paths, seed=seed).paths
        for figure in figures:
            row = {"input": label, "keys": list(keys), "figure": figure,
                   "base": _value(base, figure)}
            for side, frame in sides.items():
                row[side] = _value(frame, figure)
                row[f"{side}_se"] = compare.paired_difference_se(figure, frame, base)
            rows.append(row)
    return {"step": SENSITIVITY_STEP, "paths": paths, "seed": seed, "rows": rows}


def _inputs_set(loaded: ResolvedScenario):
    from .stress import scenario_value
    for label, keys in SENSITIVITY_INPUTS:
        present = tuple(k for k in keys if scenario_value(loaded.scenario, k))
        if present:
            yield label, present


def _value(frame, figure: str) -> float:
    spec = compare.path_metric(figure)
    return compare.statistic(spec.values(frame), spec.stat)


def most_sensitive(sensitivity: Mapping | None, figure: str, n: int = 3) -> list[dict]:
    """The ``n`` rows of ``figure`` with the largest swing from ×0.8 to ×1.2."""
    rows = [r for r in (sensitivity or {}).get("rows", [])
            if r["figure"] == figure and "low" in r and "high" in r]
    swing = [abs(r["high"] - r["low"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: -swing[i])
    return [rows[i] for i in order[:n] if swing[i] > 0]


# --------------------------------------------------------------------------- sentences
def sentences(summary: Mapping, inputs: list[dict] | None = None,
              sensitivity: Mapping | None = None) -> list[str]:
    """The report's summary in plain sentences, from the run's figures."""
    values = {row["input"]: row for row in inputs or []}
    out = []
    if "investor" in summary:
        out.append(_investor_sentence(summary["investor"]))
    if "commissioner" in summary:
        c = summary["commissioner"]
        out.append(_payments_sentence(c, summary["service"]))
        out.append(_no_effect_sentence(c))
        out.append(_saving_sentence(c, values.get("contract.care_cost_per_day")))
    for figure, what in (("investor.multiple.mean", "investors' mean multiple"),
                         ("commissioner.net_saving.mean", "commissioner's mean net saving")):
        found = most_sensitive(sensitivity, figure)
        if found:
            out.append(_sensitivity_sentence(what, figure, found, sensitivity))
    return [s for s in out if s]


def _investor_sentence(inv: Mapping) -> str:
    m = inv["multiple"]
    in_20 = f"In 19 of 20 simulated futures investors get back at least {_x(m['p05'])} " \
            f"their {money(inv.get('commitment'))} commitment"
    irr = inv["irr"]["p50"]
    irr_text = f", an IRR of {_pct(irr)} a year" if _finite(irr) else ""
    return (f"{in_20}; in the median future {_x(m['p50'])}{irr_text}. The chance of a loss "
            f"is {_pct(inv['prob_loss'])}, and the worst 1 in 20 futures return "
            f"{_x(inv['cvar95'])} on average.")


def _payments_sentence(c: Mapping, service: Mapping) -> str:
    pay = c["outcome_payments"]
    text = (f"The commissioner pays {money(pay['p50'])} in outcome payments in the median "
            f"future ({money(pay['p95'])} at the 95th percentile; the cap of "
            f"{money(c['cap'])} binds in {_pct(c['prob_cap_reached'])} of futures), for "
            f"{service['care_days_saved']['mean']:,.0f} care days saved on average.")
    years = c.get("payments_by_financial_year") or []
    if years:
        top = max(years, key=lambda y: y.get("p95") or 0.0)
        text += (f" Its heaviest year is {top['year']}: {money(top['p50'])} at the median, "
                 f"{money(top['p95'])} at the 95th percentile.")
    return text


def _no_effect_sentence(c: Mapping) -> str:
    none = c["no_effect_payments"]["mean"]
    share = c["deadweight_share"]["mean"]
    return (f"Had the therapy had no effect, the same contract would still have paid "
            f"{money(none)} on average: {_pct(share)} of the payments are for care days "
            f"that would have been saved anyway.")


def _saving_sentence(c: Mapping, care_cost: Mapping | None) -> str:
    net = c["net_saving"]
    cost = ""
    if care_cost and care_cost.get("value") is not None:
        cost = (f", at a care cost of £{float(care_cost['value']):,.0f} a day "
                f"({care_cost.get('source', 'UNSOURCED')})")
    return (f"Care costs avoided less payments leave the commissioner a net saving of "
            f"{money(net['p50'])} in the median future ({money(net['p05'])} at the 5th "
            f"percentile){cost}.")


def _sensitivity_sentence(what: str, figure: str, rows: list[dict], sens: Mapping) -> str:
    fmt = _x if figure.endswith("multiple.mean") else money
    parts = [f"{r['input']} ({fmt(r['low'])} to {fmt(r['high'])})" for r in rows]
    listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    step = sens.get("step", SENSITIVITY_STEP)
    return (f"Of the inputs tried at ×{1 - step:g} and ×{1 + step:g} "
            f"({sens.get('paths', 0):,} paired paths), the {what} ({fmt(rows[0]['base'])}) "
            f"moves most with {listed}.")


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _x(x: Any) -> str:
    return f"{x:.2f}×" if _finite(x) else "n/a"


def _pct(x: Any) -> str:
    return f"{x:.1%}" if _finite(x) else "n/a"
