"""Scenario files as YAML: text in, data and its node tree out, and every problem placed
at its file, line and key.

One input policy for scenario files and ``--set`` values alike:

- a scenario file is a regular file (a FIFO, a device or a directory is refused before
  it is opened for reading) of at most :data:`MAX_FILE_BYTES`, read once, and never
  more than that;
- YAML is parsed once, by libyaml's C parser when PyYAML has it (else PyYAML's own),
  into a node tree built here without recursion, so that nesting deeper than
  :data:`MAX_DEPTH` is refused at its line rather than exhausting the stack; aliases
  that would make the text stand for more than :data:`MAX_EXPANDED_NODES` further
  values, or for an endless one, are refused; the data is then constructed from that
  tree (SafeConstructor: a Python object tag is refused without anything being
  executed);
- scalars are read as YAML 1.2 reads them (the README's promise): ``true``/``false``
  are the booleans (``yes``, ``no``, ``on``, ``off`` are text), ``010`` is ten (``0o10``
  is octal), ``1:30`` is text, and ``7.1e6`` is a number; dates are dates, as before.
  A text where the schema wants a number or a flag is refused there, at its line.
- a file that does not parse, or whose top level is not a mapping naming a scenario
  section, is "not a scenario file", and none of its lines is quoted back.

Every problem (YAML syntax, duplicate keys, schema violations) is reported with the
file, the line and the key path, all at once, so a user fixes a file in one pass.

This is the bottom layer of reading a scenario: :mod:`simulator.overrides` and
:mod:`simulator.compose` build on it, and :mod:`simulator.loader` (``load_scenario``)
on them.
"""
from __future__ import annotations

import copy
import errno
import os
import re
import stat
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver, Resolver
from yaml.scanner import Scanner

from .schema import Scenario

try:   # libyaml's parser: PyYAML's own is some 20 times slower
    from yaml.cyaml import CParser as _CParser
except ImportError:   # PyYAML built without libyaml
    _CParser = None

# A scenario file is a few KB (the Essex one, every value cited, is 13 KB).
MAX_FILE_BYTES = 1 << 20
# A scenario is a few levels deep (stresses.name.key.{dist: ...}); deeper nesting is not
# a scenario, and would take the stack of every step that walks it.
MAX_DEPTH = 32
# A scenario file is a few hundred values; YAML aliases (*name, repeating an &name
# anchor) could make a short text stand for billions, which every later step would
# walk ("billion laughs"), or for an endless one (an alias inside its own anchor).
MAX_EXPANDED_NODES = 100_000
# A scenario file names at least one of these at its top level (see scenario_file_problem).
SCENARIO_SECTIONS = ("calendar", "referrals", "workforce", "treatment", "young_people", "care")

_INT, _FLOAT, _BOOL = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                       "tag:yaml.org,2002:bool")
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        file = _shown(self.file, 200)
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {_shown(self.key, 200) or '<top>'}: {_shown(self.message, 500)}"


def _shown(text: str, limit: int) -> str:
    """``text`` on one line and at most about ``limit`` characters: a problem is one line
    of the terminal, whatever a --set value or a key holds."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters)"
    return text


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


# --------------------------------------------------------------------------- reading files
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _not_regular(mode: int, kind: str) -> str | None:
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in _KINDS if test(mode)), "something else")
    return f"not a {kind}: {what}, not a regular file"


def _too_big(size: int | None, kind: str) -> str:
    was = f"{size:,} bytes" if size is not None else "larger than that"
    return (f"file is {was}; a {kind} is at most {MAX_FILE_BYTES // (1 << 20)} MB "
            f"(real ones are a few KB): refused unread")


def _os_problem(exc: OSError) -> str:
    why = exc.strerror or str(exc)
    if exc.errno == getattr(errno, "ELOOP", None):
        why += " (a loop of symbolic links)"
    return f"cannot read file: {why}"


def read_bytes(path: str | Path, kind: str = "scenario file") -> bytes:
    """The bytes of the scenario (or targets: ``kind``) file ``path``, read once;
    ScenarioError, one line naming the file, unless it is a regular file of at most
    MAX_FILE_BYTES (a FIFO or a device is refused before it is opened: reading one could
    block for ever or never end; a bigger file is refused without reading it)."""
    file = str(path)

    def refuse(message: str):
        raise ScenarioError([Problem(file, None, "", message)])

    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:   # ValueError: a NUL in the name
        refuse(_os_problem(exc) if isinstance(exc, OSError) else f"cannot read file: {exc}")
    if why := _not_regular(st.st_mode, kind):
        refuse(why)
    if st.st_size > MAX_FILE_BYTES:
        refuse(_too_big(st.st_size, kind))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:   # non-blocking: the path may have become a FIFO since it was looked at
        fd = os.open(path, flags)
    except OSError as exc:
        refuse(_os_problem(exc))
    try:
        st = os.fstat(fd)
        if why := _not_regular(st.st_mode, kind):
            refuse(why)
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        refuse(_os_problem(exc))
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > MAX_FILE_BYTES:   # it grew since it was looked at
        refuse(_too_big(None, kind))
    return raw


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


def read_text(path: str | Path, kind: str = "scenario file") -> str:
    """The text of a scenario (or targets) file, by the rules of :func:`read_bytes`."""
    return decode_text(read_bytes(path, kind))


# --------------------------------------------------------------------------- YAML 1.2 scalars
class Resolver12(BaseResolver):
    """Plain scalars typed as YAML 1.2 (core schema) types them, not as PyYAML's YAML 1.1:
    ``true``/``false`` only are booleans (``yes``, ``no``, ``on``, ``off`` are text);
    integers are decimal whatever their leading zeros (``010`` is ten; ``0o10`` octal and
    ``0x1f`` hexadecimal); ``1:30`` (YAML 1.1's base 60) is text; a float needs no dot
    before its exponent (``7.1e6``). Kept from YAML 1.1: ``_`` between digits
    (``100_000``), dates (``2013-04-01``), null (``~``, ``null``, empty) and ``<<`` merges.
    """


_DIGITS = r"[0-9][0-9_]*"
Resolver12.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Resolver12.add_implicit_resolver(
    _INT, re.compile(rf"^(?:[-+]?{_DIGITS}|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
Resolver12.add_implicit_resolver(
    _FLOAT, re.compile(rf"""^(?:[-+]?(?:{_DIGITS}\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
                          |[-+]?{_DIGITS}[eE][-+]?[0-9]+
                          |[-+]?\.(?:inf|Inf|INF)
                          |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
for _first, _resolvers in Resolver.yaml_implicit_resolvers.items():   # as PyYAML has them
    for _tag, _regexp in _resolvers:
        if _tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp", _MERGE):
            Resolver12.add_implicit_resolver(_tag, _regexp, [_first])


# --------------------------------------------------------------------------- the node tree
class YamlLimit(yaml.MarkedYAMLError):
    """YAML refused for its size or shape (nesting, aliases, characters), at its line."""

    def __init__(self, problem: str, mark):
        super().__init__(None, None, problem, mark)


_TOO_DEEP = (f"YAML nested too deeply: more than {MAX_DEPTH} levels (a scenario is a few "
             f"levels deep)")


class _Composer:
    """The node tree of the one document in the stream, from the parser's events, built
    with a stack of its own (PyYAML's composers recurse once per level, in C for libyaml,
    so that deep nesting ends the process or in a RecursionError). Counts the nodes,
    aliases and merge keys it makes, for the checks that follow."""

    nodes = aliases = merges = 0

    def get_single_node(self):
        try:
            return self._compose_stream()
        except yaml.MarkedYAMLError as exc:
            if "maximum nesting depth" in str(exc.problem):   # libyaml's own limit, 1,000
                raise YamlLimit(_TOO_DEEP, exc.problem_mark) from None
            raise

    def _compose_stream(self):
        self.get_event()                     # stream start
        node = None
        if not self.check_event(StreamEndEvent):
            node = self._compose_document()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise ComposerError("expected a single document in the stream",
                                node.start_mark if node is not None else None,
                                "but found another document", event.start_mark)
        self.get_event()                     # stream end
        return node

    def _compose_document(self):
        self.get_event()                     # document start
        anchors: dict[str, Any] = {}
        stack: list[list] = []               # open collections: [node, key awaiting its value]
        while True:
            event = self.get_event()
            if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                node = stack.pop()[0]
                node.end_mark = event.end_mark
            elif isinstance(event, AliasEvent):
                node = anchors.get(event.anchor)
                if node is None:
                    raise ComposerError(None, None, "found an alias (*) whose anchor (&) is "
                                        "not defined before it", event.start_mark)
                self.aliases += 1
            else:
                anchor, tag = event.anchor, event.tag
                if anchor is not None and anchor in anchors:
                    first = anchors[anchor].start_mark.line + 1
                    raise ComposerError(None, None, f"found a second anchor (&) of the same "
                                        f"name as the one at line {first}", event.start_mark)
                if isinstance(event, ScalarEvent):
                    if tag is None or tag == "!":
                        tag = self.resolve(ScalarNode, event.value, event.implicit)
                    node = ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                                      style=event.style)
                else:
                    kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
                    if tag is None or tag == "!":
                        tag = self.resolve(kind, None, event.implicit)
                    node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
                self.nodes += 1
                if anchor is not None:
                    anchors[anchor] = node
                if not isinstance(node, ScalarNode):
                    if len(stack) >= MAX_DEPTH:
                        raise YamlLimit(_TOO_DEEP, event.start_mark)
                    stack.append([node, None])
                    continue
            if not stack:
                break
            top = stack[-1]
            if isinstance(top[0], SequenceNode):
                top[0].value.append(node)
            elif top[1] is None:
                top[1] = node
                self.merges += node.tag == _MERGE
            else:
                top[0].value.append((top[1], node))
                top[1] = None
        self.get_event()                     # document end
        return node


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor, with YAML 1.2 integers, and a value it cannot make (an
    impossible date, ``!!float x``) a YAML error at its line, not a ValueError from deep
    inside the parser."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            raise ConstructorError(None, None, f"cannot read this value as "
                                   f"{node.tag.rsplit(':', 1)[-1]}{why}",
                                   node.start_mark) from None

    def construct_yaml_int(self, node):
        value = self.construct_scalar(node).replace("_", "")
        if value[:2] in ("0o", "0x"):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value, 10)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            raise ConstructorError(None, None, f"{node.value!r} is not a calendar date ({exc})",
                                   node.start_mark) from None


_Constructor.add_constructor(_INT, _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


class _PyParser(Reader, Scanner, Parser):
    def __init__(self, stream):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


class PyYamlLoader(_Composer, _PyParser, _Constructor, Resolver12):
    """The loader on PyYAML's own (pure Python) parser."""

    def __init__(self, stream):
        _PyParser.__init__(self, stream)
        _Constructor.__init__(self)
        Resolver12.__init__(self)


if _CParser is not None:
    class CYamlLoader(_Composer, _CParser, _Constructor, Resolver12):
        """The loader on libyaml's parser (the same events, marks and errors, faster)."""

        def __init__(self, stream):
            _CParser.__init__(self, stream)
            _Constructor.__init__(self)
            Resolver12.__init__(self)

    YamlLoader: type = CYamlLoader
else:
    YamlLoader = PyYamlLoader


# Characters YAML does not allow in a stream: a binary file, not a typo.
_NOT_YAML = re.compile(r"[^\t\n\r\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _loader(text: str, what: str):
    """A loader for ``text`` after the checks that need no parsing."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlLimit(f"YAML {what} longer than {MAX_FILE_BYTES // (1 << 20)} MB (a scenario "
                        f"is a few KB): refused", None)
    bad = _NOT_YAML.search(text)
    if bad:
        line = text.count("\n", 0, bad.start())
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1)
        raise YamlLimit(f"character U+{ord(bad.group()):04X} is not allowed in YAML (is it a "
                        f"text file?)", yaml.Mark(what, bad.start(), line, column, None, None))
    return YamlLoader(text)


def _check_expansion(root, written: int, what: str) -> None:
    """Refuse a tree whose aliases make it recursive, stand for more than
    MAX_EXPANDED_NODES values beyond the ``written`` ones, or nest deeper than MAX_DEPTH.
    An alias is the anchored node itself, so each node is sized once (linear); the walk
    follows the text (an anchor comes before its aliases), so it is as deep as the text."""
    size: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    limit = written + MAX_EXPANDED_NODES

    def expanded(node) -> tuple[int, int]:
        key = id(node)
        if key in size:
            return size[key]
        if key in open_nodes:
            raise YamlLimit("a YAML alias refers to the anchored value it is inside "
                            "(a recursive value)", node.start_mark)
        if isinstance(node, ScalarNode):
            return 1, 0
        open_nodes.add(key)
        children = ([n for pair in node.value for n in pair] if isinstance(node, MappingNode)
                    else node.value)
        total, depth = 1, 0
        for child in children:
            n, d = expanded(child)
            total, depth = total + n, max(depth, d)
            if total > limit:
                raise YamlLimit(f"YAML aliases expand this {what} past "
                                f"{MAX_EXPANDED_NODES:,} values (a scenario has a few "
                                f"hundred): refused", node.start_mark)
        if depth + 1 > MAX_DEPTH:
            raise YamlLimit(f"YAML aliases nest this {what} too deeply: more than {MAX_DEPTH} "
                            f"levels (a scenario is a few levels deep)", node.start_mark)
        open_nodes.discard(key)
        size[key] = total, depth + 1
        return size[key]

    expanded(root)


def _construct(loader, root):
    # PyYAML's merge (<<) rewrites the mappings it merges into: construct from a copy,
    # so that the tree keeps the lines of the text
    return loader.construct_document(copy.deepcopy(root) if loader.merges else root)


def load_yaml(text: str, what: str = "value") -> Any:
    """Plain YAML (no Python object tags) to Python values, scalars as in YAML 1.2, within
    the limits of a scenario file (a ``--set`` value is one); yaml.YAMLError otherwise
    (a YamlLimit for a limit)."""
    loader = _loader(text, what)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if loader.aliases:
            _check_expansion(root, loader.nodes, what)
        return _construct(loader, root)
    finally:
        loader.dispose()


def compose_yaml(text: str):
    """The node tree of ``text`` (for line numbers), resolved as :func:`load_yaml` does."""
    loader = _loader(text, "file")
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML error on one line, without the line of text it was found in."""
    if isinstance(exc, yaml.MarkedYAMLError):
        text = ", ".join(str(x) for x in (exc.context, exc.problem) if x)
    else:
        text = str(exc)
    return " ".join(text.split()) or type(exc).__name__


def yaml_error_line(exc: yaml.YAMLError) -> int | None:
    mark = (exc.problem_mark or exc.context_mark) if isinstance(exc, yaml.MarkedYAMLError) \
        else None
    return mark.line + 1 if mark is not None else None


# --------------------------------------------------------------------------- YAML files
def scenario_file_problem(keys: Sequence) -> str | None:
    """None if a top-level mapping with ``keys`` is a scenario's, else why not (naming no
    key: the file may be anything). The rule: a scenario's top level has ``extends:`` or
    one of the scenario's required sections (SCENARIO_SECTIONS)."""
    keys = set(k for k in keys if isinstance(k, str))
    if "extends" in keys or keys & set(SCENARIO_SECTIONS):
        return None
    if "targets" in keys:
        return ("a calibration targets file, not a scenario: give it to sibsim calibrate "
                "SCENARIO --targets FILE")
    return ("not a scenario file: its top level has no extends: and none of the sections "
            + ", ".join(f"{s}:" for s in SCENARIO_SECTIONS))


def _top_level_problem(root, kind: str, require) -> str | None:
    if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")):
        return f"not a {kind}: it is empty"
    if not isinstance(root, MappingNode):
        what = "a list" if isinstance(root, SequenceNode) else "a single value"
        return f"not a {kind}: its top level is {what}, not a mapping of keys to values"
    if require is not None:
        return require([k.value for k, _ in root.value if isinstance(k, ScalarNode)])
    return None


def parse_yaml(file: str, text: str, *, kind: str = "scenario file",
               require: Callable[[list], str | None] | None = None):
    """The data and node tree of ``file``'s ``text``; ScenarioError unless it parses (within
    the limits) to a mapping, whose top-level keys ``require`` (if given) accepts.
    A file that does not parse, or is not such a mapping, is "not a ``kind``": what is
    wrong and where, and not a word of its text (it may be any file)."""
    loader = None
    try:
        loader = _loader(text, "file")
        root = loader.get_single_node()
        if loader.aliases:
            _check_expansion(root, loader.nodes, "file")
        problem = _top_level_problem(root, kind, require)
        if problem:
            raise ScenarioError([Problem(file, None, "", problem)])
        duplicates = list(_duplicate_keys(file, root, ""))
        if duplicates:
            raise ScenarioError(duplicates)
        data = _construct(loader, root)
    except yaml.YAMLError as exc:
        msg = yaml_error_text(exc)
        if isinstance(exc, ConstructorError) and ("python/" in msg or "could not determine a "
                                                                      "constructor" in msg):
            msg = "unsafe or unknown YAML tag refused (only plain YAML is allowed): " + msg
        elif not isinstance(exc, (YamlLimit, ConstructorError)):
            msg = f"not valid YAML, so not a {kind}: {msg}"
        raise ScenarioError([Problem(file, yaml_error_line(exc), "", msg)]) from None
    except RecursionError:   # not expected within MAX_DEPTH: a last guard
        raise ScenarioError([Problem(file, None, "", "YAML nested too deeply (a scenario "
                                     "is a few levels deep)")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, root


def parse_scenario(file: str, text: str):
    """:func:`parse_yaml` for a scenario file: its top level must name ``extends:`` or a
    scenario section (scenario_file_problem)."""
    return parse_yaml(file, text, require=scenario_file_problem)


def _duplicate_keys(file: str, node, path: str):
    if isinstance(node, MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                continue   # a list or mapping as a key: the constructor refuses it
            key = key_node.value
            sub = f"{path}.{key}" if path else str(key)
            if key in seen:
                yield Problem(file, key_node.start_mark.line + 1, sub, "duplicate key")
            seen.add(key)
            yield from _duplicate_keys(file, value_node, sub)
    elif isinstance(node, SequenceNode):
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


# key -> (key node, value node) of a mapping node, the first of each key: a file with
# many keys, each with a problem, is then placed in linear time, not quadratic
_KEY_INDEX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _child(node, step):
    if isinstance(node, MappingNode) and isinstance(step, str):
        index = _KEY_INDEX.get(node)
        if index is None:
            index = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode):
                    index.setdefault(key_node.value, (key_node, value_node))
            _KEY_INDEX[node] = index
        return index.get(step)
    if isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
        return None, node.value[step]
    return None
