"""Reading scenario files: YAML in, a validated :class:`Scenario` out.

:func:`load_scenario` reads one file; a file that ``extends`` another (or lists stresses
and sweeps) is composed as ``sibsim run`` composes it (:mod:`simulator.compose`). The
YAML reading and the placing of problems at file, line and key are in
:mod:`simulator.yamlfiles` (which compose builds on) and re-exported here.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from .compose import load_composed
from .schema import Scenario
from .yamlfiles import (
    MAX_DEPTH,
    MAX_EXPANDED_NODES,
    MAX_FILE_BYTES,
    LoadedScenario,
    Problem,
    ScenarioError,
    YamlLoader,
    compose_yaml,
    decode_text,
    load_yaml,
    named_keys,
    parse_scenario,
    parse_yaml,
    problem_from_error,
    read_bytes,
    read_text,
)

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_NODES", "MAX_FILE_BYTES", "LoadedScenario", "Problem",
           "ScenarioError", "YamlLoader", "compose_yaml", "decode_text", "load_scenario",
           "load_scenarios", "load_yaml", "named_keys", "parse_scenario", "parse_yaml",
           "problem_from_error", "read_bytes", "read_text"]


def load_scenario(path: str | Path) -> LoadedScenario:
    """A scenario file, validated; one that ``extends`` another (or lists stresses and
    sweeps) is composed as ``sibsim run`` composes it (compose.load_composed)."""
    path = Path(path)
    raw = read_bytes(path)   # a regular file of at most MAX_FILE_BYTES, read once
    data, root = parse_scenario(str(path), decode_text(raw))
    if isinstance(data, dict) and {"extends", "stresses", "sweeps"} & set(data):
        return load_composed(path, raw=raw)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([problem_from_error(str(path), root, e)
                             for e in exc.errors()]) from exc
    return LoadedScenario(scenario, path, hashlib.sha256(raw).hexdigest())


def load_scenarios(paths) -> list[LoadedScenario]:
    """Load several files, collecting every file's problems before raising."""
    loaded, problems = [], []
    for p in paths:
        try:
            loaded.append(load_scenario(p))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return loaded
