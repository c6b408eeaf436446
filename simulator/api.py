"""The Python API: load a scenario, simulate it, read its results as pandas frames.

>>> import simulator
>>> r = simulator.simulate(simulator.load_scenario("scenarios/essex_mst.yaml"), paths=2000)
>>> r.paths            # one row a path                                  # doctest: +SKIP
>>> r.quarters         # tidy: quarter, line, statistic, value          # doctest: +SKIP
>>> r.summary["investor"]["multiple"]["mean"]                           # doctest: +SKIP

Paths are numbered from ``path_start``; a path's random numbers depend on its number
only, so ``simulate(s, paths=1000)`` and ``simulate(s, paths=1000, path_start=1000)``
are the two halves of ``simulate(s, paths=2000)``, path for path.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import engine, metrics
from .compose import ResolvedScenario, load_composed
from .yamlfiles import ScenarioError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["Result", "ScenarioError", "load_scenario", "simulate"]


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
    result = engine.simulate(scenario.scenario, paths=paths, seed=seed, path_start=path_start,
                             progress=progress)
    return Result(scenario, result)


class Result:
    """A simulation's results: frames of paths and quarters, and the summary.

    Attributes
    ----------
    scenario : ResolvedScenario
    seed : int
    simulation : engine.SimulationResult
        The per-path arrays the frames are made from.
    """

    def __init__(self, scenario: ResolvedScenario, simulation: engine.SimulationResult):
        self.scenario = scenario
        self.simulation = simulation
        self.seed = simulation.seed

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

    def to_excel(self, path: str | Path) -> Path:
        """Write the results as a workbook (``sibsim run``'s results.xlsx: headline,
        inputs, quarterly cash flows, payments by year, investors' distribution, sample
        paths); returns its path."""
        from . import workbook
        path = Path(path)
        workbook.write_workbook(path, self.summary, metrics.quarters_table(self.simulation),
                                self.paths, self.scenario.scenario)
        return path

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


def _flat(tree: Mapping[str, Any], prefix: str = ""):
    """(dotted name, number) for every number in a nested summary."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat(value, name + ".")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield name, float(value)
