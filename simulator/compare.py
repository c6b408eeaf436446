"""Comparing runs: summary metrics, their standard errors and paired differences.

A summary.json metric such as ``investor.multiple.mean`` is a statistic of a
per-path column of paths.parquet (here the mean of ``multiple``). Knowing which
lets us give every headline figure a Monte Carlo standard error and, for two
runs on the same seed and path count (common random numbers), the standard
error of their difference from the per-path differences: ``sd(x_v - x_b) /
sqrt(n)`` for means and probabilities, a paired bootstrap for percentiles.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

BOOTSTRAP_SAMPLES = 200
BOOTSTRAP_SEED = 20240501  # fixed: standard errors are reproducible
RESAMPLE_BLOCK_VALUES = 1 << 22   # path indices in one batch of resamples (32 MB)


def _care_proportion(f: pd.DataFrame) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (f.care_days_treated / f.child_days).to_numpy(dtype=np.float64)


def _counterfactual_proportion(f: pd.DataFrame) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (f.care_days_counterfactual / f.child_days).to_numpy(dtype=np.float64)


# summary.json block -> the per-path series it summarises (see metrics.summary):
# a paths.parquet column, or a function of the frame
SERIES: dict[str, str | Callable[[pd.DataFrame], np.ndarray]] = {
    "service.referrals": "referrals",
    "service.children_treated": "started",
    "service.completed": "completed",
    "service.lost_from_waiting_list":
        lambda f: (f.lost_wait + f.lost_care + f.lost_service_end).to_numpy(dtype=np.float64),
    "service.care_proportion": _care_proportion,
    "service.counterfactual_care_proportion": _counterfactual_proportion,
    "service.care_days_saved":
        lambda f: (f.care_days_counterfactual - f.care_days_treated).to_numpy(dtype=np.float64),
    "service.therapist_leavers": "leavers",
    "commissioner.outcome_payments": "outcome_payments",
    "commissioner.outcome_payments_present_value": "payments_pv",
    "commissioner.care_costs_avoided": "care_costs_avoided",
    "commissioner.net_saving": "net_saving",
    "commissioner.no_effect_payments": "no_effect_payments",
    "commissioner.deadweight_share": "deadweight_share",
    "commissioner.service_costs": "service_costs",
    "investor.multiple": "multiple",
    "investor.moic_drawn": "moic_drawn",
    "investor.irr": "irr",
    "investor.capital_drawn": "capital_drawn",
    "investor.undrawn_commitment": "undrawn_commitment",
    "investor.idle_cash": "idle_cash",
    "investor.peak_capital_at_risk": "peak_capital_at_risk",
    "investor.costs_unfunded": "costs_unfunded",
    "investor.distributions_to_provider": "distributions_provider",
}
# single figures that are statistics of a series
SPECIAL: dict[str, tuple[str, str]] = {
    "investor.prob_loss": ("loss", "mean"),
    "commissioner.prob_cap_reached": ("cap_reached", "mean"),
    "investor.var95": ("multiple", "p05"),
    "investor.cvar95": ("multiple", "cvar05"),
}

# The headline figures of batch_summary.csv
HEADLINE_METRICS = [
    "investor.multiple.mean", "investor.multiple.p50", "investor.multiple.p05",
    "investor.prob_loss", "investor.irr.p50", "investor.capital_drawn.mean",
    "commissioner.outcome_payments.mean", "commissioner.outcome_payments.p95",
    "commissioner.prob_cap_reached", "commissioner.net_saving.mean",
    "commissioner.no_effect_payments.mean", "commissioner.deadweight_share.mean",
    "service.children_treated.mean", "service.care_days_saved.mean",
    "service.care_proportion.mean",
]


@dataclass(frozen=True)
class PathMetric:
    """A summary metric as ``stat`` of a per-path series."""

    series: str | Callable[[pd.DataFrame], np.ndarray]  # a column, or a function of the frame
    stat: str                                           # "mean", "pNN" or "cvar05"

    @property
    def column(self) -> str | None:
        return self.series if isinstance(self.series, str) else None

    def values(self, frame: pd.DataFrame) -> np.ndarray:
        if isinstance(self.series, str):
            return frame[self.series].to_numpy(dtype=np.float64)
        return self.series(frame)


def path_metric(metric: str) -> PathMetric | None:
    """The per-path definition of a dotted summary metric, or None if it has none."""
    if metric in SPECIAL:
        return PathMetric(*SPECIAL[metric])
    block, _, leaf = metric.rpartition(".")
    if block in SERIES and (leaf == "mean" or re.fullmatch(r"p\d\d", leaf)):
        return PathMetric(SERIES[block], leaf)
    return None


def statistic(x: np.ndarray, stat: str) -> float:
    """The statistic as metrics.summary computes it (non-finite values left out)."""
    if stat == "cvar05":
        return float(x[x <= np.percentile(x, 5)].mean())
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan
    if stat == "mean":
        return float(x.mean())
    return float(np.percentile(x, int(stat[1:])))


def lookup(summary: dict, metric: str) -> Any:
    """``summary["investor"]["multiple"]["mean"]`` from ``"investor.multiple.mean"``
    (``[i]`` indexes a list, e.g. ``commissioner.payments_by_financial_year[2].p95``)."""
    node: Any = summary
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", metric):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(node, list) or i >= len(node):
                raise KeyError(f"{metric}: no item {part}")
            node = node[i]
        else:
            if not isinstance(node, dict) or part not in node:
                options = ", ".join(node) if isinstance(node, dict) else "none"
                raise KeyError(f"{metric}: no key {part!r} (available here: {options})")
            node = node[part]
    return node


def metric_value(summary: dict, metric: str) -> float:
    value = lookup(summary, metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KeyError(f"{metric} is not a number (it is {type(value).__name__}); name a "
                       f"figure such as investor.multiple.mean")
    return float(value)


def _summary_se(summary: dict, metric: str) -> float | None:
    block, _, leaf = metric.rpartition(".")
    for candidate in ([f"{block}.se"] if leaf == "mean" else []) + [f"{metric}_se"]:
        try:
            se = lookup(summary, candidate)
        except KeyError:
            continue
        if isinstance(se, (int, float)):
            return float(se)
    return None


def _bootstrap(statistic: Callable[..., np.ndarray], *series: np.ndarray) -> np.ndarray:
    """``statistic`` of each of BOOTSTRAP_SAMPLES resamples of the paths, the same resample
    of every series (paired): one draw of every resample's path indices, in batches of
    about RESAMPLE_BLOCK_VALUES indices so that memory stays small for big runs (a
    resample's indices are one generator call either way: the same numbers)."""
    n = len(series[0])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    per_batch = max(1, RESAMPLE_BLOCK_VALUES // n)
    draws = []
    for done in range(0, BOOTSTRAP_SAMPLES, per_batch):
        rows = rng.integers(0, n, (min(per_batch, BOOTSTRAP_SAMPLES - done), n))
        draws.append(statistic(*(x[rows] for x in series)))
    return np.concatenate(draws)


def _statistics(resampled: np.ndarray, stat: str) -> np.ndarray:
    """statistic(row, stat) for each row of resampled (reordered: a copy of the paths'
    values). A percentile of finite values is taken along the rows in one call (the same
    numbers as row by row: numpy's percentile works on each row alone); one call per
    row cost far more than the percentile itself."""
    if stat != "cvar05" and stat != "mean" and np.isfinite(resampled).all():
        return np.percentile(resampled, int(stat[1:]), axis=-1, overwrite_input=True)
    return np.array([statistic(row, stat) for row in resampled])


def _spread(draws: np.ndarray) -> float:
    draws = draws[np.isfinite(draws)]
    return float(draws.std(ddof=1)) if len(draws) > 1 else math.nan


def standard_error(metric: str, frame: pd.DataFrame | None = None,
                   summary: dict | None = None) -> float | None:
    """Monte Carlo standard error of a metric: from summary.json where it is given,
    else by bootstrap over paths; None if the metric has no per-path definition."""
    if summary is not None:
        se = _summary_se(summary, metric)
        if se is not None:
            return se
    spec = path_metric(metric)
    if spec is None or frame is None or len(frame) < 2:
        return None
    x = spec.values(frame)
    if spec.stat == "mean":
        x = x[np.isfinite(x)]
        return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return _spread(_bootstrap(lambda x: _statistics(x, spec.stat), x))


def paired_difference_se(metric: str, variant: pd.DataFrame, base: pd.DataFrame) -> float | None:
    """Standard error of (variant - base) for two runs on the same seed and paths."""
    spec = path_metric(metric)
    if spec is None or len(variant) != len(base) or len(base) < 2:
        return None
    x, y = spec.values(variant), spec.values(base)
    if spec.stat == "mean":
        d = x - y
        d = d[np.isfinite(d)]
        return float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return _spread(_bootstrap(
        lambda x, y: _statistics(x, spec.stat) - _statistics(y, spec.stat), x, y))
