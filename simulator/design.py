"""Contract design: the terms that meet both sides' requirements, on common random numbers.

A commissioner and an investor ask one question from two sides: which price, cap, lag
and finance terms give investors enough return and protection while the commissioner
pays within a budget? ``sibsim design`` tries a grid of terms. The service, the young
people and their care do not depend on those terms, so the paths are simulated once,
keeping what each path's contract read, and only the contract and the SPV waterfall run
again for each candidate (kernels/recontract.py): the same figures as a full simulation
with those terms, path by path. A candidate that changes the service itself (a baseline
or a tracking window) gets a simulation of its own, on the same seed and paths.

Requirements read ``METRIC >= BOUND`` or ``METRIC <= BOUND``; metrics are the dotted
figures of summary.json that have a per-path definition (``investor.irr.p50``,
``investor.prob_loss``, ``commissioner.net_saving.mean``...) and
``commissioner.year_payments.STAT``: that statistic of each financial year's payments,
in the heaviest year.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import compare, engine, kernels, metrics
from . import layout as L
from .compose import ResolvedScenario, format_key, key_info, parse_key
from .yamlfiles import Problem, ScenarioError

DEFAULT_POINTS = 11
MAX_CANDIDATES = 2_500
YEAR_PAYMENTS = "commissioner.year_payments."
# shown for every candidate, beside the requirements and the objective
TABLE_METRICS = ("investor.multiple.p50", "investor.irr.p50", "investor.prob_loss",
                 "commissioner.outcome_payments.p50", "commissioner.outcome_payments.p95",
                 "commissioner.year_payments.p95", "commissioner.net_saving.p50",
                 "commissioner.prob_cap_reached")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=)\s*(\S+)\s*$")


# --------------------------------------------------------------------------- the question
@dataclass(frozen=True)
class Axis:
    """A term varied over [low, high] at ``points`` values (whole numbers for a count)."""

    key: str
    low: float
    high: float
    points: int = DEFAULT_POINTS
    whole: bool = False

    def values(self) -> list[float]:
        if self.whole:
            return list(range(int(self.low), int(self.high) + 1))
        return [float(x) for x in np.linspace(self.low, self.high, self.points)]


@dataclass(frozen=True)
class Requirement:
    metric: str
    op: str          # ">=" or "<="
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def shortfall(self, value: float) -> float:
        """How far ``value`` misses the bound (0 when met; inf when undefined)."""
        if not math.isfinite(value):
            return math.inf
        miss = self.bound - value if self.op == ">=" else value - self.bound
        return max(miss, 0.0)


@dataclass(frozen=True)
class Question:
    axes: tuple[Axis, ...]
    requirements: tuple[Requirement, ...]
    objective: str
    maximise: bool = True

    @property
    def metrics(self) -> list[str]:
        wanted = [self.objective, *(r.metric for r in self.requirements), *TABLE_METRICS]
        return list(dict.fromkeys(wanted))


def parse_axis(text: str, where: str = "--vary") -> Axis:
    """``key=LOW:HIGH`` or ``key=LOW:HIGH:POINTS`` (ScenarioError naming it if not)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    parts = rest.split(":")
    try:
        if not sep or len(parts) not in (2, 3):
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
        points = int(parts[2]) if len(parts) == 3 else DEFAULT_POINTS
        if not (math.isfinite(low) and math.isfinite(high) and low < high and points >= 2):
            raise ValueError
    except ValueError:
        raise ScenarioError([Problem(f"{where} {text}", None, key or text,
                                     "expected KEY=LOW:HIGH or KEY=LOW:HIGH:POINTS with "
                                     "LOW < HIGH, e.g. contract.cap=4e6:10e6")]) from None
    from .stress import check_params
    (path,) = check_params([key], where)
    return Axis(key, low, high, points, key_info(path).kind == "integer")


def parse_requirement(text: str, where: str = "--require") -> Requirement:
    """``METRIC>=BOUND`` or ``METRIC<=BOUND`` (ScenarioError naming it if not)."""
    found = _REQUIREMENT.match(text)
    bound = _number(found.group(3)) if found else None
    if found is None or bound is None:
        raise ScenarioError([Problem(f"{where} {text}", None, text.strip(),
                                     "expected METRIC>=NUMBER or METRIC<=NUMBER, e.g. "
                                     "'investor.irr.p50>=0.06'")])
    check_metric(found.group(1), f"{where} {text}")
    return Requirement(found.group(1), found.group(2), bound)


def check_metric(metric: str, where: str) -> None:
    stat = metric[len(YEAR_PAYMENTS):] if metric.startswith(YEAR_PAYMENTS) else None
    known = (stat is not None and re.fullmatch(r"mean|p\d\d", stat)) or \
        compare.path_metric(metric) is not None
    if not known:
        raise ScenarioError([Problem(where, None, metric, (
            "is not a figure with a per-path definition; e.g. investor.irr.p50, "
            "investor.prob_loss, investor.multiple.p05, commissioner.net_saving.mean, "
            "commissioner.year_payments.p95"))])


def _number(text: str) -> float | None:
    try:
        x = float(text.replace("_", ""))
    except ValueError:
        return None
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- candidates
class ContractSearch:
    """Candidates' figures on ``paths`` paths of ``seed``, the contract run alone over
    paths simulated once for each distinct service (usually one)."""

    def __init__(self, base: ResolvedScenario, paths: int, seed: int):
        if base.scenario.contract is None:
            raise ScenarioError([Problem(str(base.path), None, "contract",
                                         "a design needs a contract section")])
        self.base, self.paths, self.seed = base, paths, seed
        self._services: dict[str, engine.ArrayRun] = {}

    def scenario(self, terms: Mapping[str, float]) -> ResolvedScenario:
        return self.base.derive({k: _term(self.base, k, v) for k, v in terms.items()})

    def outputs(self, scenario: ResolvedScenario) -> tuple[pd.DataFrame, np.ndarray, list]:
        """Per-path figures (a frame of the output columns), payments by calendar quarter
        (paths, quarters) and the quarters, under ``scenario``'s terms."""
        sc = scenario.scenario
        lay = engine.layout(sc)
        arrays = engine.scenario_arrays(lay)
        params = engine.draw_parameters(sc, self.seed, 0, self.paths)
        key = _service_key(arrays, params, lay)
        if key not in self._services:
            self._services[key] = engine.simulate_arrays(sc, self.paths, self.seed,
                                                         keep_contract_inputs=True)
        from .kernels.recontract import recontract
        done = recontract(params, arrays, self._services[key].outputs, lay.n_tracking_quarters,
                          kernels.threads())
        return (pd.DataFrame(done.out, columns=L.OUTPUT_COLUMNS), done.payments,
                lay.calendar_quarters)

    @property
    def services_simulated(self) -> int:
        return len(self._services)

    def figures(self, terms: Mapping[str, float], wanted: Sequence[str]) -> dict[str, float]:
        frame, payments, quarters = self.outputs(self.scenario(terms))
        return {m: figure(m, frame, payments, quarters) for m in wanted}


def _term(base: ResolvedScenario, key: str, value: float) -> Any:
    kind = key_info(parse_key(key)).kind
    return int(round(value)) if kind == "integer" else float(value)


def _service_key(arrays: L.ScenarioArrays, params: np.ndarray, lay) -> str:
    """A digest of everything the service and care read: scenarios with the same digest
    differ in contract-only terms (layout.CONTRACT_ONLY_*) and share their paths."""
    h = hashlib.sha256()
    config = arrays.config.copy()
    config[list(L.CONTRACT_ONLY_CONFIG)] = 0.0
    service_params = params.copy()
    service_params[:, list(L.CONTRACT_ONLY_PARAMS)] = 0.0
    for a in (config, arrays.team_start, arrays.team_size, arrays.team_weight,
              arrays.reason_cdf, arrays.calendar_edges, arrays.baseline, arrays.event_months,
              service_params, np.array([lay.n_tracking_quarters])):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(b"|")
    return h.hexdigest()


def figure(metric: str, frame: pd.DataFrame, payments: np.ndarray, quarters: list) -> float:
    """A metric over paths: a summary figure's per-path definition, or a statistic of each
    financial year's payments in the heaviest year (commissioner.year_payments.STAT)."""
    if metric.startswith(YEAR_PAYMENTS):
        stat = metric[len(YEAR_PAYMENTS):]
        years = np.array([metrics.financial_year(q) for q in quarters])
        heaviest = -math.inf
        for year in np.unique(years):
            paid = payments[:, years == year].sum(axis=1)
            if np.any(paid != 0):
                heaviest = max(heaviest, compare.statistic(paid, stat))
        return heaviest if math.isfinite(heaviest) else 0.0
    spec = compare.path_metric(metric)
    return compare.statistic(spec.values(frame), spec.stat)


# --------------------------------------------------------------------------- the search
@dataclass
class Design:
    """The grid of candidates with their figures, and the answer."""

    question: Question
    grid: pd.DataFrame                      # a row a candidate: terms, metrics, feasible
    best: dict[str, Any] | None             # the recommended candidate's row, if any
    nearest: dict[str, Any] | None = None   # without one: the candidate closest to feasible
    binding: tuple[Requirement, float] | None = None   # ... and what it misses by most
    services: int = 1
    paths: int = 0
    seed: int = 0
    notes: list[str] = field(default_factory=list)


def candidates(axes: Sequence[Axis]) -> list[dict[str, float]]:
    grid = [dict(zip([a.key for a in axes], values, strict=True))
            for values in itertools.product(*(a.values() for a in axes))]
    if len(grid) > MAX_CANDIDATES:
        raise ScenarioError([Problem("--vary", None, ", ".join(a.key for a in axes),
                                     f"{len(grid):,} candidates; at most {MAX_CANDIDATES:,}: "
                                     f"fewer points (KEY=LOW:HIGH:POINTS)")])
    return grid


def search(search: ContractSearch, question: Question, progress=None) -> Design:
    """Every candidate's figures; the recommended terms (the best objective among those
    meeting every requirement), or the nearest miss and its binding requirement."""
    rows = []
    for i, terms in enumerate(candidates(question.axes)):
        rows.append({**terms, **search.figures(terms, question.metrics)})
        if progress:
            progress(i + 1)
    grid = pd.DataFrame(rows)
    # each requirement's shortfall at each candidate, in proportion to its bound
    misses = np.array([[r.shortfall(float(v)) / _scale(r) for v in grid[r.metric]]
                       for r in question.requirements]).reshape(len(question.requirements),
                                                                len(grid)).T
    grid["feasible"] = (misses == 0).all(axis=1)
    design = Design(question, grid, None, services=search.services_simulated,
                    paths=search.paths, seed=search.seed)
    feasible = grid[grid["feasible"]]
    objective = feasible[question.objective].replace([np.inf, -np.inf], np.nan).dropna()
    if len(objective):
        at = objective.idxmax() if question.maximise else objective.idxmin()
        design.best = grid.loc[at].to_dict()
        return design
    total = np.where(np.isfinite(misses), misses, 1e300).sum(axis=1)
    at = int(np.argmin(total))
    design.nearest = grid.iloc[at].to_dict()
    worst = int(np.argmax(np.where(np.isfinite(misses[at]), misses[at], 1e300)))
    requirement = question.requirements[worst]
    design.binding = (requirement, requirement.shortfall(design.nearest[requirement.metric]))
    return design


def _scale(r: Requirement) -> float:
    """A requirement's shortfalls in proportion to its bound, so that a return and a
    budget can be added up when no candidate meets both."""
    return max(abs(r.bound), 1e-9)


def frontier(design: Design) -> pd.DataFrame:
    """For each value of the first varied term: the best candidate meeting every
    requirement over the other terms (the frontier of what the first term buys)."""
    q = design.question
    first = q.axes[0].key
    feasible = design.grid[design.grid["feasible"]]
    if feasible.empty:
        return feasible.copy()
    pick = (feasible.groupby(first)[q.objective].idxmax() if q.maximise
            else feasible.groupby(first)[q.objective].idxmin())
    return feasible.loc[pick.dropna().astype(int)].reset_index(drop=True)


def verify(search: ContractSearch, terms: Mapping[str, float]):
    """A full simulation with ``terms`` on the search's paths and seed (its checks and
    invariants run as in any simulation): the result, to set beside the search's."""
    return engine.simulate(search.scenario(terms).scenario, paths=search.paths,
                           seed=search.seed)


def term_label(key: str) -> str:
    return format_key(parse_key(key))


# --------------------------------------------------------------------------- a spec file
SPEC_KEYS = ("vary", "require", "maximise", "minimise")


def read_spec(path: str) -> tuple[list[Axis], list[Requirement], str | None, bool]:
    """A design's question from a YAML file: ``vary`` (key: [low, high] or [low, high,
    points]), ``require`` (a list of "METRIC >= BOUND"), and ``maximise`` or
    ``minimise`` (a metric); ScenarioError naming the file, line and key."""
    from .yamlfiles import parse_yaml, read_text
    data, root = parse_yaml(path, read_text(path, "design file"), kind="design file",
                            require=_spec_keys_problem)
    lines = {k.value: k.start_mark.line + 1 for k, _ in root.value}
    problems: list[Problem] = []
    axes, requirements = [], []
    for key, bounds in (data.get("vary") or {}).items():
        text = f"{key}={':'.join(str(b) for b in bounds)}" if isinstance(bounds, list) else ""
        try:
            axes.append(parse_axis(text or f"{key}=?", where=f"{path}: vary"))
        except ScenarioError as exc:
            problems += [Problem(path, lines.get("vary"), f"vary.{key}", p.message)
                         for p in exc.problems]
    for i, text in enumerate(data.get("require") or []):
        try:
            requirements.append(parse_requirement(str(text), where=f"{path}: require"))
        except ScenarioError as exc:
            problems += [Problem(path, lines.get("require"), f"require[{i}]", p.message)
                         for p in exc.problems]
    objective = data.get("maximise") or data.get("minimise")
    if objective is not None:
        try:
            check_metric(str(objective), path)
        except ScenarioError as exc:
            which = "maximise" if "maximise" in data else "minimise"
            problems += [Problem(path, lines.get(which), which, p.message) for p in exc.problems]
    if problems:
        raise ScenarioError(problems)
    return axes, requirements, objective, "minimise" not in data


def _spec_keys_problem(keys: list) -> str | None:
    unknown = [k for k in keys if k not in SPEC_KEYS]
    if unknown:
        return f"unknown key {unknown[0]!r} in a design file: it may have {', '.join(SPEC_KEYS)}"
    if "maximise" in keys and "minimise" in keys:
        return "a design file has maximise or minimise, not both"
    return None


# --------------------------------------------------------------------------- outputs
DESIGN_FILES = ("design.json", "design_grid.csv", "design_frontier.csv", "design.xlsx",
                "design.html")


def answer(design: Design) -> dict[str, Any]:
    """What design.json holds: the question, the recommended terms (or the nearest
    candidate and the requirement that binds there), and how the figures were made."""
    q = design.question
    out: dict[str, Any] = {
        "vary": {a.key: [a.low, a.high, len(a.values())] for a in q.axes},
        "require": [str(r) for r in q.requirements],
        ("maximise" if q.maximise else "minimise"): q.objective,
        "paths": design.paths, "seed": design.seed, "candidates": len(design.grid),
        "services_simulated": design.services,
    }
    if design.best is not None:
        out["recommended"] = _clean_row(design.best)
    else:
        requirement, missed = design.binding
        out["nearest"] = _clean_row(design.nearest)
        out["binding"] = {"requirement": str(requirement), "missed_by": missed}
    return out


def _clean_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (bool(v) if isinstance(v, bool | np.bool_) else
                float(v) if isinstance(v, int | float | np.number) and math.isfinite(v)
                else None if isinstance(v, float) else v) for k, v in row.items()}


def write_outputs(design: Design, folder, title: str) -> None:
    """design.json, the grid and the frontier as CSV and in design.xlsx, and design.html
    (``folder``: a new folder, the caller's temporary one)."""
    from . import io
    from .workbook import write_sheets
    io.write_json(folder / "design.json", answer(design))
    design.grid.to_csv(folder / "design_grid.csv", index=False)
    edge = frontier(design)
    edge.to_csv(folder / "design_frontier.csv", index=False)
    chosen = design.best if design.best is not None else design.nearest
    write_sheets(folder / "design.xlsx", {
        "Recommended" if design.best is not None else "Nearest": pd.DataFrame(
            [{"term or figure": k, "value": v} for k, v in chosen.items()]),
        "Frontier": edge, "Grid": design.grid})
    from .design_report import design_page
    (folder / "design.html").write_text(design_page(design, title), encoding="utf-8")
