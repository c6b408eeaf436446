"""Published figures as targets, and fitting free scenario parameters to them.

A targets file (``scenarios/essex_targets.yaml``) lists published figures, each
with the statistic of a simulation it compares with, a tolerance and a source.
A statistic is written ``aggregate(quantity)`` or ``aggregate(quantity@DATE)``:

* ``aggregate`` is ``mean``, ``median``, ``p05``, ``p95``, ``max`` or ``min``
  over paths;
* ``quantity`` is a column of ``paths.parquet`` (``started``, ``multiple``,
  ``service_costs`` ...) or a derived per-path quantity (``care_proportion``,
  ``counterfactual_care_proportion``, ``care_days_saved``,
  ``true_care_days_saved``), or any calendar-quarter line (``child_days``,
  ``care_treated``, ``outcome_payments`` ...) summed over quarters;
* ``@DATE`` measures the quantity as at a date: only calendar quarters that
  have ended by then count (so figures published while recent cases were still
  being tracked can be compared like with like).

``calibrate`` fits the named free parameters by Nelder-Mead on the sum of
squared (simulated - published) / tolerance, every evaluation on the same seed
(common random numbers), so the objective changes only through the parameters.
The fitted scenario is written by editing the values in place in a copy of the
original YAML text, so its comments and citations survive.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import optimize

from . import engine
from . import kernels as K
from .loader import (Problem, ScenarioError, _parse_yaml, _problem_from_error, compose_yaml,
                     read_text)
from .schema import Scenario

AGGREGATES = ("mean", "median", "p05", "p95", "max", "min")
_STATISTIC = re.compile(r"^\s*(\w+)\(\s*([\w.]+)\s*(?:@\s*(\d{4}-\d{2}-\d{2}))?\s*\)\s*$")
_DERIVED = {"care_proportion", "counterfactual_care_proportion", "care_days_saved",
            "true_care_days_saved"}


class Target(BaseModel):
    """One published figure and how a simulation is compared with it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(description="Short label of the figure.")
    statistic: str = Field(description="aggregate(quantity) or aggregate(quantity@YYYY-MM-DD).")
    published: float = Field(allow_inf_nan=False, description="The published value (unit of the statistic).")
    kind: Literal["within", "at_most", "at_least"] = Field(
        "within", description="within: |simulated - published| <= tolerance; at_most / at_least: one-sided.")
    tolerance: float | None = Field(None, ge=0, allow_inf_nan=False,
                                    description="Absolute tolerance (unit of the statistic).")
    relative_tolerance: float | None = Field(None, ge=0, allow_inf_nan=False,
                                             description="Tolerance as a share of the published value.")
    source: str = Field(description="Where the figure was published (seed file and section).")
    note: str | None = Field(None, description="How the figure is read, where that needs saying.")
    fit: bool = Field(True, description="false: reported beside the fit but not fitted to "
                                        "(a figure no consistent set of inputs reproduces).")

    @model_validator(mode="after")
    def _one_tolerance(self):
        if (self.tolerance is None) == (self.relative_tolerance is None):
            raise ValueError("give exactly one of tolerance and relative_tolerance")
        parse_statistic(self.statistic)
        return self

    @property
    def absolute_tolerance(self) -> float:
        if self.tolerance is not None:
            return self.tolerance
        return abs(self.published) * self.relative_tolerance


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    description: str | None = None
    scenario: str | None = Field(None, description="Name of the scenario these targets are for.")
    targets: list[Target] = Field(min_length=1)


def parse_statistic(text: str) -> tuple[str, str, dt.date | None]:
    m = _STATISTIC.match(text)
    if not m or m.group(1) not in AGGREGATES:
        raise ValueError(f"statistic {text!r} is not aggregate(quantity[@YYYY-MM-DD]) with "
                         f"aggregate one of {', '.join(AGGREGATES)}")
    try:
        date = dt.date.fromisoformat(m.group(3)) if m.group(3) else None
    except ValueError as exc:   # e.g. 2019-02-30
        raise ValueError(f"statistic {text!r}: {m.group(3)} is not a date ({exc})") from None
    return m.group(1), m.group(2), date


def load_targets(path: str | Path) -> TargetsFile:
    path = Path(path)
    try:
        text = read_text(path)
    except OSError as exc:
        raise ScenarioError([Problem(str(path), None, "", f"cannot read file: {exc.strerror}")])
    data, root = _parse_yaml(str(path), text)
    try:
        return TargetsFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem_from_error(str(path), root, e) for e in exc.errors()])


def check_quantities(scenario: Scenario, targets: list[Target], path: str | Path) -> None:
    """ScenarioError naming (file, line, key) each target whose quantity this scenario
    does not have, or not as at a date; on a run of two paths, before anything is fitted,
    simulated at length or written."""
    result = engine.simulate(scenario, paths=2, seed=0)
    bad = []
    for i, target in enumerate(targets):
        try:
            estimate(result, target.statistic)
        except KeyError as exc:
            bad.append((i, str(exc).strip("'\"")))
    if bad:
        _, root = _parse_yaml(str(path), read_text(path))
        raise ScenarioError([_problem_from_error(str(path), root, {
            "loc": ("targets", i, "statistic"), "type": "value_error", "msg": message})
            for i, message in bad])


# --------------------------------------------------------------------------- statistics
def quantity(result: engine.SimulationResult, name: str, as_at: dt.date | None = None) -> np.ndarray:
    """Per-path values of ``name`` (see the module docstring), as at ``as_at`` if given."""
    cal = result.by_calendar_quarter
    if as_at is not None:
        ends = [_quarter_end(q) for q in result.calendar_quarters]
        keep = [i for i, e in enumerate(ends) if e <= as_at]
        cal = cal[:, keep, :]
    elif name in result.paths.columns:
        return result.paths[name].to_numpy(dtype=float)

    def line(col: str) -> np.ndarray:
        return cal[:, :, engine.CALENDAR_QUARTER_COLUMNS.index(col)].sum(axis=1)

    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "care_proportion":
            return line("care_treated") / line("child_days")
        if name == "counterfactual_care_proportion":
            return line("care_counterfactual") / line("child_days")
    if name == "care_days_saved":
        return line("baseline_care_days") - line("care_treated")
    if name == "true_care_days_saved":
        return line("care_counterfactual") - line("care_treated")
    if name in engine.CALENDAR_QUARTER_COLUMNS:
        return line(name)
    by_quarter = sorted(_DERIVED | set(engine.CALENDAR_QUARTER_COLUMNS))
    if as_at is not None and name in result.paths.columns:
        raise KeyError(f"{name} is a total over the whole run, not by quarter, so it has no "
                       f"value as at a date; by date: {', '.join(by_quarter)}")
    known = sorted(set(result.paths.columns) | set(by_quarter))
    raise KeyError(f"unknown quantity {name!r}; known: {', '.join(known)}")


def _quarter_end(start: dt.date) -> dt.date:
    month = start.month + 3
    year = start.year + (month > 12)
    return dt.date(year, (month - 1) % 12 + 1, 1) - dt.timedelta(days=1)


@dataclass
class Estimate:
    value: float
    low: float   # 95% Monte Carlo interval
    high: float


def estimate(result: engine.SimulationResult, statistic: str) -> Estimate:
    """The statistic over paths with a 95% Monte Carlo interval."""
    aggregate, name, as_at = parse_statistic(statistic)
    x = quantity(result, name, as_at)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    if aggregate == "mean":
        m = float(x.mean())
        se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return Estimate(m, m - 1.96 * se, m + 1.96 * se)
    if aggregate in ("max", "min"):
        v = float(x.max() if aggregate == "max" else x.min())
        return Estimate(v, v, v)
    q = {"median": 0.5, "p05": 0.05, "p95": 0.95}[aggregate]
    xs = np.sort(x)
    # distribution-free interval from order statistics (normal approximation to the binomial)
    half = 1.96 * math.sqrt(n * q * (1 - q))
    lo = xs[max(int(math.floor(n * q - half)), 0)]
    hi = xs[min(int(math.ceil(n * q + half)), n - 1)]
    return Estimate(float(np.quantile(x, q)), float(lo), float(hi))


@dataclass
class Comparison:
    target: Target
    simulated: Estimate

    @property
    def ok(self) -> bool:
        t, v = self.target, self.simulated.value
        tol = t.absolute_tolerance
        if t.kind == "at_most":
            return v <= t.published + tol
        if t.kind == "at_least":
            return v >= t.published - tol
        return abs(v - t.published) <= tol

    @property
    def residual(self) -> float:
        """Signed distance from the target in tolerances (0 inside a one-sided bound)."""
        t, v = self.target, self.simulated.value
        tol = t.absolute_tolerance or 1.0
        r = (v - t.published) / tol
        if t.kind == "at_most":
            r = max(r - 1.0, 0.0)
        elif t.kind == "at_least":
            r = min(r + 1.0, 0.0)
        return r if math.isfinite(r) else 1e3


def compare(result: engine.SimulationResult, targets: list[Target]) -> list[Comparison]:
    return [Comparison(t, estimate(result, t.statistic)) for t in targets]


def table(comparisons: list[Comparison]) -> list[str]:
    """Rows of the calibration table: published, simulated with 95% interval, verdict."""
    rows = [f"{'target':<36}{'published':>12}{'simulated':>12}  {'95% interval':<26}"
            f"{'tolerance':>12}  within"]
    for c in comparisons:
        t, e = c.target, c.simulated
        bound = {"within": "±", "at_most": "≤ +", "at_least": "≥ -"}[t.kind]
        verdict = ("yes" if c.ok else "NO") + ("" if t.fit else " (not fitted)")
        interval = f"[{_fmt(e.low)}, {_fmt(e.high)}]"
        rows.append(f"{t.name[:35]:<36}{_fmt(t.published):>12}{_fmt(e.value):>12}  "
                    f"{interval:<26}{bound + _fmt(t.absolute_tolerance):>12}  {verdict}")
    return rows


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "nan"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:,.1f}"
    return f"{x:.4g}"


# --------------------------------------------------------------------------- fitting
def get_value(data: dict, key: str) -> Any:
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def set_value(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


@dataclass
class Fit:
    scenario: Scenario
    values: dict[str, float]
    comparisons: list[Comparison]
    evaluations: int
    objective: float


def calibrate(scenario: Scenario, targets: list[Target], free: list[str], *, paths: int,
              seed: int, max_evaluations: int = 400, log=None) -> Fit:
    """Fit ``free`` parameters to ``targets`` on common random numbers.

    Each entry of ``free`` is a dotted key of a positive plain-number parameter,
    or several joined by ``+`` that share one fitted value (e.g. the hazard
    ratios during and after treatment, which one published figure cannot
    tell apart). Parameters are fitted on the log scale; targets with
    ``fit: false`` are left out of the objective.
    """
    engine.check_memory(scenario, paths)   # not one refused evaluation after another
    groups = [g.split("+") for g in free]
    base = scenario.model_dump()
    start = []
    for group in groups:
        values = []
        for key in group:
            try:
                v = get_value(base, key)
            except KeyError:
                raise ValueError(f"--free {key}: no such key in the scenario") from None
            if isinstance(v, dict) and v.get("dist") == "fixed":  # a plain number, as dumped
                v = v["value"]
            if isinstance(v, int) and not isinstance(v, bool):   # (only counts dump as ints)
                raise ValueError(f"--free {key}: is a count (whole numbers), and calibrate "
                                 f"fits continuous values: compare counts with sibsim "
                                 f"sensitivity --param {key}=LOW:HIGH or a sweep")
            if isinstance(v, bool) or not isinstance(v, float) or v <= 0:
                raise ValueError(f"--free {key}: only a positive plain number can be fitted "
                                 f"(found {v!r})")
            values.append(float(v))
        start.append(math.log(float(np.exp(np.mean(np.log(values))))))
    fitted_targets = [t for t in targets if t.fit]
    evaluations = 0

    def values_of(x) -> dict[str, float]:
        return {key: float(math.exp(xi)) for group, xi in zip(groups, x) for key in group}

    def build(x) -> Scenario:
        data = scenario.model_dump()
        for key, v in values_of(x).items():
            set_value(data, key, round(v, 12))
        return Scenario.model_validate(data)

    def objective(x) -> float:
        nonlocal evaluations
        evaluations += 1
        try:
            result = engine.simulate(build(x), paths=paths, seed=seed)
        except (ValidationError, engine.ParameterError, ValueError):
            return 1e6
        value = float(sum(c.residual ** 2 for c in compare(result, fitted_targets)))
        if log and evaluations % 20 == 0:
            log(f"  evaluation {evaluations}: objective {value:.4f}")
        return value

    x0 = np.array(start)
    simplex = np.vstack([x0] + [x0 + 0.2 * row for row in np.eye(len(x0))])
    res = optimize.minimize(objective, x0, method="Nelder-Mead",
                            options={"initial_simplex": simplex, "xatol": 2e-3, "fatol": 1e-3,
                                     "maxfev": max_evaluations})
    fitted = build(res.x)
    result = engine.simulate(fitted, paths=paths, seed=seed)
    return Fit(fitted, values_of(res.x), compare(result, targets), evaluations, float(res.fun))


# --------------------------------------------------------------------------- writing YAML
def rewrite_values(text: str, values: dict[str, float], note: str) -> str:
    """Replace scalar values in YAML ``text`` in place, keeping every comment.

    Each edited line's comment gets ``note`` appended, so a fitted value says
    what it was fitted to.
    """
    root = compose_yaml(text)
    lines = text.splitlines(keepends=True)
    for key, value in values.items():
        node = root
        for part in key.split("."):
            node = next((v for k, v in node.value if k.value == part), None) \
                if isinstance(node, yaml.MappingNode) else None
            if node is None:
                raise KeyError(f"{key} is not in the file (it may come from a default)")
        if not isinstance(node, yaml.ScalarNode) or node.start_mark.line != node.end_mark.line:
            raise ValueError(f"{key} is not a one-line scalar in the file")
        i = node.start_mark.line
        line = lines[i]
        a, b = node.start_mark.column, node.end_mark.column
        new = _round(value)
        rest = line[b:]
        body, nl = (rest[:-1], "\n") if rest.endswith("\n") else (rest, "")
        gap = body[:len(body) - len(body.lstrip(" "))] or " "
        gap = " " * max(len(gap) + len(node.value) - len(new), 1)  # keep comments aligned
        comment = re.sub(r";?\s*FITTED \(sibsim calibrate.*$", "", body.strip())  # refit: replace
        comment = f"{comment}; {note}" if comment.startswith("#") else f"# {note}"
        lines[i] = line[:a] + new + gap + comment + nl
    return "".join(lines)


def _round(x: float) -> str:
    """Four significant figures: a fitted value is not known better than that."""
    if x == 0:
        return "0"
    digits = max(4 - int(math.floor(math.log10(abs(x)))) - 1, 0)
    s = f"{x:.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s
