"""Overrides: change keys of a raw scenario mapping, by value or by operation.

One override mapping is used by ``sibsim run --set``, by an ``extends`` file,
by each entry of ``stresses:`` and by each point of ``sweeps:``
(:mod:`simulator.compose`):

- keys are dotted paths (``referrals.per_team_per_month``,
  ``workforce.teams[0].therapists``) or section names whose mapping is merged
  key by key (``referrals: {per_team_per_month: 3}``); a key the schema does
  not know is an error;
- a value replaces what was there (numbers, distributions, lists, dates and
  mappings of values such as ``rejection_reasons`` are replaced whole);
- a one-key mapping ``{scale: f}``, ``{power: p}`` or ``{add: a}`` is an
  *operation* on the current value, so a stress stays right when its base is
  recalibrated. What each does to a distribution (``X`` the drawn value):

  ====================  ===========================  =========================
  kind                  scale f (f > 0): f X exact   add a: X + a exact
  ====================  ===========================  =========================
  number / fixed        value x f (f >= 0)           value + a
  uniform               low, high x f                low, high + a
  normal                mean, sd, low, high x f      mean, low, high + a
  lognormal             median, low, high x f        error (not lognormal)
  beta                  low, high x f                low, high + a
  triangular            low, mode, high x f          low, mode, high + a
  ====================  ===========================  =========================

  ``power p`` (p > 0) gives ``X^p``: exact for numbers and lognormals (median^p,
  sigma x p, bounds^p); for uniform, beta and triangular the bounds and mode
  are raised to p and the shape kept (an approximation); an error for normals.
  ``power: 0.5`` on a hazard ratio halves its log: half the treatment effect on
  the log-hazard scale. Counts stay whole numbers (``therapists: {scale: 2}``).

Problems are collected, each with the file and line (or ``--set KEY=VALUE``)
that wrote the key, and raised together as a ScenarioError.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from .schema import Scenario, is_param_field
from .yamlfiles import Problem, ScenarioError, YamlLimit, load_yaml, yaml_error_text

OPERATIONS = ("scale", "power", "add")
NUMERIC_KINDS = ("param", "number", "integer", "numbers")
MISSING = object()   # no such key in the data (get_at), no default in the schema

KeyPath = tuple  # of str (mapping keys) and int (list indices)
Origin = tuple   # (file or "--set KEY=VALUE", line or None)


# --------------------------------------------------------------------------- keys
_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def parse_key(key: str) -> KeyPath:
    """``"workforce.teams[0].therapists"`` -> ``("workforce", "teams", 0, "therapists")``."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError("a key must be a non-empty dotted path such as referrals.dispersion")
    out: list[Any] = []
    for segment in key.strip().split("."):
        m = _SEGMENT.fullmatch(segment)
        if not m:
            raise ValueError(f"malformed key {key!r} (expected a dotted path such as "
                             f"workforce.teams[0].therapists)")
        out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return tuple(out)


def format_key(path: Sequence) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


# --------------------------------------------------------------------------- schema walk
def _strip(annotation):
    """Remove Annotated wrappers and Optional[...] around a field annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _field_kind(field_info) -> tuple[str, type | None]:
    """(kind, section model) of a schema field: the kinds are param, section, sections,
    mapping, number, integer, numbers, flag, text and date."""
    if is_param_field(field_info):
        return "param", None
    ann = _strip(field_info.annotation)
    origin = typing.get_origin(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "section", ann
    if origin is list:
        (item,) = typing.get_args(ann)
        item = _strip(item)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return "sections", item
        return "numbers", None
    if origin is dict:
        return "mapping", None
    if origin in (typing.Union, types.UnionType):  # a number or a list of numbers
        return "numbers", None
    if origin is typing.Literal or ann is str:
        return "text", None
    if ann is bool:
        return "flag", None
    if ann is int:
        return "integer", None
    if ann is float:
        return "number", None
    if ann is dt.date:
        return "date", None
    return "other", None


@dataclass(frozen=True)
class KeyInfo:
    kind: str               # see _field_kind; "distribution field" inside a distribution
    default: Any = MISSING  # the schema default of the field, if any


def key_info(path: KeyPath) -> KeyInfo:
    """What the schema says about a key path; ValueError naming the first unknown step."""
    model, kind, default = Scenario, "section", MISSING
    for i, step in enumerate(path):
        if kind == "section":
            if not isinstance(step, str) or step not in model.model_fields:
                raise ValueError(f"unknown key (check its spelling; "
                                 f"{format_key(path[:i]) or 'a scenario'} has: "
                                 f"{', '.join(model.model_fields)})")
            info = model.model_fields[step]
            kind, sub = _field_kind(info)
            default = MISSING if info.is_required() else info.get_default(call_default_factory=True)
            model = sub or model
        elif kind == "sections":
            if not isinstance(step, int):
                raise ValueError(f"{format_key(path[:i])} is a list: address an item as "
                                 f"{format_key(path[:i])}[0]")
            kind, default = "section", MISSING
        elif kind == "mapping" and isinstance(step, str):
            kind, default = "number", MISSING
        elif kind == "param":
            return KeyInfo("distribution field")  # checked by the schema afterwards
        else:
            raise ValueError(f"{format_key(path[:i])} is a {kind} value and has no key {step!r}")
    return KeyInfo(kind, default)


# --------------------------------------------------------------------------- operations
def is_operation(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in OPERATIONS


_BOUNDS = {"fixed": ("value",), "uniform": ("low", "high"), "normal": ("mean", "low", "high"),
           "beta": ("low", "high"), "triangular": ("low", "mode", "high")}


def is_number(x: Any) -> bool:
    """A number as YAML gives it: an int or a float, not a bool."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number_op(op: str, x: float, amount: float) -> float:
    if op == "scale":
        y = x * amount
    elif op == "add":
        y = x + amount
    else:
        if x < 0:
            raise ValueError(f"cannot raise the negative value {x:g} to a power")
        try:
            y = x ** amount
        except OverflowError:
            raise ValueError(f"{x:g} to the power {amount:g} is too large") from None
    if isinstance(x, int) and float(y).is_integer():
        return int(y)  # counts stay whole numbers
    return y


def operate(value: Any, op: str, amount: Any) -> Any:
    """Apply ``{op: amount}`` to a number, a list of numbers or a distribution mapping."""
    if not is_number(amount) or not math.isfinite(amount):
        raise ValueError(f"{op} needs a finite number, got {amount!r}")
    if op == "scale" and amount < 0:
        raise ValueError(f"scale needs a factor >= 0, got {amount:g}")
    if op == "power" and amount <= 0:
        raise ValueError(f"power needs an exponent > 0, got {amount:g}")
    if is_number(value):
        return _number_op(op, value, amount)
    if isinstance(value, list) and value and all(is_number(v) for v in value):
        return [_number_op(op, v, amount) for v in value]
    if isinstance(value, dict) and "dist" in value:
        return _distribution_op(dict(value), op, amount)
    raise ValueError(f"cannot {op} {value!r}: only numbers and distributions can be scaled, "
                     f"shifted or raised to a power")


def _distribution_op(d: dict, op: str, amount: float) -> dict:
    kind = d.get("dist")
    if kind == "beta":
        d.setdefault("low", 0.0)
        d.setdefault("high", 1.0)
    if op == "scale":
        if kind != "fixed" and amount <= 0:
            raise ValueError("scaling a distribution needs a factor > 0")
        keys = {"normal": ("mean", "sd", "low", "high"),
                "lognormal": ("median", "low", "high")}.get(kind, _BOUNDS.get(kind, ()))
    elif op == "add":
        if kind == "lognormal":
            raise ValueError("cannot add to a lognormal distribution (a shifted lognormal is "
                             "not lognormal): use scale, or set a new distribution")
        keys = _BOUNDS.get(kind, ())
    else:
        if kind == "normal":
            raise ValueError("cannot raise a normal distribution to a power: set a new "
                             "distribution instead")
        if kind == "lognormal":
            d["sigma"] = _number_op("scale", d["sigma"], amount) if "sigma" in d else d.get("sigma")
            keys = ("median", "low", "high")
        else:
            keys = _BOUNDS.get(kind, ())
    if not keys:
        raise ValueError(f"unknown distribution {kind!r}")
    for k in keys:
        if k in d:
            if not is_number(d[k]):
                raise ValueError(f"distribution field {k} is not a number: {d[k]!r}")
            d[k] = _number_op(op, d[k], amount)
    return d


# --------------------------------------------------------------------------- overrides
@dataclass(frozen=True)
class Override:
    """One change: set ``value`` (or apply the operation) at ``path``; ``origin`` is where
    it was written, for error messages."""

    path: KeyPath
    value: Any
    origin: Origin

    @property
    def key(self) -> str:
        return format_key(self.path)


def get_at(data: Any, path: KeyPath) -> Any:
    """The value at ``path`` in nested mappings and lists, or MISSING."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(data, list) or step >= len(data):
                return MISSING
            data = data[step]
        else:
            if not isinstance(data, dict) or step not in data:
                return MISSING
            data = data[step]
    return data


def _set(data: dict, path: KeyPath, value: Any) -> None:
    for step in path[:-1]:
        nxt = data[step] if isinstance(step, int) else data.get(step)
        if isinstance(step, int) or isinstance(nxt, (dict, list)):
            data = nxt
        else:  # an absent (or null) section is created
            data[step] = {}
            data = data[step]
    data[path[-1]] = value


def flatten(overrides: Mapping, origin: Origin | Any = ("overrides", None),
            prefix: KeyPath = ()) -> list[Override]:
    """An override mapping -> a list of Overrides (section mappings merge key by key).

    ``origin`` is either one origin for every key, or a callable (path -> origin).
    Raises ScenarioError naming every unknown or malformed key.
    """
    problems: list[Problem] = []
    out = flatten_collecting(overrides, origin, prefix, problems)
    if problems:
        raise ScenarioError(problems)
    return out


def flatten_collecting(overrides: Mapping, origin, prefix: KeyPath,
                       problems: list) -> list[Override]:
    """:func:`flatten`, appending each problem to ``problems`` instead of raising."""
    out: list[Override] = []
    where = origin if callable(origin) else (lambda _path: origin)
    for key, value in overrides.items():
        try:
            path = prefix + parse_key(key)
        except ValueError as exc:
            problems.append(problem_at(where(prefix), format_key(prefix) or str(key), str(exc)))
            continue
        try:
            kind = key_info(path).kind
        except ValueError as exc:
            problems.append(problem_at(where(path), format_key(path), str(exc)))
            continue
        if kind == "section" and isinstance(value, dict) and not is_operation(value):
            out.extend(flatten_collecting(value, origin, path, problems))
        else:
            out.append(Override(path, value, where(path)))
    return out


def problem_at(origin: Origin, key: str, message: str) -> Problem:
    """A Problem at ``origin`` (file or "--set KEY=VALUE", line) and ``key``."""
    file, line = origin
    return Problem(str(file), line, key, message)


def apply(data: dict, overrides: Iterable[Override]) -> dict:
    """A deep copy of ``data`` with ``overrides`` applied in order; ScenarioError naming
    every override that cannot be applied."""
    problems: list[Problem] = []
    data = apply_collecting(data, overrides, problems)
    if problems:
        raise ScenarioError(problems)
    return data


def apply_collecting(data: dict, overrides: Iterable[Override], problems: list) -> dict:
    """:func:`apply`, appending each problem to ``problems`` instead of raising."""
    data = copy.deepcopy(data)
    for o in overrides:
        try:
            info = key_info(o.path)
            if is_operation(o.value):
                (op, amount), = o.value.items()
                if info.kind not in NUMERIC_KINDS + ("distribution field",):
                    raise ValueError(f"{op} applies to numbers and distributions; "
                                     f"{o.key} is a {info.kind} field")
                current = get_at(data, o.path)
                if current is MISSING or current is None:
                    current = _raw_default(info, o.key)
                new = operate(current, op, amount)
            elif info.kind in NUMERIC_KINDS + ("distribution field",) \
                    and isinstance(o.value, dict) and "dist" not in o.value \
                    and any(k in OPERATIONS for k in o.value):
                raise ValueError(f"an operation is one of {{scale: x}}, {{add: x}} or "
                                 f"{{power: x}}, alone; got {o.value!r} (apply two "
                                 f"operations as two overrides of the key)")
            else:
                new = copy.deepcopy(o.value)
            _check_container(data, o.path)
            _set(data, o.path, new)
        except ValueError as exc:
            problems.append(problem_at(o.origin, o.key, str(exc)))
    return data


def _raw_default(info: KeyInfo, key: str) -> Any:
    default = info.default
    if default is MISSING or default is None:
        raise ValueError(f"{key} is not set (null) in the base scenario: set a value "
                         f"instead of applying an operation")
    if getattr(default, "is_fixed", False):
        return default.value
    if isinstance(default, BaseModel):
        return default.model_dump(mode="python", by_alias=True)
    return default


def _check_container(data: dict, path: KeyPath) -> None:
    """Raise ValueError unless every step of ``path`` can be taken in ``data``: an item of a
    list that has it, or a key of a mapping (or of an absent section, which is created)."""
    for i, step in enumerate(path):
        parent = get_at(data, path[:i])
        if isinstance(step, int):
            n = len(parent) if isinstance(parent, list) else 0
            if step >= n:
                raise ValueError(f"{format_key(path[:i])} has {n} item{'s' if n != 1 else ''}; "
                                 f"there is no [{step}]")
        elif i and parent is not MISSING and parent is not None and not isinstance(parent, dict):
            # (an earlier value replaced the mapping: validation would refuse it anyway)
            raise ValueError(f"{format_key(path[:i])} is not a mapping here (it was set to "
                             f"{parent!r}), so it has no key {step}")


def apply_overrides(data: dict, overrides: Mapping[str, Any]) -> dict:
    """``data`` (a raw scenario mapping) with an override mapping applied; see the module
    docstring for the syntax. Raises ScenarioError naming each bad key."""
    return apply(data, flatten(overrides))


def parse_assignments(items: Sequence[str]) -> list[Override]:
    """``["referrals.dispersion=8", "treatment.hazard_ratio_after={power: 0.5}"]`` (the
    ``--set`` options) -> Overrides; each value is read as YAML (numbers, dates, null,
    flow mappings), as a scenario file is: YAML 1.2 scalars, and the same limits on
    size, nesting and aliases (yamlfiles.load_yaml)."""
    out, problems = [], []
    for item in items:
        origin = (f"--set {item}", None)
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(problem_at(origin, key.strip(), "expected KEY=VALUE, e.g. "
                                       "referrals.per_team_per_month=4 or 'KEY={scale: 0.7}'"))
            continue
        try:
            value = load_yaml(text) if text.strip() else None
        except YamlLimit as exc:
            problems.append(problem_at(origin, key.strip(), yaml_error_text(exc)))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (at character {mark.column + 1})" if mark and not mark.line else ""
            problems.append(problem_at(origin, key.strip(), f"value is not valid YAML: "
                                       f"{yaml_error_text(exc)}{where}"))
            continue
        except RecursionError:   # not expected within yamlfiles.MAX_DEPTH: a last guard
            problems.append(problem_at(origin, key.strip(), "value nested too deeply"))
            continue
        try:
            out.extend(flatten({key.strip(): value}, origin))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return out
