"""Loading the kernels before a run (:func:`load_kernels`), and their first compile on
two cores: while the run's process compiles the path's kernels, a helper process
compiles, into the same disk cache, the contract's (which a path calls last) and then
the figures' (the financial invariants', the summary's and the quarterly table's).

The helper needs no simulation: numba compiles a kernel for the types of its
arguments, not their values, so a contract of zeros and the figures of outputs that
are all zero compile the kernels a real run loads. A helper that fails or is slow
costs nothing but time: whatever it has not cached, the run compiles itself.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import layout as L

if TYPE_CHECKING:
    from .schema import Scenario

# the helper's wait, at most: far beyond its few seconds, short of a hung run
_PATIENCE_SECONDS = 300.0


def load_kernels(scenario: Scenario, say: bool = True) -> float:
    """Load the kernels (compiling them first if the disk cache has none for this machine
    and these sources, said on stderr when ``say``) by simulating two paths of ``scenario``
    and summarising them as a run does (the summary's and the quarterly table's kernels
    are a run's too); returns the seconds taken. Lets a caller time a run without the
    compiling."""
    from . import engine
    from .metrics import quarters_table, summary

    t0 = time.perf_counter()
    if say:
        engine.say_if_compiling()
    # the contract's and figures' kernels, unless the figures' are compiled (a process
    # that only simulated compiled the simulation's alone), in a helper on the other core
    helper = None if engine.kernels_cached("figures") else start(scenario)
    try:
        result = engine.simulate(scenario, paths=2, progress=False)
    except BaseException:
        stop(helper)
        raise
    finish(helper)
    summary(result)
    quarters_table(result)
    engine.mark_cached("figures")
    return time.perf_counter() - t0


def start(scenario: Scenario) -> subprocess.Popen | None:
    """A helper process compiling the contract's and the figures' kernels of ``scenario``
    into the kernels' cache (:func:`main`), or None where there is a single core to run
    it on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2:
        return None
    # this process's package, whatever the helper's working folder and sys.path hold
    here = str(Path(__file__).resolve().parents[1])
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    try:
        helper = subprocess.Popen([sys.executable, "-P", "-c",
                                   "from simulator.precompile import main; main()"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env)
    except OSError:   # no interpreter to start (an embedded Python): compiled here instead
        return None
    try:
        with helper.stdin:
            helper.stdin.write(pickle.dumps(scenario))
    except OSError:   # it is gone already: the run compiles everything itself
        pass
    return helper


def finish(helper: subprocess.Popen | None) -> None:
    """Wait for the helper to finish (its kernels are then loaded, not compiled again)."""
    if helper is None:
        return
    try:
        helper.wait(_PATIENCE_SECONDS)
    except subprocess.TimeoutExpired:
        stop(helper)


def stop(helper: subprocess.Popen | None) -> None:
    """End the helper now (the run it was compiling for will not happen)."""
    if helper is not None:
        helper.kill()
        helper.wait()


def compile_figures(scenario: Scenario) -> None:
    """Compile (or load) the kernels of a run's checks, summary and quarterly table, on
    two paths of zeros."""
    from . import engine
    from .invariants import FinancialInvariantError
    from .metrics import quarters_table, summary

    lay = engine.layout(scenario)
    run = engine.ArrayRun(lay, 0, np.zeros((2, L.N_PARAMS)), engine.new_outputs(lay, 2))
    try:   # zeros may break an invariant (a scheduled call not made): compiled all the same
        engine.check_arrays(scenario, run)
    except (engine.ConservationError, FinancialInvariantError):
        pass
    result = engine.result_of(scenario, run)
    summary(result)
    quarters_table(result)


def compile_contract(scenario: Scenario) -> None:
    """Compile (or load) the contract's and the SPV waterfall's kernels, which a path
    calls last, for the types simulate_path passes them, on a path of zeros: the run's
    process, compiling the path's other kernels meanwhile, then finds them cached.

    Each kernel this compiles has that one signature in a run too (a test checks it):
    numba's cache index of a kernel compiled for different types by two processes at
    once could end up naming one's code for the other's types."""
    from . import engine
    from .kernels import contract, waterfall, work
    from .kernels.calls import from_python

    lay = engine.layout(scenario)
    if lay.config[L.C_HAS_CONTRACT] < 0.5:   # (a path without one never calls it)
        return
    arrays = engine.scenario_arrays(lay)
    prm = engine.draw_parameters(scenario, 0, 0, 1)[0]
    n = from_python(work.path_sizes)(prm, arrays, np.int64(lay.n_tracking_quarters),
                                     np.int64(1))
    binning = work.Binning(np.zeros((n.calendar, L.N_K)), np.zeros((n.tracking, L.N_Q)),
                           np.zeros((L.N_CO, n.band, n.cohorts)),
                           np.zeros((L.N_CO, n.band, n.cohorts)),
                           np.zeros((2, n.calendar, n.outcome_events)))
    money = work.Money(np.zeros((contract.N_BQ, n.calendar)),
                       np.zeros((n.calendar, waterfall.N_LINES)),
                       np.zeros(from_python(waterfall.payment_work_size)(n.band, n.cohorts,
                                                                         n.calendar)))
    rows = L.Outputs(np.zeros(L.N_OUT), np.zeros((n.tracking, L.N_Q)),
                     np.zeros((n.calendar, L.N_K)), np.zeros(max(len(lay.reason_names), 1)),
                     np.zeros(L.N_T), np.zeros(0))
    from_python(contract.contract_and_finance)(prm, arrays, np.zeros(n.teams), binning,
                                               money, rows)


def main() -> None:
    """The helper: the scenario arrives pickled on stdin. The contract's kernels first,
    as the run's process needs them before the figures'."""
    scenario = pickle.load(sys.stdin.buffer)
    compile_contract(scenario)
    compile_figures(scenario)
