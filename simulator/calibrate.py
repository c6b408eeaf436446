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
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import optimize

from . import engine
from .schema import Scenario
from .yamlfiles import (
    ScenarioError,
    compose_yaml,
    parse_yaml,
    problem_from_error,
    read_text,
)

AGGREGATES = ("mean", "median", "p05", "p95", "max", "min")
# The money a contract moves: investor and commissioner outcomes, which a calibration
# predicts and compares but never fits to (service costs are a figure about the service).
HELD_OUT_QUANTITIES = frozenset({
    "outcome_payments", "no_effect_payments", "deadweight_share", "payments_pv",
    "cap_reached", "care_costs_avoided", "net_saving", "capital_drawn", "undrawn_commitment",
    "idle_cash", "distributions_investors", "distributions_provider", "multiple",
    "moic_drawn", "irr", "irr_rule", "peak_capital_at_risk", "loss", "costs_unfunded",
    "capital_calls", "spv_balance"})
_STATISTIC = re.compile(r"^\s*(\w+)\(\s*([\w.]+)\s*(?:@\s*(\d{4}-\d{2}-\d{2}))?\s*\)\s*$")
_DERIVED = {"care_proportion", "counterfactual_care_proportion", "care_days_saved",
            "true_care_days_saved"}


class Target(BaseModel):
    """One published figure and how a simulation is compared with it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(description="Short label of the figure.")
    statistic: str = Field(description="aggregate(quantity) or aggregate(quantity@YYYY-MM-DD).")
    published: float = Field(allow_inf_nan=False,
                             description="The published value (unit of the statistic).")
    kind: Literal["within", "at_most", "at_least"] = Field(
        "within", description="within: |simulated - published| <= tolerance; "
                              "at_most / at_least: one-sided.")
    tolerance: float | None = Field(None, ge=0, allow_inf_nan=False,
                                    description="Absolute tolerance (unit of the statistic).")
    relative_tolerance: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Tolerance as a share of the published value.")
    source: str = Field(description="Where the figure was published: a key of "
                                    "docs/sources.md and the section.")
    note: str | None = Field(None, description="How the figure is read, where that needs saying.")
    role: Literal["fit", "hold-out"] = Field(
        description="fit: free parameters are fitted to it (figures about the service and the "
                    "young people only); hold-out: predicted with its interval and compared, "
                    "never fitted to (the investor and commissioner outcomes, and figures no "
                    "consistent set of inputs reproduces).")

    @model_validator(mode="after")
    def _one_tolerance(self):
        if (self.tolerance is None) == (self.relative_tolerance is None):
            raise ValueError("give exactly one of tolerance and relative_tolerance")
        _, name, _ = parse_statistic(self.statistic)
        if self.role == "fit" and name in HELD_OUT_QUANTITIES:
            raise ValueError(f"role: fit, but {name} is an investor or commissioner outcome: "
                             f"it is held out (role: hold-out), predicted and compared, and no "
                             f"parameter is fitted to it")
        return self

    @property
    def fit(self) -> bool:
        return self.role == "fit"

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
    text = read_text(path, "targets file")   # a regular file, as small as a scenario
    data, root = parse_yaml(str(path), text, kind="targets file")
    try:
        return TargetsFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([problem_from_error(str(path), root, e)
                             for e in exc.errors()]) from exc


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
        _, root = parse_yaml(str(path), read_text(path, "targets file"), kind="targets file")
        raise ScenarioError([problem_from_error(str(path), root, {
            "loc": ("targets", i, "statistic"), "type": "value_error", "msg": message})
            for i, message in bad])


# --------------------------------------------------------------------------- statistics
def quantity(result: engine.SimulationResult, name: str,
             as_at: dt.date | None = None) -> np.ndarray:
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
    """Rows of the calibration table: published, simulated with 95% interval, fitted or held
    out, verdict; labels in full."""
    width = max([len("target")] + [len(c.target.name) for c in comparisons]) + 2
    rows = [f"{'target':<{width}}{'published':>12}{'simulated':>12}  {'95% interval':<26}"
            f"{'tolerance':>12}  {'role':<9} within"]
    for c in comparisons:
        t, e = c.target, c.simulated
        bound = {"within": "±", "at_most": "≤ +", "at_least": "≥ -"}[t.kind]
        interval = f"[{_fmt(e.low)}, {_fmt(e.high)}]"
        rows.append(f"{t.name:<{width}}{_fmt(t.published):>12}{_fmt(e.value):>12}  "
                    f"{interval:<26}{bound + _fmt(t.absolute_tolerance):>12}  {t.role:<9} "
                    f"{'yes' if c.ok else 'NO'}")
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


def _start_values(scenario: Scenario, groups: list[list[str]]) -> list[float]:
    """Each group's log value in ``scenario`` (the geometric mean of its keys' values);
    ValueError naming a key that cannot be fitted."""
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
        start.append(float(np.mean(np.log(values))))
    return start


def calibrate(scenario: Scenario, targets: list[Target], free: list[str], *, paths: int,
              seed: int, max_evaluations: int = 400, step: float = 0.2, log=None) -> Fit:
    """Fit ``free`` parameters to ``targets`` on common random numbers.

    Each entry of ``free`` is a dotted key of a positive plain-number parameter,
    or several joined by ``+`` that share one fitted value (e.g. the hazard
    ratios during and after treatment, which one published figure cannot
    tell apart). Parameters are fitted on the log scale; held-out targets are left
    out of the objective.
    """
    engine.check_memory(scenario, paths)   # not one refused evaluation after another
    groups = [g.split("+") for g in free]
    start = _start_values(scenario, groups)
    fitted_targets = [t for t in targets if t.fit]
    evaluations = 0

    def build(x) -> Scenario:
        return _with_values(scenario, _values(groups, x))

    def objective(x) -> float:
        nonlocal evaluations
        evaluations += 1
        value = _objective(build(x), fitted_targets, paths, seed)
        if log and evaluations % 20 == 0:
            log(f"  evaluation {evaluations}: objective {value:.4f}")
        return value

    x0 = np.array(start)
    simplex = np.vstack([x0] + [x0 + step * row for row in np.eye(len(x0))])
    res = optimize.minimize(objective, x0, method="Nelder-Mead",
                            options={"initial_simplex": simplex, "xatol": 2e-3, "fatol": 1e-3,
                                     "maxfev": max_evaluations})
    left = max_evaluations - evaluations
    if left > 2 * len(x0) + 2:   # once more from where it stopped: Nelder-Mead can stall
        x1 = res.x
        simplex = np.vstack([x1] + [x1 + 0.25 * step * row for row in np.eye(len(x1))])
        again = optimize.minimize(objective, x1, method="Nelder-Mead",
                                  options={"initial_simplex": simplex, "xatol": 5e-4,
                                           "fatol": 1e-4, "maxfev": left})
        if again.fun <= res.fun:
            res = again
    fitted = build(res.x)
    result = engine.simulate(fitted, paths=paths, seed=seed)
    return Fit(fitted, _values(groups, res.x), compare(result, targets), evaluations,
               float(res.fun))


# --------------------------------------------------------------------------- identifiability
# A fitted parameter is identified when moving it by PROFILE_STEP (on the log scale) either
# way, the others held, raises the objective by at least IDENTIFIED_RISE: the fit targets
# move by a fifth of a tolerance or more (a sum of squared tolerances, so 0.04 = 0.2²).
PROFILE_STEPS = (-0.2, -0.1, -0.05, 0.05, 0.1, 0.2)
PROFILE_STEP = 0.1
IDENTIFIED_RISE = 0.04


@dataclass
class Profile:
    """The objective with one fitted group moved by each of PROFILE_STEPS (log scale),
    the other groups held at their fitted values."""

    group: str
    value: float
    at_fit: float
    objectives: dict[float, float]

    @property
    def rise(self) -> float:
        """The smaller rise of the objective at -PROFILE_STEP and +PROFILE_STEP."""
        return min(self.objectives[-PROFILE_STEP], self.objectives[PROFILE_STEP]) - self.at_fit

    @property
    def identified(self) -> bool:
        return self.rise >= IDENTIFIED_RISE


def profiles(scenario: Scenario, targets: list[Target], free: list[str], *, paths: int,
             seed: int) -> list[Profile]:
    """The profile of each free group of ``scenario`` (taken as fitted) on the fit targets,
    every evaluation on the same seed."""
    groups = [g.split("+") for g in free]
    start = _start_values(scenario, groups)
    fit_targets = [t for t in targets if t.fit]

    def objective(x) -> float:
        return _objective(_with_values(scenario, _values(groups, x)), fit_targets, paths, seed)

    at_fit = objective(start)
    out = []
    for i, group in enumerate(free):
        moved = {}
        for step in PROFILE_STEPS:
            x = list(start)
            x[i] += step
            moved[step] = objective(x)
        out.append(Profile(group, float(math.exp(start[i])), at_fit, moved))
    return out


@dataclass
class Calibration:
    """A fit under the protocol: the identified groups fitted, the others kept at their
    values in the scenario (stated assumptions), and every group's profile at the end."""

    fit: Fit
    profiles: list[Profile]
    kept: list[str]   # groups not identified at the first fit, kept as in the scenario

    @property
    def unidentified(self) -> list[str]:
        return [p.group for p in self.profiles if p.group in self.kept or not p.identified]


def calibrate_identified(scenario: Scenario, targets: list[Target], free: list[str], *,
                         paths: int, seed: int, max_evaluations: int = 400,
                         log=None) -> Calibration:
    """Fit ``free`` to the fit targets, profile each group at the fit, and fit again the
    identified groups alone, the others back at their values in ``scenario``: a parameter
    the published figures do not pin keeps its documented assumption."""
    fit = calibrate(scenario, targets, free, paths=paths, seed=seed,
                    max_evaluations=max_evaluations, log=log)
    found = profiles(fit.scenario, targets, free, paths=paths, seed=seed)
    fitted = [p.group for p in found if p.identified]
    kept = [p.group for p in found if not p.identified]
    if kept:
        if log:
            log(f"  not identified, kept as in the scenario: {', '.join(kept)}")
        keys = {key for group in fitted for key in group.split("+")}
        start = _with_values(scenario, {k: v for k, v in fit.values.items() if k in keys})
        if fitted:
            fit = calibrate(start, targets, fitted, paths=paths, seed=seed,
                            max_evaluations=max_evaluations, step=0.05, log=log)
        else:
            result = engine.simulate(scenario, paths=paths, seed=seed)
            fit = Fit(scenario, {}, compare(result, targets), fit.evaluations, math.nan)
        found = profiles(fit.scenario, targets, free, paths=paths, seed=seed)
    return Calibration(fit, found, kept)


def profile_table(found: list[Profile], kept: list[str] = ()) -> list[str]:
    """Rows: each group's value, the objective across the profile, its verdict (``kept``:
    groups not identified at the fit, so kept at their stated values)."""
    width = max(len(p.group) for p in found) + 2
    steps = "".join(f"{f'{math.exp(s) - 1:+.0%}':>9}" for s in PROFILE_STEPS)
    rows = [f"{'parameter':<{width}}{'value':>12}{'at fit':>9}{steps}  identified"]
    for p in found:
        cells = "".join(f"{p.objectives[s]:>9.3g}" for s in PROFILE_STEPS)
        verdict = ("NO: kept as stated" if p.group in kept
                   else "yes" if p.identified else "NO")
        rows.append(f"{p.group:<{width}}{round_fitted(p.value):>12}{p.at_fit:>9.3g}{cells}  "
                    f"{verdict}")
    return rows


def _objective(scenario: Scenario, fit_targets: list[Target], paths: int, seed: int) -> float:
    """Sum of squared residuals (in tolerances) of the fit targets; 1e6 where the values
    make no valid scenario."""
    try:
        result = engine.simulate(scenario, paths=paths, seed=seed)
    except (ValidationError, engine.ParameterError, ValueError):
        return 1e6
    return float(sum(c.residual ** 2 for c in compare(result, fit_targets)))


def _values(groups: list[list[str]], x) -> dict[str, float]:
    """Each key's value from its group's log value in ``x``."""
    return {key: float(math.exp(xi)) for group, xi in zip(groups, x) for key in group}


def _with_values(scenario: Scenario, values: dict[str, float]) -> Scenario:
    data = scenario.model_dump()
    for key, v in values.items():
        set_value(data, key, round(v, 12))
    return Scenario.model_validate(data)


# --------------------------------------------------------------------------- writing YAML
def rewrite_values(text: str, values: dict[str, float], note: str) -> str:
    """Replace scalar values in YAML ``text`` in place, keeping every comment.

    Each edited line's comment gets ``note`` appended, so a fitted value says
    what it was fitted to.
    """
    root = compose_yaml(text)
    lines = text.splitlines(keepends=True)
    extends = isinstance(root, yaml.MappingNode) and any(k.value == "extends"
                                                        for k, _ in root.value)
    added = []
    for key, value in values.items():
        node = _scalar_at(root, key.split("."))
        if node is None:
            if not extends:
                raise KeyError(f"{key} is not in the file (it may come from a default)")
            added.append(f"{key}: {round_fitted(value)}   # {note}\n")   # overrides the base file
            continue
        if not isinstance(node, yaml.ScalarNode) or node.start_mark.line != node.end_mark.line:
            raise ValueError(f"{key} is not a one-line scalar in the file")
        i = node.start_mark.line
        line = lines[i]
        a, b = node.start_mark.column, node.end_mark.column
        new = round_fitted(value)
        rest = line[b:]
        body, nl = (rest[:-1], "\n") if rest.endswith("\n") else (rest, "")
        gap = body[:len(body) - len(body.lstrip(" "))] or " "
        gap = " " * max(len(gap) + len(node.value) - len(new), 1)  # keep comments aligned
        comment = re.sub(r";?\s*FITTED \(sibsim calibrate.*$", "", body.strip())  # refit: replace
        comment = f"{comment}; {note}" if comment.startswith("#") else f"# {note}"
        lines[i] = line[:a] + new + gap + comment + nl
    if added and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines + added)


def relocate_extends(text: str, source: Path, target: Path) -> str:
    """``text`` of the scenario file ``source`` to be written at ``target``: its ``extends``
    path (relative to the file) rewritten so that it still names the same base file."""
    root = compose_yaml(text)
    node = _scalar_at(root, ["extends"]) if isinstance(root, yaml.MappingNode) else None
    if node is None or Path(node.value).is_absolute():
        return text
    base = (source.resolve().parent / node.value).resolve()
    new = os.path.relpath(base, target.resolve().parent)
    if new == node.value:
        return text
    lines = text.splitlines(keepends=True)
    line = lines[node.start_mark.line]
    lines[node.start_mark.line] = (line[:node.start_mark.column] + new
                                   + line[node.end_mark.column:])
    return "".join(lines)


def _scalar_at(node, parts: list[str]):
    """The node at a key path, where the file may spell a prefix of it as one dotted key
    (``treatment.hazard_ratio_during: 0.9`` in a file that extends another); None if absent."""
    if not parts:
        return node
    if not isinstance(node, yaml.MappingNode):
        return None
    for i in range(len(parts), 0, -1):
        head = ".".join(parts[:i])
        child = next((v for k, v in node.value if k.value == head), None)
        if child is not None:
            found = _scalar_at(child, parts[i:])
            if found is not None:
                return found
    return None


def round_fitted(x: float) -> str:
    """Four significant figures: a fitted value is not known better than that."""
    if x == 0:
        return "0"
    digits = max(4 - int(math.floor(math.log10(abs(x)))) - 1, 0)
    s = f"{x:.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s
