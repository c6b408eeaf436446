"""Reading scenario files: YAML in, a validated :class:`Scenario` out.

:func:`load_scenario` reads one file as ``sibsim run`` reads it: through the composing
loader (:mod:`simulator.compose`), so a file that ``extends`` another is resolved and
its stresses and sweeps are checked. The YAML reading and the placing of problems at
file, line and key are in :mod:`simulator.yamlfiles`.
"""
from __future__ import annotations

from pathlib import Path

from .compose import load_composed
from .yamlfiles import LoadedScenario, Problem, ScenarioError

__all__ = ["LoadedScenario", "Problem", "ScenarioError", "load_scenario"]


def load_scenario(path: str | Path) -> LoadedScenario:
    """A scenario file, validated, as ``sibsim run`` reads it (compose.load_composed)."""
    return load_composed(path)

