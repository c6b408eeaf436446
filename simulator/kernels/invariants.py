"""Each path's worst breach of each financial invariant (layout.INVARIANTS), in one pass
over its calendar-quarter outputs; :mod:`simulator.invariants` raises on them."""
import numpy as np
from numba import njit

from .. import layout as L
from ..layout import INVARIANTS
from .cache import FASTMATH, INNER


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def breaches(cal, cfg, schedule, tol):
    """(worst excess, its quarter) of each invariant (columns, INVARIANTS' order), path by
    path: two (paths, invariants) arrays. One thread (a parallel loop compiled for
    longer), the GIL released: a run works out its figures meanwhile."""
    n = cal.shape[0]
    worst = np.zeros((n, len(INVARIANTS)))
    at = np.zeros((n, len(INVARIANTS)), np.int64)
    for i in range(n):
        _path_breaches(cal[i], cfg, schedule, tol, worst[i], at[i])
    return worst, at


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
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
