"""Where each input of a scenario comes from: the comment on the line that sets it.

Scenario files cite a source on the line of each value ("# [REES2019] Section 5: ...")
or mark it ``ASSUMPTION`` (not published) or ``FITTED`` (by ``sibsim calibrate``). The
loader records the file and line of every key, so the comment is read back from there;
a key without a comment of its own takes its enclosing key's (a list of teams is cited
once, above the list). Reports and workbooks show each input beside its source.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from .overrides import format_key

CITED = re.compile(r"(?<![\w\]\[])\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\]")
_COMMENT = re.compile(r"\s#\s?(.*)$")


class Source(NamedTuple):
    """An input's source: its kind (FITTED, ASSUMPTION, CITED, SET or DEFAULT), the
    comment that says so, and where it was set (file:line)."""

    kind: str
    note: str
    where: str


DEFAULT = Source("DEFAULT", "the schema's default (not set by the scenario)", "")


def input_sources(origins: dict) -> dict[str, Source]:
    """The source of every key the scenario set, by its dotted key
    (``workforce.teams[0].therapists``), from the loader's ``origins``
    (key path -> (file, line))."""
    files: dict[str, tuple[str, ...]] = {}

    def comment(file: str, line: int) -> str:
        if file not in files:
            files[file] = _lines(file)
        return _comment(files[file], line)
    return {format_key(path): _source(path, origins, comment) for path in origins}


def source_of(key: str, sources: dict[str, Source]) -> Source:
    """The source of ``key``, or the schema default's when the scenario did not set it."""
    return sources.get(key, DEFAULT)


def _source(path: tuple, origins: dict, comment) -> Source:
    file, line = origins[path]
    if line is None:   # --set on the command line, or an override from Python
        return Source("SET", str(file), str(file))
    note = comment(file, line)
    for depth in range(len(path) - 1, 0, -1):   # the enclosing keys', when silent
        if _kind(note) != "UNSOURCED":
            break
        outer = origins.get(path[:depth])
        if outer and outer[1] is not None:
            note = " ".join(t for t in (note, comment(*outer)) if t)
    return Source(_kind(note), note, f"{file}:{line}")


def _kind(note: str) -> str:
    if "FITTED" in note:
        return "FITTED"
    if "ASSUMPTION" in note:
        return "ASSUMPTION"
    return "CITED" if CITED.search(note) else "UNSOURCED"


def _comment(lines: tuple[str, ...], line: int) -> str:
    """The comment ending line ``line`` (1-based); a '#' inside quotes is not one."""
    if not 0 < line <= len(lines):
        return ""
    text = lines[line - 1]
    blanked = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: "_" * len(m.group()), text)
    found = _COMMENT.search(blanked)
    return text[found.start(1):].strip() if found else ""


def _lines(file: str) -> tuple[str, ...]:
    try:
        return tuple(Path(file).read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeError):
        return ()
