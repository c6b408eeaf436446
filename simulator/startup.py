"""The ``sibsim`` command's entry point (``sibsim``, ``python -m simulator``).

It pauses Python's garbage collector before anything else is imported; the command
group resumes it once the subcommand's modules are imported (:mod:`simulator.collector`
says why). The group (:mod:`simulator.cli`) is imported here, inside :func:`main`, so
that importing this module costs nothing.
"""
from __future__ import annotations

import os

from .collector import pause_collector, resume_collector

__all__ = ["main", "pause_collector", "resume_collector"]

# numpy asks Linux for huge pages for each array of 4 MB or more. Where Linux makes them
# on demand by compacting memory (transparent huge pages "madvise", a common default),
# filling a large array then takes several times as long, and a large run makes many.
# numpy reads this documented setting when it is imported; a user's own value stands.
HUGE_PAGES = ("NUMPY_MADVISE_HUGEPAGE", "0")


def main() -> None:
    """The ``sibsim`` console script (and ``python -m simulator``)."""
    pause_collector()
    os.environ.setdefault(*HUGE_PAGES)   # before anything imports numpy
    from .cli import main as cli  # the group resumes the collector (see cli.main)

    cli()
