"""The ``sibsim`` command's start-up: its entry point, and Python's garbage collector.

Importing numpy, numba, pydantic, pandas and pyarrow makes a few hundred thousand
objects that live as long as the process. Python's cyclic garbage collector walks
all of them at every full collection while they are imported, and several times
more when the interpreter exits: about 0.15 s of a command's start and 0.3 s of its
exit on 2 cores. So the command pauses the collector from its first line until the
modules its subcommand needs are imported, then freezes what is alive
(``gc.freeze``: moved where the collector never looks) and resumes it. Objects made
after that are collected as usual.

Only the command does this: freezing is a process-wide choice, which a library
imported into someone else's program (a notebook, a test run) must not make for it.
"""
from __future__ import annotations

import gc
import importlib

# the modules a subcommand needs, imported while the collector is paused
_MODULES = {
    "run": ("simulator.engine", "simulator.run", "simulator.compose"),
    "batch": ("simulator.engine", "simulator.batch"),
    "breakeven": ("simulator.engine", "simulator.stress"),
    "sensitivity": ("simulator.engine", "simulator.stress"),
    "calibrate": ("simulator.engine", "simulator.calibrate"),
    "report": ("simulator.reports",),
    "validate": ("simulator.compose",),
    "baseline": ("simulator.engine", "simulator.baseline", "simulator.compose"),
}

_paused = False


def pause_collector() -> None:
    """Pause the garbage collector (if it runs) until resume_collector."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector(subcommand: str | None) -> None:
    """Import what ``subcommand`` needs, freeze what is alive and resume the collector, if
    pause_collector paused it (otherwise: nothing; the imports happen when used)."""
    global _paused
    if not _paused:
        return
    try:
        for name in _MODULES.get(subcommand or "", ()):
            importlib.import_module(name)
    finally:
        gc.freeze()
        gc.enable()
        _paused = False


def main() -> None:
    """The ``sibsim`` console script (and ``python -m simulator``)."""
    pause_collector()
    from .cli import main as cli   # the group resumes the collector (see cli.main)

    cli()
