"""Monte Carlo cash-flow simulator for social impact bonds.

The Python API (:mod:`simulator.api`): :func:`load_scenario`, :func:`simulate` and the
:class:`Result` it returns, whose ``paths`` and ``quarters`` are pandas frames;
:func:`run_batch` and its :class:`Batch`; :func:`design_contract`.
Imported on first use, so that ``import simulator`` (and the ``sibsim`` command's
start) does not load numba and pandas for nothing.
"""
from .version import __version__

_API = ("Batch", "ContractDesign", "Result", "ScenarioError", "design_contract",
        "load_scenario", "run_batch", "simulate")
__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
