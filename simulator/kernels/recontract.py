"""The contract alone, under other terms, over paths simulated once.

The service, the young people and their care do not depend on the contract's price,
cap, lag or finance terms, so a path keeps what its contract read (Outputs.kept: care
days by tracking cohort, outcome events, team starts) and the contract and the SPV
waterfall run again from there for each candidate set of terms: the same figures as a
full simulation with those terms, path by path, at a fraction of its cost.
"""
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from ..layout import K_OUTCOME_PAYMENTS, K_TEAM_DAYS, Outputs
from .cache import FASTMATH, path_kernel
from .chunk import PATHS_PER_TAKE, take_paths
from .contract import contract_and_finance
from .kept import restore_contract_inputs
from .work import EVENTS_FIRST, WORKSPACE_FIRST, fits, new_workspace, path_sizes, path_work


class Recontracted(NamedTuple):
    """A candidate's figures, a row a path."""
    out: np.ndarray        # (paths, N_OUT) the path's figures under the candidate's terms
    payments: np.ndarray   # (paths, calendar quarters) outcome payments


def recontract(params, scenario, base, tracking, threads):
    """Every path of ``base`` (Outputs with kept inputs) under the terms of ``scenario``
    (ScenarioArrays; the same layout as base's), on ``threads`` threads: Recontracted."""
    n = params.shape[0]
    result = Recontracted(np.empty((n, base.out.shape[1])), np.empty((n, base.cal.shape[1])))
    taken = np.zeros(1, np.int64)
    workers = max(min(threads, -(-n // PATHS_PER_TAKE)), 1)
    with ThreadPoolExecutor(workers) as pool:
        done = [pool.submit(recontract_chunk, taken, params, scenario, base, np.int64(tracking),
                            result) for _ in range(workers)]
        for worker in done:
            worker.result()
    return result


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def recontract_chunk(taken, params, scenario, base, tracking, result):
    """One thread's share: paths taken from the shared counter, each path's contract run
    again from its kept inputs, its other figures copied from base."""
    ws = new_workspace(WORKSPACE_FIRST[0], WORKSPACE_FIRST[1], WORKSPACE_FIRST[2],
                    WORKSPACE_FIRST[3])
    cal = np.empty((base.cal.shape[1], base.cal.shape[2]))
    while True:
        a, b = take_paths(taken, params.shape[0], PATHS_PER_TAKE)
        if a == b:
            break
        for i in range(a, b):
            result.out[i, :] = base.out[i, :]
            cal[:, :] = base.cal[i]
            cal[:, K_TEAM_DAYS] = 0.0   # (the contract adds the team days up again)
            while not _contract_of_path(params[i], scenario, base, i, ws, tracking, cal,
                                        result):
                ws = new_workspace(2 * ws.f.shape[0], 2 * ws.i.shape[0], 2 * ws.u.shape[0],
                                2 * ws.b.shape[0])


# Compiled without reference counting, apart from the chunk: the workspace's cutting
# helpers return views that own no reference, which a counting caller would release.
@path_kernel
def _contract_of_path(prm, scenario, base, i, ws, tracking, cal, result):
    """Path i's contract run again from its kept inputs, over its other figures (in
    result.out[i] and cal), in work arrays cut from ws; False, nothing done, if ws is too
    small for them."""
    work, at = path_work(ws, path_sizes(prm, scenario, tracking, EVENTS_FIRST))
    if not fits(ws, at):
        return False
    restore_contract_inputs(base.kept[i], work)
    rows = Outputs(result.out[i], base.qsr[i], cal, base.reasons[i], base.totals[i],
                   base.kept[i])
    contract_and_finance(prm, scenario, work.team_start, work.binning, work.money, rows)
    for k in range(cal.shape[0]):
        result.payments[i, k] = cal[k, K_OUTCOME_PAYMENTS]
    return True
