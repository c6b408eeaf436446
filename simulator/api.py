"""The Python API: load a scenario, simulate it, read its results as pandas frames.

>>> import simulator
>>> r = simulator.simulate(simulator.load_scenario("scenarios/essex_mst.yaml"), paths=2000)
>>> r.paths            # one row a path                                  # doctest: +SKIP
>>> r.quarters         # tidy: quarter, line, statistic, value          # doctest: +SKIP
>>> r.summary["investor"]["multiple"]["mean"]                           # doctest: +SKIP
>>> r.write("results") # the folder `sibsim run` writes                 # doctest: +SKIP
>>> b = simulator.run_batch(["scenarios/stress"], paths=2000)           # doctest: +SKIP

Paths are numbered from ``path_start``; a path's random numbers depend on its number
only, so ``simulate(s, paths=1000)`` and ``simulate(s, paths=1000, path_start=1000)``
are the two halves of ``simulate(s, paths=2000)``, path for path.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import engine, metrics
from .compose import ResolvedScenario, load_composed
from .yamlfiles import ScenarioError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Batch", "ContractDesign", "Result", "ScenarioError", "design_contract",
           "load_scenario", "run_batch", "simulate"]


def load_scenario(path: str | Path,
                  overrides: Mapping[str, Any] | None = None) -> ResolvedScenario:
    """Read a scenario file as ``sibsim run`` reads it.

    Parameters
    ----------
    path : str or Path
        A scenario YAML file (it may ``extends`` another).
    overrides : mapping, optional
        Dotted keys and the values to set, checked like the file (as ``--set``), e.g.
        ``{"contract.price_per_care_day_saved": 60}``.

    Returns
    -------
    ResolvedScenario
        The validated scenario (``.scenario``), with its file, hash and sources.

    Raises
    ------
    simulator.loader.ScenarioError
        Naming the file, line and key of every problem found.
    """
    loaded = load_composed(path)
    return loaded.derive(overrides) if overrides else loaded


def simulate(scenario: ResolvedScenario, paths: int | None = None, seed: int | None = None,
             path_start: int = 0, progress: bool | None = False) -> Result:
    """Simulate paths ``path_start`` .. ``path_start + paths - 1`` of a scenario.

    Parameters
    ----------
    scenario : ResolvedScenario
        From :func:`load_scenario`.
    paths, seed : int, optional
        Default: the scenario's ``simulation`` section.
    path_start : int
        The number of the first path: the same path number gives the same path
        whatever the split, so runs of consecutive ranges can be concatenated.
    progress : bool or None
        A progress bar (None: when standard error is a terminal).

    Returns
    -------
    Result
    """
    if not engine.kernels_cached():   # compiled on two cores, as `sibsim run` does
        from .precompile import load_kernels
        load_kernels(scenario.scenario, say=progress is not False)
    started = dt.datetime.now(dt.UTC)
    result = engine.simulate(scenario.scenario, paths=paths, seed=seed, path_start=path_start,
                             progress=progress)
    from .run import Timing
    timing = Timing(started, dt.datetime.now(dt.UTC), scenario.scenario.simulation.chunk_paths)
    return Result(scenario, result, timing)


class Result:
    """A simulation's results: frames of paths and quarters, and the summary.

    Attributes
    ----------
    scenario : ResolvedScenario
    seed : int
    simulation : engine.SimulationResult
        The per-path arrays the frames are made from.
    """

    def __init__(self, scenario: ResolvedScenario, simulation: engine.SimulationResult,
                 timing=None):
        self.scenario = scenario
        self.simulation = simulation
        self.seed = simulation.seed
        self._timing = timing

    def __repr__(self) -> str:
        return (f"<Result {self.scenario.scenario.name}: {len(self.paths):,} paths from "
                f"{self.path_start}, seed {self.seed}>")

    @property
    def path_start(self) -> int:
        """The number of the first path."""
        return int(self.paths["path"].iloc[0]) if len(self.paths) else 0

    @property
    def paths(self) -> pd.DataFrame:
        """One row a path: its figures, rejections by reason and drawn parameters."""
        return self.simulation.paths

    @functools.cached_property
    def summary(self) -> dict[str, Any]:
        """The figures of summary.json: means with standard errors, percentiles."""
        return metrics.summary(self.simulation)

    @functools.cached_property
    def summary_frame(self) -> pd.DataFrame:
        """The summary flat: one row a figure (``investor.multiple.mean``, value)."""
        import pandas as pd
        rows = list(_flat(self.summary))
        return pd.DataFrame(rows, columns=["figure", "value"])

    @functools.cached_property
    def quarters(self) -> pd.DataFrame:
        """Tidy: a row per calendar quarter, line and statistic (mean, p05, p50, p95)."""
        wide = metrics.quarters_table(self.simulation)
        ids = ["quarter_start", "financial_year"]
        tidy = wide.melt(id_vars=ids, var_name="column", value_name="value")
        parts = tidy["column"].str.rsplit("_", n=1, expand=True)
        tidy.insert(2, "line", parts[0])
        tidy.insert(3, "statistic", parts[1])
        return tidy.drop(columns="column")

    @functools.cached_property
    def headline(self) -> pd.DataFrame:
        """The headline figures ``sibsim run`` prints: figure, value (as text) and what it
        measures."""
        import pandas as pd

        from .narrative import HEADLINE_MEANING
        return pd.DataFrame([(f, v, HEADLINE_MEANING.get(f, ""))
                             for f, v in metrics.headline_rows(self.summary)],
                            columns=["figure", "value", "meaning"])

    @functools.cached_property
    def inputs(self) -> pd.DataFrame:
        """Every input: value or distribution, description with unit, and its source
        (FITTED, ASSUMPTION, CITED, SET or DEFAULT) with the scenario file's note."""
        from .workbook import inputs_frame
        return inputs_frame(self.scenario)

    def write(self, out: str | Path = "results", *, plotlyjs: str = "inline") -> Path:
        """Write the folder ``sibsim run --out OUT`` writes, ``OUT/<scenario name>``
        (paths.parquet, quarters.parquet, summary.json, report.html, results.xlsx,
        manifest.json), atomically; returns that folder. ``plotlyjs``: how report.html
        loads plotly.js, as ``sibsim run --plotlyjs`` (inline, file or cdn)."""
        from .run import RunFiles, Timing, write_run
        now = dt.datetime.now(dt.UTC)
        timing = self._timing or Timing(now, now, self.scenario.scenario.simulation.chunk_paths)
        return write_run(self.scenario, self.simulation, out, timing, summary=self.summary,
                         manifest_extra=self.scenario.manifest_extra(),
                         files=RunFiles(plotlyjs=plotlyjs)).folder

    def to_excel(self, path: str | Path) -> Path:
        """Write the results as a workbook (``sibsim run``'s results.xlsx: headline,
        inputs, quarterly cash flows, payments by year, investors' distribution, sample
        paths); returns its path."""
        from . import workbook
        path = Path(path)
        workbook.write_workbook(path, self.summary, metrics.quarters_table(self.simulation),
                                self.paths, self.scenario)
        return path

    def against_targets(self, targets: str | Path) -> pd.DataFrame:
        """This run against a targets file's published figures (as ``sibsim calibrate``
        shows them): a row a target, with the simulated value, its 95% Monte Carlo
        interval, the tolerance, the role (fit or held out) and whether it is met."""
        import pandas as pd

        from . import calibrate
        rows = []
        for c in calibrate.compare(self.simulation, calibrate.load_targets(targets).targets):
            t, e = c.target, c.simulated
            rows.append({"target": t.name, "role": t.role, "published": t.published,
                         "bound": t.kind, "tolerance": t.absolute_tolerance,
                         "simulated": e.value, "low": e.low, "high": e.high, "met": c.ok})
        return pd.DataFrame(rows)

    def difference(self, base: Result, figure: str) -> pd.Series:
        """This run's ``figure`` (e.g. ``investor.multiple.mean``) less ``base``'s, with its
        standard error: paired path by path when both ran the same seed and paths (common
        random numbers: the paths differ only by the scenarios' difference), else as
        independent runs."""
        import pandas as pd

        from . import compare
        spec = compare.path_metric(figure)
        if spec is None:
            raise KeyError(f"{figure!r} has no per-path definition; one of "
                           f"{', '.join(compare.HEADLINE_METRICS)}")
        mine, theirs = (compare.statistic(spec.values(r.paths), spec.stat) for r in (self, base))
        paired = (self.seed == base.seed and len(self.paths) == len(base.paths)
                  and self.path_start == base.path_start)
        se = (compare.paired_difference_se(figure, self.paths, base.paths) if paired else
              math.hypot(compare.standard_error(figure, self.paths),
                         compare.standard_error(figure, base.paths)))
        return pd.Series({"difference": mine - theirs, "se": se, "paired": paired}, name=figure)

    def by_quarter(self, line: str) -> pd.DataFrame:
        """One calendar-quarter line path by path: a row a path, a column a quarter.

        ``line`` is a column of the calendar-quarter outputs (layout.CALENDAR_QUARTER_COLUMNS,
        e.g. ``outcome_payments`` or ``capital_calls``)."""
        import pandas as pd

        from .layout import CALENDAR_QUARTER_COLUMNS
        if line not in CALENDAR_QUARTER_COLUMNS:
            raise KeyError(f"{line!r} is not a quarterly line; one of "
                           f"{', '.join(CALENDAR_QUARTER_COLUMNS)}")
        values: np.ndarray = self.simulation.by_calendar_quarter[
            :, :, CALENDAR_QUARTER_COLUMNS.index(line)]
        return pd.DataFrame(values, index=pd.Index(self.paths["path"], name="path"),
                            columns=pd.Index(self.simulation.calendar_quarters, name="quarter"))


@dataclass
class Batch:
    """A batch's results: ``table`` (batch_summary.csv: a row a variant, its figures and
    paired differences from its base), the ``folder``, the report's path, and the
    variants that ``failed`` (name: reason)."""

    folder: Path
    table: pd.DataFrame
    report: Path | None
    failed: dict[str, str]


def run_batch(inputs: Sequence[str | Path], out: str | Path = "results", *,
              paths: int | None = None, progress: bool | None = False,
              workbooks: bool = False, plotlyjs: str = "file") -> Batch:
    """Run every scenario, stress and sweep in ``inputs`` (files or folders) as
    ``sibsim batch`` does, into ``out``; variants finished earlier are kept
    (``workbooks``: each variant writes its results.xlsx too; ``plotlyjs``: how the
    pages load plotly.js, as ``sibsim batch --plotlyjs``).

    Raises
    ------
    ScenarioError
        Every problem of every file, before anything is simulated.
    """
    import pandas as pd

    from . import batch
    outcome = batch.run_batch(batch.plan_batch(list(inputs), paths=paths), out,
                              progress=progress, workbooks=workbooks,
                              plotlyjs=plotlyjs)
    report = outcome.report_path if outcome.report_written or (
        outcome.report_path and outcome.report_path.exists()) else None
    return Batch(Path(out), pd.read_csv(outcome.summary_path), report, dict(outcome.failed))


class ContractDesign:
    """A contract design's answer (see :func:`design_contract`).

    Attributes
    ----------
    grid : DataFrame
        A row a candidate: its terms, figures, and whether it meets every requirement.
    recommended : Series or None
        The best candidate meeting every requirement (None: no candidate does).
    binding : tuple or None
        Without one: the requirement that binds at the nearest candidate, and by how much
        it is missed there.
    """

    def __init__(self, search, found):
        import pandas as pd
        self._search, self._found = search, found
        self.grid = found.grid
        self.recommended = None if found.best is None else pd.Series(found.best)
        self.binding = found.binding

    @property
    def frontier(self) -> pd.DataFrame:
        """For each value of the first term varied, the best candidate meeting every
        requirement."""
        from .design import frontier
        return frontier(self._found)

    def figures(self, terms: Mapping[str, float]) -> pd.Series:
        """Any terms' figures on the same paths (e.g. the terms a bond used)."""
        import pandas as pd
        return pd.Series(self._search.figures(terms, self._found.question.metrics))

    def write(self, out: str | Path = "results") -> Path:
        """Write ``OUT/<name>__design/`` as ``sibsim design`` does; returns the folder."""
        from . import io
        from .design import write_outputs
        name = self._search.base.scenario.name
        folder = Path(out) / f"{name}__design"
        with io.atomic_folder(folder, marker="design.json") as tmp:
            write_outputs(self._found, tmp, f"sibsim design: {name}")
        return folder


def design_contract(scenario: ResolvedScenario, vary: Mapping[str, Sequence[float]],
                    require: Sequence[str] = (), maximise: str | None = None,
                    minimise: str | None = None, paths: int = 10_000,
                    seed: int | None = None) -> ContractDesign:
    """Search contract terms for those that meet every requirement and make the objective
    best, on common random numbers (``sibsim design``).

    Parameters
    ----------
    scenario : ResolvedScenario
    vary : mapping
        Each term to vary and its ``(low, high)`` or ``(low, high, points)``, e.g.
        ``{"contract.price_per_care_day_saved": (20, 120)}``.
    require : sequence of str
        Requirements such as ``"investor.irr.p50 >= 0.06"``.
    maximise, minimise : str
        The figure to make largest (or smallest), e.g. ``commissioner.net_saving.p50``.
    paths, seed : int
        The paths every candidate is judged on (seed: the scenario's by default).
    """
    from . import design as d
    axes = tuple(d.parse_axis(f"{k}={':'.join(str(v) for v in bounds)}")
                 for k, bounds in vary.items())
    requirements = tuple(d.parse_requirement(r) for r in require)
    objective = maximise or minimise
    if objective is None or (maximise and minimise):
        raise ValueError("give maximise or minimise (one of them)")
    d.check_metric(objective, "maximise" if maximise else "minimise")
    search = d.ContractSearch(scenario, paths,
                              scenario.scenario.simulation.seed if seed is None else seed)
    question = d.Question(axes, requirements, objective, bool(maximise))
    return ContractDesign(search, d.search(search, question))


def _flat(tree: Mapping[str, Any], prefix: str = ""):
    """(dotted name, number) for every number in a nested summary."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield name, float(value)
