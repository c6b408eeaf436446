"""Python's garbage collector during the ``sibsim`` command's start-up.

Importing numpy, numba, pydantic, pandas and pyarrow makes a few hundred thousand
objects that live as long as the process. Python's cyclic garbage collector walks
all of them at every full collection while they are imported, and several times
more when the interpreter exits: a noticeable part of a command's start and exit.
So the command pauses the collector from its first line until the
modules its subcommand needs are imported, then freezes what is alive
(``gc.freeze``: moved where the collector never looks) and resumes it. Objects made
after that are collected as usual.

Only the command does this: freezing is a process-wide choice, which a library
imported into someone else's program (a notebook, a test run) must not make for it.
The entry point (:mod:`simulator.startup`) pauses; the command group
(:mod:`simulator.cli`) resumes once it knows the subcommand. This module imports
nothing of the package, so both can import it.
"""
from __future__ import annotations

import gc
import importlib

# the modules a subcommand needs, imported while the collector is paused (the command
# modules themselves, simulator.cli.*, are imported with the group)
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
