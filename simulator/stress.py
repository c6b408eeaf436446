"""Reverse stress tests (breakeven) and sensitivity (tornado, rank correlation).

Both evaluate one scenario many times with one or more parameters changed, always
on the same seed and path count: common random numbers make the metric a
deterministic, nearly smooth function of the parameter, so root finding works and
differences from the base are paired.

Breakeven finds where a summary metric crosses a target: bracket (expanding
geometrically from the current value unless ``low``/``high`` are given), then
Brent's method. Its interval is the range of parameter values at which the
target lies within two Monte Carlo standard errors of the metric (the SE at the
crossing): outside it, the run is confident the metric is on one side.

Sensitivity runs each listed parameter at a low and a high value (given, or the
5th and 95th percentiles of its distribution) for a tornado table, and ranks the
uncertain parameters (those given as distributions, drawn once per path) by the
Spearman rank correlation of their drawn values with a per-path result (by
default the investor multiple), with ``rho^2`` shares as a rough split of the
spread they explain.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import compare, engine, metrics
from .compose import NUMERIC_KINDS, Override, ResolvedScenario, format_key, key_info, parse_key
from .schema import Scenario, iter_params
from .yamlfiles import Problem, ScenarioError

MODES = ("set", "scale", "power")
Z_INTERVAL = 2.0
MAX_EXPANSIONS = 8


class NoCrossing(RuntimeError):
    """The metric does not cross the target within the searched range."""


@dataclass(frozen=True)
class Evaluation:
    x: float
    value: float
    se: float | None


def check_params(keys: Sequence[str], source: str = "--param") -> list[tuple]:
    """Key paths of numeric parameters, or ScenarioError naming each bad one."""
    out, problems = [], []
    for key in keys:
        try:
            path = parse_key(key)
            kind = key_info(path).kind
        except ValueError as exc:
            problems.append(Problem(f"{source} {key}", None, key, str(exc)))
            continue
        if path in out:   # (moved twice, it would be scaled or raised to a power twice)
            problems.append(Problem(f"{source} {key}", None, key, "is listed twice"))
            continue
        if kind not in NUMERIC_KINDS or path[0] in ("simulation", "name"):
            problems.append(Problem(f"{source} {key}", None, key,
                                    f"expected a numeric model parameter; {key} is a {kind} field"))
        else:
            out.append(path)
    if problems:
        raise ScenarioError(problems)
    return out


class Probe:
    """The metric as a function of x: the listed parameters set to x (or scaled by x,
    or raised to the power x), simulated on one seed and path count, cached."""

    def __init__(self, base: ResolvedScenario, params: Sequence[str], metric: str, *,
                 mode: str = "set", paths: int | None = None, seed: int | None = None,
                 on_eval: Callable[[Evaluation], None] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.base, self.metric, self.mode = base, metric, mode
        self.paths = paths or base.scenario.simulation.paths
        self.seed = base.scenario.simulation.seed if seed is None else seed
        key_paths = check_params(params)
        counts = [format_key(p) for p in key_paths if key_info(p).kind == "integer"]
        if counts:
            raise ScenarioError([Problem(f"--param {k}", None, k, (
                "is a count (whole numbers), and breakeven searches a continuous range: "
                "vary it with sibsim sensitivity --param KEY=LOW:HIGH or a sweep"))
                for k in counts])
        self.keys = [format_key(p) for p in key_paths]
        self.cache: dict[float, Evaluation] = {}
        self.on_eval = on_eval
        self._check_metric()

    def _check_metric(self) -> None:
        summary = metrics.summary(engine.simulate(self.base.scenario, paths=2, seed=self.seed))
        try:
            compare.metric_value(summary, self.metric)
        except KeyError as exc:
            raise ScenarioError([Problem("--metric", None, self.metric,
                                         str(exc).strip("'\""))]) from exc

    def scenario(self, x: float) -> ResolvedScenario:
        value = x if self.mode == "set" else {self.mode: x}
        return self.base.derive([Override(parse_key(k), value, (f"--param {k}", None))
                                 for k in self.keys])

    def start(self) -> float:
        """Where the search starts: the scenario's value of the first parameter (the mean
        of an uncertain one), or 1 for a scale."""
        if self.mode != "set":
            return 1.0
        value = scenario_value(self.base.scenario, self.keys[0])
        if value is None:
            raise ScenarioError([Problem(f"--param {self.keys[0]}", None, self.keys[0],
                                         "is null in the scenario: give --low and --high")])
        return value

    def __call__(self, x: float) -> Evaluation:
        x = float(x)
        if x not in self.cache:
            result = engine.simulate(self.scenario(x).scenario, paths=self.paths, seed=self.seed)
            summary = metrics.summary(result)
            ev = Evaluation(x, compare.metric_value(summary, self.metric),
                            compare.standard_error(self.metric, result.paths, summary))
            self.cache[x] = ev
            if self.on_eval:
                self.on_eval(ev)
        return self.cache[x]

    def valid(self, x: float) -> bool:
        try:
            self.scenario(x)
        except ScenarioError:
            return False
        return True


def scenario_value(scenario: Scenario, key: str) -> float | None:
    """The number a scenario sets at ``key`` (an uncertain parameter's mean), or None
    where it sets none."""
    value: Any = scenario
    for step in parse_key(key):
        value = value[step] if isinstance(step, int) else getattr(value, step, None)
        if value is None:
            return None
    if hasattr(value, "dist"):
        return float(value.mean())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass
class Breakeven:
    params: list[str]
    mode: str
    metric: str
    target: float
    x: float
    value: float
    se: float | None
    interval: tuple[float, float] | None
    interval_open: tuple[bool, bool] = (False, False)   # reaches the bracket end
    bracket: tuple[float, float] = (math.nan, math.nan)
    paths: int = 0
    seed: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"params": self.params, "mode": self.mode, "metric": self.metric,
                "target": self.target, "value": self.x, "metric_at_value": self.value,
                "metric_se": self.se, "interval": list(self.interval) if self.interval else None,
                "interval_reaches_bracket_end": list(self.interval_open),
                "interval_rule": f"parameter values where the target lies within "
                                 f"{Z_INTERVAL:g} Monte Carlo standard errors of the metric",
                "bracket": list(self.bracket), "paths": self.paths, "seed": self.seed,
                "evaluations": len(self.evaluations)}


def breakeven(probe: Probe, target: float, *, low: float | None = None,
              high: float | None = None, xtol: float | None = None) -> Breakeven:
    """Where ``probe``'s metric crosses ``target``, with its Monte Carlo interval."""
    from scipy.optimize import brentq

    if not math.isfinite(target):
        raise ValueError(f"the target must be a finite number, got {target}")
    brentq = _defined(brentq, probe.metric)
    a, b = _bracket(probe, target, low, high)
    fa, fb = probe(a).value - target, probe(b).value - target
    tol = xtol if xtol is not None else 1e-3 * abs(b - a)
    if fa == 0 or fb == 0:
        x = a if fa == 0 else b
    else:
        x = brentq(lambda t: probe(t).value - target, a, b, xtol=tol, rtol=1e-10)
    at = probe(x)
    interval, opened = None, (False, False)
    if at.se is not None and math.isfinite(at.se) and at.se > 0:
        ends, opened = [], []
        for side in (-1.0, 1.0):
            level = target + side * Z_INTERVAL * at.se
            end, is_open = _solve_level(probe, level, a, x, b, tol, brentq)
            ends.append(end)
            opened.append(is_open)
        interval = (min(ends), max(ends))
        opened = tuple(opened) if ends[0] <= ends[1] else tuple(reversed(opened))
    return Breakeven(probe.keys, probe.mode, probe.metric, target, float(x), at.value, at.se,
                     interval, opened, (a, b), probe.paths, probe.seed,
                     sorted(probe.cache.values(), key=lambda e: e.x))


def _defined(brentq, metric: str):
    """brentq, with a metric that is undefined (NaN: no path has a value, such as the IRR
    where every investor loses everything) somewhere in the bracket a NoCrossing."""
    def solve(f, lo, hi, **kwargs):
        try:
            return brentq(f, lo, hi, **kwargs)
        except ValueError as exc:
            if "NaN" not in str(exc):
                raise
            raise NoCrossing(f"{metric} is not defined at some values between {lo:g} and "
                             f"{hi:g} (no path has a value there): give --low and --high "
                             f"where it is") from None
    return solve


def _solve_level(probe: Probe, level: float, a: float, x: float, b: float, tol: float,
                 brentq) -> tuple[float, bool]:
    """Where the metric equals ``level``, searching [a, x] then [x, b]; the bracket end
    (flagged open) if it does not get there."""
    g = lambda t: probe(t).value - level  # noqa: E731
    gx = g(x)
    for lo, hi in ((a, x), (x, b)):
        if lo == hi:
            continue
        g_end = g(lo if hi == x else hi)
        if gx == 0:
            return x, False
        if g_end == 0:
            return (lo if hi == x else hi), False
        if np.sign(g_end) != np.sign(gx):
            return brentq(g, lo, hi, xtol=tol, rtol=1e-10), False
    # never reaches the level: the interval runs to the end where the metric is nearest it
    end = a if abs(g(a)) < abs(g(b)) else b
    return end, True


def _bracket(probe: Probe, target: float, low, high) -> tuple[float, float]:
    f = lambda t: probe(t).value - target  # noqa: E731
    if low is not None and high is not None:
        a, b = sorted((float(low), float(high)))
        for end in (a, b):
            if not probe.valid(end):
                probe.scenario(end)  # raises the ScenarioError naming the problem
        for end in (a, b):
            if math.isnan(f(end)):
                raise NoCrossing(_undefined(probe.metric, end))
        if np.sign(f(a)) * np.sign(f(b)) > 0:
            raise NoCrossing(f"{probe.metric} is {probe(a).value:.4g} at {a:g} and "
                             f"{probe(b).value:.4g} at {b:g}: it does not cross {target:g} "
                             f"between them")
        return a, b
    x0 = float(low if low is not None else high if high is not None else probe.start())
    if x0 == 0:
        raise NoCrossing("the parameter is 0: give --low and --high to search")
    f0 = f(x0)
    if math.isnan(f0):
        raise NoCrossing(_undefined(probe.metric, x0))
    if f0 == 0:
        return x0, x0
    seen = [x0]
    for k in range(1, MAX_EXPANSIONS + 1):
        for x in (x0 * 2.0 ** k, x0 * 2.0 ** -k):
            if high is not None and x > x0 or low is not None and x < x0:
                continue
            x = _valid_towards(probe, x0, x)
            if x is None or x in seen:
                continue
            seen.append(x)
            if math.isnan(f(x)):   # undefined there: neither side of the target
                continue
            if np.sign(f(x)) != np.sign(f0):
                nearest = min((s for s in seen if np.sign(f(s)) == np.sign(f0)),
                              key=lambda s: abs(s - x))
                return tuple(sorted((nearest, x)))
    values = ", ".join(f"{s:g}: {probe(s).value:.4g}" for s in sorted(seen))
    raise NoCrossing(f"{probe.metric} does not cross {target:g} for the values tried "
                     f"({values}); give --low and --high")


def _undefined(metric: str, x: float) -> str:
    return (f"{metric} is not defined at {x:g} (no path has a value there): give --low and "
            f"--high where it is")


def _valid_towards(probe: Probe, x0: float, x: float) -> float | None:
    """``x`` if the scenario is valid there, else the farthest valid point found by
    halving the step back towards ``x0`` (the parameter's allowed range)."""
    for _ in range(30):
        if probe.valid(x):
            return x
        x = 0.5 * (x + x0)
    return None


# --------------------------------------------------------------------------- sensitivity
@dataclass
class Sensitivity:
    metric: str
    base_value: float
    base_se: float | None
    tornado: pd.DataFrame
    ranking: pd.DataFrame
    path_metric: str | None
    paths: int
    seed: int


def _number(text: str) -> float | int:
    """A whole number stays an integer, so that a count (workforce.caseload_limit=3:7)
    can be varied; anything else is a float (ValueError if it is not a number)."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)


def parse_ranges(items: Sequence[str]) -> list[tuple[str, float | None, float | None]]:
    """``["key=LOW:HIGH", "key"]`` -> (key, low, high); a bare key takes the 5th and
    95th percentiles of its distribution."""
    out, problems = [], []
    for item in items:
        key, sep, rng = item.partition("=")
        key = key.strip()
        low = high = None
        if sep:
            lo, colon, hi = rng.partition(":")
            try:
                if not colon:
                    raise ValueError
                low, high = _number(lo), _number(hi)
            except ValueError:
                problems.append(Problem(f"--param {item}", None, key,
                                        "expected KEY=LOW:HIGH with two numbers, e.g. "
                                        "workforce.leaving_rate_per_year=0.2:0.6"))
                continue
        out.append((key, low, high))
    try:
        check_params([k for k, _, _ in out])
    except ScenarioError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return out


def sensitivity(base: ResolvedScenario, metric: str,
                params: Sequence[tuple[str, float | None, float | None]] = (), *,
                paths: int | None = None, seed: int | None = None,
                path_metric: str | None = None,
                echo: Callable[[str], None] = lambda _m: None) -> Sensitivity:
    """Tornado of ``metric`` over ``params`` at low/high, and the rank-correlation
    ranking of the scenario's uncertain parameters against a per-path result."""
    sc = base.scenario
    paths = paths or sc.simulation.paths
    seed = sc.simulation.seed if seed is None else seed
    dists = dict(iter_params(sc))
    if not params:
        params = [(k, None, None) for k in engine.uncertain_parameters(sc)]
    ranges, problems = [], []
    for key, low, high in params:
        if low is None:
            d = dists.get(key)
            if d is None or d.is_fixed:
                problems.append(Problem(f"--param {key}", None, key,
                                        "is a fixed value: give a range, KEY=LOW:HIGH"))
                continue
            low, high = (float(v) for v in d.ppf(np.array([0.05, 0.95])))
        ranges.append((key, low, high))
    scenarios = {}
    for key, low, high in ranges:  # every scenario validated before anything runs
        for side, x in (("low", low), ("high", high)):
            try:
                scenarios[key, side] = base.derive(
                    [Override(parse_key(key), x, (f"--param {key}={low:g}:{high:g}", None))])
            except ScenarioError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)

    result = engine.simulate(sc, paths=paths, seed=seed)
    summary = metrics.summary(result)
    try:
        base_value = compare.metric_value(summary, metric)
    except KeyError as exc:
        raise ScenarioError([Problem("--metric", None, metric,
                                     str(exc).strip("'\""))]) from exc
    base_se = compare.standard_error(metric, result.paths, summary)
    echo(f"base: {metric} = {base_value:.6g}")
    rows = []
    for key, low, high in ranges:
        row: dict[str, Any] = {"parameter": key, "low": low, "high": high}
        for side in ("low", "high"):
            r = engine.simulate(scenarios[key, side].scenario, paths=paths, seed=seed)
            value = compare.metric_value(metrics.summary(r), metric)
            row[f"metric_{side}"] = value
            row[f"diff_{side}"] = value - base_value
            row[f"diff_{side}_se"] = _nan(compare.paired_difference_se(metric, r.paths,
                                                                       result.paths))
            echo(f"{key} = {row[side]:.6g}: {metric} = {value:.6g}")
        row["swing"] = abs(row["metric_high"] - row["metric_low"])
        rows.append(row)
    tornado = pd.DataFrame(rows, columns=["parameter", "low", "high", "metric_low",
                                          "metric_high", "diff_low", "diff_low_se", "diff_high",
                                          "diff_high_se", "swing"])
    tornado = tornado.sort_values("swing", ascending=False, kind="stable").reset_index(drop=True)
    tornado.insert(0, "metric_base", base_value)
    column = path_metric or _default_path_metric(metric, result.paths)
    ranking = rank_correlations(result.paths, column)
    return Sensitivity(metric, base_value, base_se, tornado, ranking, column, paths, seed)


def _default_path_metric(metric: str, frame: pd.DataFrame) -> str | None:
    spec = compare.path_metric(metric)
    if spec is not None and spec.column is not None:
        return spec.column
    return "multiple" if "multiple" in frame and frame["multiple"].notna().any() else None


def rank_correlations(frame: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Spearman correlation of each drawn parameter (``param.<key>``) with ``column``.

    The 95% interval uses Fisher's z with the Spearman variance 1.06/(n-3) (Fieller,
    Hartley and Pearson 1957). ``share`` is rho^2 over the sum of rho^2: with
    independent draws, a rough split of the explained rank variance.
    """
    cols = ["parameter", "spearman_rho", "rho_low95", "rho_high95", "share", "rank"]
    params = [c for c in frame.columns if c.startswith("param.")]
    if column is None or column not in frame or not params:
        return pd.DataFrame(columns=cols)
    y = frame[column].to_numpy(dtype=np.float64)
    keep = np.isfinite(y)
    y_rank = pd.Series(y[keep]).rank().to_numpy()
    n = int(keep.sum())
    rows = []
    for c in params:
        x_rank = pd.Series(frame[c].to_numpy()[keep]).rank().to_numpy()
        varies = np.std(x_rank) > 0 and np.std(y_rank) > 0
        rho = float(np.corrcoef(x_rank, y_rank)[0, 1]) if varies else 0.0
        half = 1.96 * math.sqrt(1.06 / max(n - 3, 1))
        z = math.atanh(max(min(rho, 0.999999), -0.999999))
        rows.append({"parameter": c[len("param."):], "spearman_rho": rho,
                     "rho_low95": math.tanh(z - half), "rho_high95": math.tanh(z + half)})
    out = pd.DataFrame(rows)
    total = float((out.spearman_rho ** 2).sum())
    out["share"] = (out.spearman_rho ** 2) / total if total > 0 else 0.0
    out = out.reindex(out.spearman_rho.abs().sort_values(ascending=False, kind="stable").index)
    out["rank"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)[cols]


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
