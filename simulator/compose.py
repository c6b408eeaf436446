"""Composing scenarios: ``extends``, named stresses and sweeps.

A scenario file may start from another one::

    extends: ../essex_mst.yaml          # relative to this file
    name: essex_referrals_70
    referrals.per_team_per_month: {scale: 0.7}

Every top-level key of an extending file other than ``extends``, ``stresses``
and ``sweeps`` is an override of its base (syntax and operations:
:mod:`simulator.overrides`). Chains are followed (a file may extend a file that
extends another); a cycle or a missing base is an error naming the file and the
line of its ``extends``.

``stresses:`` maps a name to an override mapping; ``sweeps:`` maps a name to
one or two dotted keys, each with a list of values (numbers, distributions or
operations), and runs their full grid. A stress ``s`` of scenario ``x`` is the
variant ``x__s``; the k-th point of sweep ``w`` is ``x__w_k``. Stresses and
sweeps are not inherited through ``extends`` (they belong to the file that
lists them), may only vary numbers and distributions (sweeps) and may not change
``name`` or ``simulation``: variants share their base's seed and path count, so
they run on common random numbers and their differences are paired path by path.

Every problem names the file and line that set the offending key, whichever file
of the chain that is, and all are reported before anything is simulated.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .overrides import (
    MISSING,
    NUMERIC_KINDS,
    KeyPath,
    Origin,
    Override,
    apply,
    apply_collecting,
    apply_overrides,
    flatten,
    flatten_collecting,
    format_key,
    get_at,
    is_number,
    is_operation,
    key_info,
    parse_assignments,
    parse_key,
    problem_at,
)
from .schema import Scenario
from .version import __version__
from .yamlfiles import (
    SCENARIO_SECTIONS,
    LoadedScenario,
    Problem,
    ScenarioError,
    compose_yaml,
    decode_text,
    error_message,
    named_keys,
    parse_scenario,
    read_bytes,
    read_text,
    scenario_file_problem,
)

__all__ = ["SCENARIO_SECTIONS", "ResolvedScenario", "Variant", "apply_overrides",
           "load_composed", "load_variants", "load_with_assignments", "validate_files",
           "scenario_file_kind", "variant_hash", "parse_assignments", "Override"]

COMPOSE_KEYS = ("extends", "stresses", "sweeps")
YAML_SUFFIXES = (".yaml", ".yml")
NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
MAX_SWEEP_POINTS = 10_000


# --------------------------------------------------------------------------- resolved scenarios
@dataclass(frozen=True)
class ResolvedScenario(LoadedScenario):
    """A LoadedScenario with its ``extends`` chain and overrides applied.

    ``sha256`` is the file's own SHA-256 for a plain file without overrides, else the
    SHA-256 of the resolved scenario's canonical JSON. ``data`` is the raw mapping that
    was validated, ``sources`` every file read (base first) with its SHA-256,
    ``overrides`` the changes applied on top of the file.
    """

    data: dict = field(default_factory=dict, compare=False, repr=False)
    origins: dict = field(default_factory=dict, compare=False, repr=False)
    sources: tuple = ()
    overrides: tuple = ()  # Overrides applied on top of the file(s)

    def derive(self, overrides: Iterable[Override] | Mapping[str, Any], *,
               name: str | None = None) -> ResolvedScenario:
        """This scenario with further overrides (validated like a file)."""
        if isinstance(overrides, Mapping):
            overrides = flatten(overrides)
        overrides = list(overrides)
        data = apply(self.data, overrides)
        if name is not None:
            data["name"] = name
        origins = dict(self.origins)
        origins.update({o.path: o.origin for o in overrides})
        scenario = _validate(data, origins, str(self.path))
        return ResolvedScenario(scenario, self.path, canonical_sha256(scenario), data, origins,
                                self.sources, self.overrides + tuple(overrides))

    def manifest_extra(self) -> dict:
        extra: dict[str, Any] = {}
        if len(self.sources) > 1:
            extra["sources"] = [{"file": f, "sha256": s} for f, s in self.sources]
        if self.overrides:
            extra["overrides"] = {o.key: o.value for o in self.overrides}
        return extra


def canonical_json(obj: Any) -> str:
    return json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _canonical(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _canonical(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    return x


def canonical_sha256(scenario: Scenario) -> str:
    return hashlib.sha256(canonical_json(scenario.model_dump(mode="json", by_alias=True))
                          .encode()).hexdigest()


def variant_hash(scenario: Scenario, seed: int, paths: int) -> str:
    """Identity of a run's results: the resolved scenario (less the chunk size, which
    does not change results), seed, path count and package version."""
    dump = scenario.model_dump(mode="json", by_alias=True)
    dump.pop("simulation", None)
    key = {"scenario": dump, "seed": int(seed), "paths": int(paths),
           "package_version": __version__}
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()


# --------------------------------------------------------------------------- files
@dataclass
class _File:
    """One file read and resolved through its extends chain."""

    path: Path
    own: dict            # this file's top-level mapping
    root: Any            # its YAML node tree (for line numbers)
    data: dict           # merged scenario data (compose keys removed)
    origins: dict        # key path -> (file, line) that set it
    sources: list        # [(file, sha256)] base first
    parent: _File | None
    problems: list = field(default_factory=list)  # in this file's overrides and its bases'

    def line_of(self, path: KeyPath) -> int | None:
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for step in path:
            found = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == step:
                        found, line = v, k.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) \
                    and step < len(node.value):
                found = node.value[step]
                line = found.start_mark.line + 1
            if found is None:
                break
            node = found
        return line


def _node_origins(file: str, node, prefix: KeyPath, out: dict, dotted: bool) -> None:
    """Record (file, line) for every key in a YAML node tree."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            try:
                steps = parse_key(str(k.value)) if dotted else (k.value,)
            except ValueError:
                steps = (k.value,)
            path = prefix + steps
            out[path] = (file, k.start_mark.line + 1)
            _node_origins(file, v, path, out, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (i,)] = (file, item.start_mark.line + 1)
            _node_origins(file, item, prefix + (i,), out, dotted)


def _real(path: Path) -> Path:
    """The file ``path`` names, symbolic links followed (as far as they go: a loop is
    reported when the file is read, not here)."""
    return Path(os.path.realpath(path))


def _read(path: Path, chain: tuple, cache: dict, via: tuple | None = None,
          raw: bytes | None = None) -> _File:
    """``path`` read (once: see yamlfiles.read_bytes; ``raw`` if read already) and resolved
    through its extends chain. ``via`` is (file, line) of the ``extends`` that named it: a
    problem with the file as a whole (it cannot be read, or is not a scenario) is
    reported there."""
    key = _real(path)
    if key in cache:
        return cache[key]
    try:
        raw = read_bytes(path) if raw is None else raw
        own, root = parse_scenario(str(path), decode_text(raw))
    except ScenarioError as exc:
        if via is None:
            raise
        raise ScenarioError([problem_at(via, "extends", f"base file {p.file}: {p.message}")
                             if p.line is None and not p.key and p.file == str(path) else p
                             for p in exc.problems]) from None
    here = _File(path, own, root, {}, {}, [], None)
    layer = {k: v for k, v in own.items() if k not in COMPOSE_KEYS}
    if "extends" in own:
        here.parent = _read(_base_path(here, chain), chain + (key,), cache,
                            (str(path), here.line_of(("extends",))))
        origins: dict = {}
        _node_origins(str(path), root, (), origins, dotted=True)
        here.problems = list(here.parent.problems)
        overrides = flatten_collecting(
            layer, lambda p: origins.get(p, (str(path), here.line_of(p[:1]))), (), here.problems)
        here.data = apply_collecting(here.parent.data, overrides, here.problems)
        here.origins = {**here.parent.origins, **origins}
        here.sources = here.parent.sources + [(str(path), hashlib.sha256(raw).hexdigest())]
    else:
        here.data = copy.deepcopy(layer)
        _node_origins(str(path), root, (), here.origins, dotted=False)
        here.sources = [(str(path), hashlib.sha256(raw).hexdigest())]
    cache[key] = here
    return here


def _base_path(here: _File, chain: tuple) -> Path:
    ext = here.own["extends"]
    line = here.line_of(("extends",))
    if not isinstance(ext, str) or not ext.strip():
        raise ScenarioError([Problem(str(here.path), line, "extends",
                                     "extends must name a scenario file, e.g. ../essex_mst.yaml")])
    if Path(ext.strip()).suffix.lower() not in YAML_SUFFIXES:
        raise ScenarioError([Problem(str(here.path), line, "extends",
                                     f"extends must name a YAML scenario file (.yaml or .yml), "
                                     f"e.g. ../essex_mst.yaml; got {ext!r}")])
    base = Path(os.path.normpath(here.path.parent / ext))  # a/b/../c.yaml -> a/c.yaml
    if _real(base) in chain + (_real(here.path),):
        names = [str(p) for p in chain] + [str(_real(here.path)), str(_real(base))]
        raise ScenarioError([Problem(str(here.path), line, "extends",
                                     "extends cycle: " + " -> ".join(names))])
    try:
        os.stat(base)
    except (FileNotFoundError, NotADirectoryError):
        raise ScenarioError([Problem(str(here.path), line, "extends",
                                     f"base file not found: {ext} (looked for {base})")]
                            ) from None
    except OSError:
        pass   # a loop of symbolic links, no permission, ...: reported when it is read
    return base


def _validate(data: dict, origins: dict, file: str, problems: Sequence[Problem] = ()) -> Scenario:
    """The validated scenario; else ScenarioError with ``problems`` found earlier and every
    schema problem."""
    problems = list(problems)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems += [_validation_problem(data, origins, file, e) for e in exc.errors()]
    if problems:
        raise ScenarioError(list(dict.fromkeys(problems)))
    return scenario


def _named_origin(message: str, origins: dict, file: str) -> tuple[tuple, Origin] | None:
    """For a check across keys (a section's or the scenario's validator, whose error has
    no key of its own): the key its message names that was most likely just changed, and
    where: one set on the command line (--set) if any, or under such a named key; else
    one set in the file being read; else the first named key the file sets."""
    named = []
    for path in named_keys(message):
        named += [(p, o) for p, o in origins.items() if p[:len(path)] == path]
    if not named:
        return None
    for prefer in (lambda o: str(o[0]).startswith("--set"), lambda o: o[0] == file,
                   lambda o: True):
        for path, origin in named:
            if prefer(origin):
                return path, origin
    return None


def _validation_problem(data: dict, origins: dict, file: str, err: dict) -> Problem:
    """Name the file and line that set the offending key (deepest recorded prefix)."""
    node, steps = data, []
    loc = list(err["loc"])
    for i, step in enumerate(loc):
        child = get_at(node, (step,)) if isinstance(step, (str, int)) else MISSING
        if child is MISSING:
            # discriminator tags and union branches are not keys in the file; a final
            # missing field is, so it is shown
            if i == len(loc) - 1 and err["type"] == "missing":
                steps.append(step)
            continue
        node = child
        steps.append(step)
    origin = (file, None)
    for n in range(len(steps), -1, -1):
        if tuple(steps[:n]) in origins:
            origin = origins[tuple(steps[:n])]
            break
    if len(steps) <= 1 and err["type"] == "value_error":   # a check across keys
        named = _named_origin(err["msg"], origins, file)
        if named is not None:
            steps, origin = list(named[0]), named[1]
    return problem_at(origin, format_key(steps), error_message(err))


def _resolved(f: _File, path: Path) -> ResolvedScenario:
    """The scenario of the file ``f`` read from ``path``, validated (ScenarioError with every
    problem of its extends chain and of the schema)."""
    base = _validate(f.data, f.origins, str(path), f.problems)
    return ResolvedScenario(base, path, f.sources[-1][1] if f.parent is None
                            else canonical_sha256(base), f.data, f.origins, tuple(f.sources))


def load_composed(path: str | Path, overrides: Iterable[Override] | Mapping[str, Any] = (),
                  *, cache: dict | None = None, raw: bytes | None = None) -> ResolvedScenario:
    """Load a scenario file with its ``extends`` chain resolved and ``overrides`` applied
    (``raw``: the file's bytes, if they were read already). Its ``stresses`` and
    ``sweeps`` are checked as :func:`load_variants` checks them (a file ``validate``
    refuses is refused here too, with the same messages), but not returned: see
    :func:`load_variants`."""
    path = Path(path)
    cache = {} if cache is None else cache
    f = _read(path, (), cache, raw=raw)
    try:
        resolved = _resolved(f, path)
    except ScenarioError as exc:
        problems, resolved = list(exc.problems), None
    else:
        problems = []
    for build in (_stress_variants, _sweep_variants):
        try:
            build(f, resolved)
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    if isinstance(overrides, Mapping):
        overrides = flatten(overrides)
    overrides = list(overrides)
    return resolved.derive(overrides) if overrides else resolved


# --------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """One simulation of a batch: a file's scenario, one of its stresses, or a sweep point."""

    name: str
    kind: str                   # "scenario", "stress" or "sweep"
    file: Path
    loaded: ResolvedScenario
    base: str | None            # the variant it is compared with
    base_file: Path | None      # the file that defines the base (for an extends parent)
    change: dict                # what differs from the base, key -> value

    @property
    def seed(self) -> int:
        return self.loaded.scenario.simulation.seed

    def n_paths(self, override: int | None = None) -> int:
        return self.loaded.scenario.simulation.paths if override is None else override


def load_variants(path: str | Path, *, cache: dict | None = None,
                  with_stresses: bool = True) -> list[Variant]:
    """The file's scenario followed by its stresses and sweep points, all validated."""
    path = Path(path)
    cache = {} if cache is None else cache
    f = _read(path, (), cache)
    problems: list[Problem] = []
    try:
        base = _resolved(f, path)
    except ScenarioError as exc:
        problems.extend(exc.problems)
        base = None
    variants = []
    if base is not None:
        change = {}
        if f.parent is not None:  # what the file changes in its base (valid: it loaded)
            own_values = {k: v for k, v in f.own.items()
                          if k not in COMPOSE_KEYS + ("name", "description")}
            change = {o.key: o.value for o in flatten(own_values)}
        parent_name = f.parent.data.get("name") if f.parent is not None else None
        variants.append(Variant(base.scenario.name, "scenario", path, base, parent_name,
                                f.parent.path if f.parent is not None else None, change))
    if with_stresses:
        for build in (_stress_variants, _sweep_variants):
            try:
                found = build(f, base)
            except ScenarioError as exc:
                problems.extend(exc.problems)
                continue
            variants.extend(found)
    if problems:
        raise ScenarioError(problems)
    return variants


def _named_entries(f: _File, section: str) -> list[tuple[str, Any, KeyPath]]:
    value = f.own.get(section)
    if value is None:
        return []
    where = (str(f.path), f.line_of((section,)))
    if not isinstance(value, dict) or not value:
        empty = " (this one is empty: give at least one, or leave it out)" if value == {} else ""
        raise ScenarioError([problem_at(where, section, f"{section} must be a mapping of names "
                                                        f"to overrides{empty}")])
    problems, out = [], []
    for name, body in value.items():
        origin = (str(f.path), f.line_of((section, name)))
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(problem_at(origin, f"{section}.{name}", "names may use letters, "
                                       "digits, _ and - only"))
        elif not isinstance(body, dict) or not body:
            empty = " (this one is empty: it would change nothing)" if body == {} else ""
            problems.append(problem_at(origin, f"{section}.{name}", "expected a mapping of "
                                       "keys to values, e.g. {referrals.per_team_per_month: "
                                       "{scale: 0.7}}" + empty))
        else:
            out.append((name, body, (section, name)))
    if problems:
        raise ScenarioError(problems)
    return out


def _entry_origins(f: _File, prefix: KeyPath):
    """Origin lookup for keys inside a stresses/sweeps entry (dotted keys allowed)."""
    node = f.root
    for step in prefix:
        node = next(v for k, v in node.value if k.value == step)
    origins: dict = {}
    _node_origins(str(f.path), node, (), origins, dotted=True)
    fallback = (str(f.path), f.line_of(prefix))
    return lambda p: origins.get(p, origins.get(p[:1], fallback))


def _forbid_identity_keys(overrides: list[Override]) -> None:
    bad = [o for o in overrides if o.path[0] in ("name", "simulation")]
    if bad:
        raise ScenarioError([problem_at(o.origin, o.key, "a stress or sweep cannot change name or "
                                        "simulation: variants share their base's seed and paths "
                                        "(common random numbers)") for o in bad])


def _variant_name(base: str, *parts: str) -> str:
    return "__".join((base,) + parts)


def _stress_variants(f: _File, base: ResolvedScenario | None) -> list[Variant]:
    out, problems = [], []
    for name, body, prefix in _named_entries(f, "stresses"):
        try:
            overrides = flatten(body, _entry_origins(f, prefix))
            _forbid_identity_keys(overrides)
            if base is None:
                continue
            vname = _variant_name(base.scenario.name, name)
            _check_name(vname, (str(f.path), f.line_of(prefix)), f"stresses.{name}")
            loaded = base.derive(overrides, name=vname)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        out.append(Variant(vname, "stress", f.path, loaded, base.scenario.name, None,
                           {o.key: o.value for o in overrides}))
    if problems:
        raise ScenarioError(problems)
    return out


def _check_name(name: str, origin: Origin, key: str) -> None:
    if len(name) > 100:
        raise ScenarioError([problem_at(origin, key, f"variant name {name!r} is longer than 100 "
                                        f"characters: use a shorter name")])


def _sweep_variants(f: _File, base: ResolvedScenario | None) -> list[Variant]:
    out, problems = [], []
    for name, body, prefix in _named_entries(f, "sweeps"):
        origin_of = _entry_origins(f, prefix)
        try:
            axes = _sweep_axes(body, origin_of, f"sweeps.{name}", (str(f.path), f.line_of(prefix)))
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        if base is None:
            continue
        grid = list(itertools.product(*[[(path, v, origin) for v in values]
                                        for path, values, origin in axes]))
        width = len(str(len(grid)))
        for i, point in enumerate(grid, start=1):
            overrides = [Override(path, v, origin) for path, v, origin in point]
            vname = _variant_name(base.scenario.name, f"{name}_{i:0{width}d}")
            try:
                _check_name(vname, (str(f.path), f.line_of(prefix)), f"sweeps.{name}")
                loaded = base.derive(overrides, name=vname)
            except ScenarioError as exc:
                problems.extend(exc.problems)
                continue
            out.append(Variant(vname, "sweep", f.path, loaded, base.scenario.name, None,
                               {o.key: o.value for o in overrides}))
    if problems:
        raise ScenarioError(problems)
    return out


def _sweep_axes(body: dict, origin_of, where: str, origin: Origin) -> list:
    if not 1 <= len(body) <= 2:
        raise ScenarioError([problem_at(origin, where, "a sweep varies one or two keys, each "
                                        "with a list of values")])
    axes, problems, size = [], [], 1
    for key, values in body.items():
        try:
            path = parse_key(key)
            info = key_info(path)
        except ValueError as exc:
            problems.append(problem_at(origin_of(()), f"{where}.{key}", str(exc)))
            continue
        here = origin_of(path)
        if path[0] in ("name", "simulation"):
            problems.append(problem_at(here, key, "a sweep cannot change name or simulation"))
        elif info.kind not in NUMERIC_KINDS:
            problems.append(problem_at(here, key, f"sweeps vary numbers and distributions; "
                                       f"{key} is a {info.kind} field"))
        elif not isinstance(values, list) or not values:
            problems.append(problem_at(here, key, "expected a non-empty list of values, e.g. "
                                       "[0.2, 0.3, 0.4]"))
        elif bad := [v for v in values if not (is_number(v) or is_operation(v)
                                                  or (isinstance(v, dict) and "dist" in v))]:
            problems.append(problem_at(here, key, f"sweep values must be numbers, distributions "
                                       f"or operations such as {{scale: 0.7}}; got {bad[0]!r}"))
        else:
            axes.append((path, values, here))
            size *= len(values)
    if not problems and size > MAX_SWEEP_POINTS:
        problems.append(problem_at(origin, where, f"{size} sweep points is more than "
                                   f"{MAX_SWEEP_POINTS}"))
    if problems:
        raise ScenarioError(problems)
    return axes


# --------------------------------------------------------------------------- discovery
def scenario_file_kind(path: Path) -> str | None:
    """None if ``path`` is a scenario file, else why not.

    The rule (yamlfiles.scenario_file_problem): a YAML file is a scenario if its
    top-level mapping has an ``extends:`` key or any of the scenario's required sections
    (``calendar``, ``referrals``, ``workforce``, ``treatment``, ``young_people``,
    ``care``). Anything else, for example a calibration targets file with a top-level
    ``targets:``, is not. A file that cannot be read, or read as YAML, counts as a
    scenario, so that its problems are reported rather than skipped; so does one with a
    misspelt section among the others. The reason names none of the file's keys.
    """
    try:
        root = compose_yaml(read_text(path))
    except (ScenarioError, yaml.YAMLError, RecursionError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return "not a scenario (its top level is not a mapping of sections)"
    why = scenario_file_problem([k.value for k, _ in root.value
                                 if isinstance(k, yaml.ScalarNode)])
    if why is None:
        return None
    if why.startswith("a calibration targets file"):
        return "a calibration targets file, not a scenario"
    return "not a scenario (no extends: and no scenario section such as calendar:)"


# --------------------------------------------------------------------------- command line
def load_with_assignments(path: str | Path, assignments: Sequence[str] = ()) -> ResolvedScenario:
    """A scenario file with ``--set KEY=VALUE`` assignments applied; every problem in the
    file and in the assignments reported together."""
    problems: list[Problem] = []
    overrides: list[Override] = []
    try:
        overrides = parse_assignments(assignments)
    except ScenarioError as exc:
        problems.extend(exc.problems)
    try:
        loaded = load_composed(path, overrides if not problems else ())
    except ScenarioError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return loaded


def validate_files(paths: Sequence[str | Path]) -> list[tuple[ResolvedScenario, int]]:
    """Every file's scenario and its number of stress and sweep variants; every problem in
    every file (including each stress and sweep point) raised together."""
    out, problems, cache = [], [], {}
    for p in paths:
        try:
            variants = load_variants(p, cache=cache)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        out.append((variants[0].loaded, len(variants) - 1))
    if problems:
        raise ScenarioError(problems)
    return out
