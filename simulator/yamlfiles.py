"""Scenario files as YAML: text in, data and its node tree out, and every problem placed
at its file, line and key.

YAML is read with PyYAML's SafeLoader only, so a Python object tag is refused
without anything being executed. Every problem (YAML syntax, duplicate keys,
schema violations) is reported with the file, the line and the key path, all
at once, so a user fixes a file in one pass.

This is the bottom layer of reading a scenario: :mod:`simulator.overrides` and
:mod:`simulator.compose` build on it, and :mod:`simulator.loader` (``load_scenario``)
on them; the loader re-exports what is public here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .schema import Scenario


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '<top>'}: {self.message}"


class YamlLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, reading numbers as YAML 1.2 does: PyYAML follows YAML 1.1,
    where a float needs a dot and a signed exponent, so ``7.1e6`` or ``1e-3`` would be
    text, and a cap of ``7.1e6`` an error."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
                  |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _construct_timestamp(loader, node):
    """A date or time as PyYAML makes it, but an impossible one (2013-02-30) is a YAML
    error at its line, not a ValueError from deep inside the parser."""
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a calendar date ({exc})", node.start_mark) \
            from None


YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig"))


def decode_text(raw: bytes) -> str:
    """A scenario file's text: UTF-8, or UTF-16/32 when it starts with their byte-order
    mark (Windows editors and PowerShell's redirection write UTF-16). Bytes that are not
    text become U+FFFD, so the parser reports where they are."""
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            return raw.decode(codec, errors="replace")
    return raw.decode("utf-8", errors="replace")


def read_text(path: str | Path) -> str:
    return decode_text(Path(path).read_bytes())


def load_yaml(text: str) -> Any:
    """Plain YAML (no Python object tags) to Python values, numbers as in YAML 1.2."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader


def compose_yaml(text: str):
    """The node tree of ``text`` (for line numbers), resolved as :func:`load_yaml` does."""
    return yaml.compose(text, Loader=YamlLoader)


class ScenarioError(Exception):
    """One or more problems in scenario files."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    sha256: str


# --------------------------------------------------------------------------- YAML
def parse_yaml(file: str, text: str):
    """The data and node tree of ``file``'s ``text``: ScenarioError unless a mapping."""
    try:
        root = compose_yaml(text)
        data = load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        if "python/" in msg or "could not determine a constructor" in msg:
            msg = "unsafe or unknown YAML tag refused (only plain YAML is allowed): " + msg
        raise ScenarioError([Problem(file, line, "", msg)]) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, None, "", f"invalid YAML: {exc}")]) from exc
    except RecursionError:   # PyYAML's composer recurses once per level of nesting
        raise ScenarioError([Problem(file, None, "", "YAML nested too deeply (a scenario "
                                     "is a few levels deep)")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(file, 1, "", "a scenario file must be a mapping of sections")])
    _check_aliases(file, root)
    duplicates = list(_duplicate_keys(file, root, ""))
    if duplicates:
        raise ScenarioError(duplicates)
    return data, root


# A scenario file is a few hundred values; YAML aliases (*name, repeating an &name
# anchor) could make a short file stand for billions, which every later step would
# walk ("billion laughs"), or for an endless one (an alias inside its own anchor).
MAX_EXPANDED_NODES = 100_000


def _check_aliases(file: str, root) -> None:
    """Refuse a file whose aliases make it recursive or expand it past MAX_EXPANDED_NODES.
    An alias is the anchored node itself, so sizes are counted once a node (linear)."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()

    def expanded(node) -> int:
        key = id(node)
        if key in size:
            return size[key]
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise ScenarioError([Problem(file, line, "", "a YAML alias refers to the anchored "
                                         "value it is inside (a recursive value)")])
        open_nodes.add(key)
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        total = 1
        for child in children:
            total += expanded(child)
            if total > MAX_EXPANDED_NODES:
                raise ScenarioError([Problem(
                    file, node.start_mark.line + 1, "",
                    f"YAML aliases expand this file past {MAX_EXPANDED_NODES:,} values "
                    f"(a scenario has a few hundred): refused")])
        open_nodes.discard(key)
        size[key] = total
        return total

    expanded(root)


def _duplicate_keys(file: str, node, path: str):
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            sub = f"{path}.{key}" if path else str(key)
            if key in seen:
                yield Problem(file, key_node.start_mark.line + 1, sub, "duplicate key")
            seen.add(key)
            yield from _duplicate_keys(file, value_node, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(file, item, f"{path}[{i}]")


_KEY_IN_TEXT = re.compile(r"\b[a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)+")


def named_keys(message: str) -> list[tuple]:
    """The key paths a validation message names in full, in order
    (``workforce.teams[1].start_date`` -> ``("workforce", "teams", 1, "start_date")``):
    the keys a check across keys (a section's or the scenario's validator, whose error
    has no key of its own) is about."""
    return [tuple(int(p[1:-1]) if p.startswith("[") else p
                  for p in re.findall(r"[a-z_]+|\[\d+\]", text))
            for text in _KEY_IN_TEXT.findall(message)]


def problem_from_error(file: str, root, err: dict[str, Any]) -> Problem:
    """Map a pydantic error location onto the YAML node tree for a line number; a check
    across keys is placed at the first key its message names that the file sets."""
    loc = list(err["loc"])
    if len(loc) <= 1 and err["type"] == "value_error" and root is not None:
        for path in named_keys(err["msg"]):
            if _node_at(root, path) is not None:
                loc = list(path)
                break
    node, line = root, root.start_mark.line + 1 if root is not None else None
    parts: list[str] = []
    for i, step in enumerate(loc):
        child = _child(node, step)
        if child is None:
            # Discriminator tags and union branch names are not in the file; a final
            # missing field is, so show it in the key path.
            if i == len(loc) - 1 and err["type"] == "missing":
                parts.append(str(step))
            continue
        key_node, node = child
        line = (key_node or node).start_mark.line + 1
        parts.append(f"[{step}]" if isinstance(step, int) else str(step))
    key = ".".join(parts).replace(".[", "[")
    return Problem(file, line, key, error_message(err))


def error_message(err: dict[str, Any]) -> str:
    """A pydantic error's message as a user reads it."""
    if err["type"] == "extra_forbidden":
        return "unknown key (check its spelling; unknown keys are not allowed)"
    if err["type"] == "missing":
        return "required key is missing"
    message = err["msg"]
    return message[len("Value error, "):] if message.startswith("Value error, ") else message


def _node_at(root, path: tuple):
    node = root
    for step in path:
        child = _child(node, step)
        if child is None:
            return None
        node = child[1]
    return node


def _child(node, step):
    if isinstance(node, yaml.MappingNode) and isinstance(step, str):
        for key_node, value_node in node.value:
            if key_node.value == step:
                return key_node, value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        return None, node.value[step]
    return None
