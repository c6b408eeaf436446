"""Many paths: a chunk of paths on several threads, and the per-path totals the
reconciliation checks compare."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..layout import (
    K_CAPITAL_CALLS,
    K_CARE_COUNTERFACTUAL,
    K_CARE_TREATED,
    K_CHILD_DAYS,
    K_COSTS_PAID,
    K_DISTRIBUTIONS_INVESTORS,
    K_DISTRIBUTIONS_PROVIDER,
    K_OUTCOME_PAYMENTS,
    K_SPV_BALANCE,
    N_T,
    Q_CARE_COUNTERFACTUAL,
    Q_CARE_TREATED,
    Q_CHILD_DAYS,
    T_CARE_COUNTERFACTUAL,
    T_CARE_OVER_CHILD,
    T_CARE_TREATED,
    T_CASH_IMBALANCE,
    T_CHILD_DAYS,
    T_QSR_CHILD_DAYS,
    Outputs,
)
from .cache import FASTMATH, path_kernel
from .path import EVENTS_FULL, PATH_DONE, simulate_path
from .work import EVENTS_FIRST, WORKSPACE_FIRST, workspace


@intrinsic
def _fetch_add(typingctx, counter, n):
    """Atomically add n to counter[0]; returns its value before (threads share it)."""
    if counter != types.Array(types.int64, 1, "C") or not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                       [context.get_constant(types.intp, 0)])
        add = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.atomic_rmw("add", ptr, add, "monotonic")
    return types.int64(counter, n), codegen


PATHS_PER_TAKE = 8


def run_chunk(seed, path_start, params, scenario, outputs, threads):
    """Simulate paths path_start .. path_start + len(params) - 1 into ``outputs`` (an
    Outputs of their rows) on ``threads`` threads, each running simulate_chunk.

    Each path zeroes and then writes only its own rows, so the result is the same
    for any number of threads, any split of paths into chunks and whatever the
    output memory held before. Threads take paths a few at a time from a shared
    counter, rather than a fixed share each: on a shared machine one core can run
    slower than the other for a while, and a fixed half would leave the faster one
    waiting. The kernel releases the GIL, so Python's threads run it in parallel.
    """
    taken = np.zeros(1, np.int64)
    workers = max(min(threads, -(-params.shape[0] // PATHS_PER_TAKE)), 1)
    if workers == 1:
        _thread_share(taken, seed, path_start, params, scenario, outputs)
        return
    with ThreadPoolExecutor(workers) as pool:
        done = [pool.submit(_thread_share, taken, seed, path_start, params, scenario, outputs)
                for _ in range(workers)]
        for worker in done:
            worker.result()


def _thread_share(taken, seed, path_start, params, scenario, outputs):
    """One thread's share of a chunk (simulate_chunk), in a workspace grown here to what
    its paths need, whenever the kernel stops for more room. Allocated here, the kernel
    needs no reference counting, which lets simulate_path compile inside it."""
    ws = workspace(WORKSPACE_FIRST)
    ev_cap = np.int64(EVENTS_FIRST)
    span = np.zeros(2, np.int64)   # the paths [a, b) of the thread's take not yet done
    cal = np.empty(outputs.cal.shape[1:])   # the path being simulated's calendar quarters
    while True:
        need = simulate_chunk(taken, seed, path_start, params, scenario, (outputs, cal), ws,
                              ev_cap, span)
        if need == PATH_DONE:
            return
        if need == EVENTS_FULL:
            ev_cap *= 2
        else:
            ws = workspace([2 * a.shape[0] for a in ws])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True, _nrt=False)
def simulate_chunk(taken, seed, path_start, params, scenario, written, ws, ev_cap, span):
    """One thread's share of a chunk: the paths span[0] .. span[1] - 1 left of its take,
    then paths taken a few at a time from the shared counter ``taken`` until none are
    left (PATH_DONE), each path's totals for the reconciliation checks (path_totals)
    read from its outputs just written (while they are in the cache, rather than in a
    pass over the finished arrays afterwards). Returns WORKSPACE_SMALL or EVENTS_FULL,
    span at the path to simulate again, when the workspace ws or ev_cap is too small.

    ``written`` is (the outputs, one path's calendar quarters): a path's quarters are
    worked out in the latter and then copied to their rows of outputs.cal, which may
    be a view of quarter-major memory (engine.new_outputs)."""
    outputs, cal = written
    while True:
        if span[0] == span[1]:
            span[0], span[1] = take_paths(taken, params.shape[0], PATHS_PER_TAKE)
            if span[0] == span[1]:
                return PATH_DONE
        i = span[0]
        rows = Outputs(outputs.out[i], outputs.qsr[i], cal, outputs.reasons[i],
                       outputs.totals[i], outputs.kept[i])
        rows.out[:] = 0.0
        rows.qsr[:] = 0.0
        rows.cal[:] = 0.0
        rows.reasons[:] = 0.0
        done = simulate_path(seed, path_start + i, params[i], scenario, rows, ws, ev_cap)
        if done != PATH_DONE:
            return done
        path_totals(rows.cal, rows.qsr, rows.totals)
        target = outputs.cal[i]
        for q in range(cal.shape[0]):
            for k in range(cal.shape[1]):
                target[q, k] = cal[q, k]
        span[0] = i + 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def take_paths(taken, n, per_take):
    """The next paths [a, b) a thread takes from the shared counter ``taken`` (at most
    per_take of the n; a == b when none are left)."""
    a = min(_fetch_add(taken, per_take), n)
    return a, min(a + per_take, n)


@path_kernel
def path_totals(c, s, row):
    """One path's totals for the reconciliation checks (columns T_*) into ``row``, from its
    calendar-quarter (c) and tracking-quarter (s) outputs."""
    row[:] = 0.0
    opening = 0.0
    worst = 0.0
    for q in range(c.shape[0]):
        row[T_CHILD_DAYS] += c[q, K_CHILD_DAYS]
        row[T_CARE_TREATED] += c[q, K_CARE_TREATED]
        row[T_CARE_COUNTERFACTUAL] += c[q, K_CARE_COUNTERFACTUAL]
        closing = c[q, K_SPV_BALANCE]
        imbalance = (c[q, K_CAPITAL_CALLS] + c[q, K_OUTCOME_PAYMENTS] - c[q, K_COSTS_PAID]
                     - c[q, K_DISTRIBUTIONS_INVESTORS] - c[q, K_DISTRIBUTIONS_PROVIDER]
                     - (closing - opening))
        worst = max(worst, abs(imbalance))
        opening = closing
    row[T_CASH_IMBALANCE] = worst
    excess = -np.inf
    for q in range(s.shape[0]):
        row[T_QSR_CHILD_DAYS] += s[q, Q_CHILD_DAYS]
        excess = max(excess, s[q, Q_CARE_TREATED] - s[q, Q_CHILD_DAYS],
                     s[q, Q_CARE_COUNTERFACTUAL] - s[q, Q_CHILD_DAYS])
    row[T_CARE_OVER_CHILD] = excess


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
def conservation_totals(cal, qsr):
    """Per path, the totals the reconciliation checks compare (columns T_*), from finished
    output arrays (simulate_chunk works them out as it goes; this is for outputs from
    elsewhere), on all cores."""
    n = cal.shape[0]
    totals = np.zeros((n, N_T))
    for i in prange(n):
        path_totals(cal[i], qsr[i], totals[i])
    return totals
