"""The ``sibsim`` command's entry point (``sibsim``, ``python -m simulator``).

It pauses Python's garbage collector before anything else is imported; the command
group resumes it once the subcommand's modules are imported (:mod:`simulator.collector`
says why). The group (:mod:`simulator.cli`) is imported here, inside :func:`main`, so
that importing this module costs nothing.
"""
from __future__ import annotations

from .collector import pause_collector, resume_collector

__all__ = ["main", "pause_collector", "resume_collector"]


def main() -> None:
    """The ``sibsim`` console script (and ``python -m simulator``)."""
    pause_collector()
    from .cli import main as cli  # the group resumes the collector (see cli.main)

    cli()
