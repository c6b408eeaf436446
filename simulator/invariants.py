"""Financial invariants, checked on every run beside the conservation checks.

Conservation (:func:`simulator.engine.check_conservation`) proves that the cash
balances; these prove that it means what a contract says: nothing is called,
paid or charged after wind-up; nothing is distributed beyond the cash in hand;
capital drawn stays within the commitment; a quarter calls no more than its rule
allows (its shortfall below the cash it must hold, rounded up to whole tranches,
or its scheduled draw); at wind-up the SPV has handed back everything, so
distributions = capital drawn + outcome payments - costs paid.

A kernel (:mod:`simulator.kernels.invariants`) finds each path's worst breach of each
invariant (a pass over the calendar-quarter outputs); a breach raises
:class:`FinancialInvariantError` naming the path, the quarter and the amount.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import layout as L
from .kernels.invariants import breaches
from .layout import INVARIANTS

if TYPE_CHECKING:
    from .engine import Layout

class FinancialInvariantError(AssertionError):
    """The waterfall moved money a contract does not allow."""


def tolerance(cfg: np.ndarray) -> float:
    """Pounds of rounding allowed: a penny, and more for commitments of billions."""
    return 0.01 + 1e-9 * cfg[L.C_COMMITMENT]


def check_waterfall(cal: np.ndarray, lay: Layout, path_start: int = 0) -> None:
    """Raise FinancialInvariantError if any path's quarterly cash flows (``cal``: paths,
    calendar quarters, K_*) break an invariant; ``path_start`` numbers the first path."""
    cfg = lay.config
    if cfg[L.C_HAS_FINANCE] < 0.5 or cal.shape[0] == 0:
        return
    tol = tolerance(cfg)
    worst, at = breaches(cal, cfg, lay.call_schedule, tol)
    bad = worst > tol
    if not bad.any():
        return
    which = int(np.argmax(bad.any(axis=0)))   # the first invariant broken, on its first path
    path = int(np.argmax(bad[:, which]))
    raise FinancialInvariantError(
        f"financial invariant failed: {INVARIANTS[which]} (path {path_start + path}, quarter "
        f"from {lay.calendar_quarters[at[path, which]]}: £{worst[path, which]:,.2f}; "
        f"{int(bad[:, which].sum()):,} path(s) in all)")
