"""Monte Carlo cash-flow simulator for social impact bonds.

The Python API (:mod:`simulator.api`): :func:`load_scenario`, :func:`simulate` and the
:class:`Result` it returns, whose ``paths`` and ``quarters`` are pandas frames.
Imported on first use, so that ``import simulator`` (and the ``sibsim`` command's
start) does not load numba and pandas for nothing.
"""
from .version import __version__

__all__ = ["Result", "__version__", "load_scenario", "simulate"]


def __getattr__(name: str):
    if name in ("Result", "load_scenario", "simulate"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
