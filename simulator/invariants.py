"""Financial invariants, checked on every run beside the conservation checks.

Conservation (:func:`simulator.engine.check_conservation`) proves that the cash
balances; these prove that it means what a contract says: nothing is called,
paid or charged after wind-up; nothing is distributed beyond the cash in hand;
capital drawn stays within the commitment; a quarter calls no more than its rule
allows (its shortfall below the cash it must hold, rounded up to whole tranches,
or its scheduled draw); at wind-up the SPV has handed back everything, so
distributions = capital drawn + outcome payments - costs paid.

A numba kernel finds each path's worst breach of each invariant (a pass over the
calendar-quarter outputs, on all cores); a breach raises
:class:`FinancialInvariantError` naming the path, the quarter and the amount.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

from . import layout as L
from .jit_cache import FASTMATH

if TYPE_CHECKING:
    from .engine import Layout

# What each invariant's excess measures (pounds above zero are a breach), in the order
# of the kernel's columns.
INVARIANTS = (
    "capital called in or after the wind-up quarter",
    "outcome payments after wind-up",
    "costs charged after wind-up",
    "cash distributed after wind-up",
    "cash left in the SPV at wind-up",
    "a negative call or distribution",
    "cash distributed beyond the cash in hand",
    "costs paid beyond the costs due",
    "cash distributed before the distribution start",
    "the reserve distributed before wind-up",
    "capital drawn beyond the commitment",
    "a call beyond what the quarter's rule allows",
    "distributions = capital drawn + outcome payments - costs paid, over the bond",
)


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
    worst, at = breaches(np.ascontiguousarray(cal), cfg, lay.call_schedule, tol)
    bad = worst > tol
    if not bad.any():
        return
    which = int(np.argmax(bad.any(axis=0)))   # the first invariant broken, on its first path
    path = int(np.argmax(bad[:, which]))
    raise FinancialInvariantError(
        f"financial invariant failed: {INVARIANTS[which]} (path {path_start + path}, quarter "
        f"from {lay.calendar_quarters[at[path, which]]}: £{worst[path, which]:,.2f}; "
        f"{int(bad[:, which].sum()):,} path(s) in all)")


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
def breaches(cal, cfg, schedule, tol):
    """(worst excess, its quarter) of each invariant (columns, INVARIANTS' order), path by
    path: two (paths, invariants) arrays."""
    n = cal.shape[0]
    worst = np.zeros((n, len(INVARIANTS)))
    at = np.zeros((n, len(INVARIANTS)), np.int64)
    for i in prange(n):
        _path_breaches(cal[i], cfg, schedule, tol, worst[i], at[i])
    return worst, at


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _path_breaches(c, cfg, schedule, tol, worst, at):
    """One path's worst excess of each invariant, and its quarter."""
    n_q = c.shape[0]
    wind_up = int(cfg[L.C_WIND_UP_Q])
    dist_from = int(cfg[L.C_DISTRIBUTION_FROM_Q])
    opening = 0.0
    drawn = 0.0
    settled = 0.0
    for k in range(n_q):
        calls = c[k, L.K_CAPITAL_CALLS]
        pay = c[k, L.K_OUTCOME_PAYMENTS]
        costs = c[k, L.K_SERVICE_COSTS]
        paid = c[k, L.K_COSTS_PAID]
        to_investors = c[k, L.K_DISTRIBUTIONS_INVESTORS]
        to_provider = c[k, L.K_DISTRIBUTIONS_PROVIDER]
        out = to_investors + to_provider
        balance = c[k, L.K_SPV_BALANCE]
        drawn += calls
        settled += calls + pay - paid - out
        keep = _hold(c, cfg[L.C_RESERVE], k, wind_up)
        floor = keep if k < dist_from else _hold(c, 0.0, k, wind_up)
        need = max(floor - (opening + pay - costs), 0.0)
        if cfg[L.C_TRANCHE] > 0.0:
            need = np.ceil(need / cfg[L.C_TRANCHE] - 1e-12) * cfg[L.C_TRANCHE]
        after = k > wind_up
        _worse(worst, at, 0, calls if k >= wind_up else 0.0, k)
        _worse(worst, at, 1, abs(pay) if after else 0.0, k)
        _worse(worst, at, 2, costs if after else 0.0, k)
        _worse(worst, at, 3, out if after else 0.0, k)
        _worse(worst, at, 4, abs(balance) if k >= wind_up else 0.0, k)
        _worse(worst, at, 5, -min(calls, to_investors, to_provider), k)
        _worse(worst, at, 6, -balance, k)
        _worse(worst, at, 7, paid - costs, k)
        _worse(worst, at, 8, out if k < min(dist_from, wind_up) else 0.0, k)
        _worse(worst, at, 9, keep - balance if out > tol and k < wind_up else 0.0, k)
        _worse(worst, at, 10, drawn - cfg[L.C_COMMITMENT], k)
        _worse(worst, at, 11, calls - max(need, schedule[k]), k)
        if k == min(wind_up, n_q - 1):
            _worse(worst, at, 12, abs(settled), k)
        opening = balance
    if wind_up < n_q - 1:   # what moved after the wind-up quarter is in the bond too
        _worse(worst, at, 12, abs(settled), n_q - 1)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _hold(c, reserve, k, wind_up):
    """The cash the SPV keeps at the end of quarter k (waterfall.reserve_target)."""
    if k >= wind_up:
        return 0.0
    if k == wind_up - 1 and wind_up < c.shape[0]:
        return max(reserve, c[wind_up, L.K_SERVICE_COSTS] - c[wind_up, L.K_OUTCOME_PAYMENTS])
    return reserve


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _worse(worst, at, j, excess, k):
    if excess > worst[j]:
        worst[j] = excess
        at[j] = k
