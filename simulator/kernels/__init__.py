"""Every numba kernel of the package, one module per process; nothing else imports numba.

One path at a time, in continuous time (days since the contract start):
workforce (therapist leavers, vacancies, therapists in waiting) -> referrals
(negative binomial per team-month, screening) -> young people (their draws) ->
capacity (caseload limit, FIFO waiting list, losses) -> treatment -> care
(entry/exit hazards for the treated path and the untreated counterfactual on the
same draws) -> days per quarter since tracking start and per calendar quarter ->
contract (outcome payments, costs) -> waterfall (the SPV's cash) -> IRR.

Modules: ``rng`` (counter-based random numbers), ``vector`` (branch-free log, exp and
normal quantile), ``binning`` (days into quarters), ``workforce``, ``referrals``,
``young_people``, ``capacity``, ``treatment``, ``care``, ``contract``, ``waterfall``,
``irr``, ``path`` (one path), ``chunk`` (many paths, on all cores), ``invariants`` and
``quantiles`` (passes over finished outputs), and ``cache`` (the disk cache they are all
defined under, here).

Randomness is counter-based (SplitMix64): every draw is a pure function of
(seed, stream, path, entity, draw number), so results do not depend on thread
count or chunking, and each random process (stream) is keyed by its own
entities, which gives common random numbers across scenarios that differ in one
parameter. The Python around these kernels lives in :mod:`simulator.engine`; the
layout of the arrays they share with it is declared once, in :mod:`simulator.layout`.
"""
from .cache import kernel_cache

with kernel_cache():   # every kernel module, defined under the kernels' cache folder
    from . import (  # noqa: F401
        binning,
        capacity,
        care,
        chunk,
        contract,
        invariants,
        irr,
        path,
        quantiles,
        referrals,
        rng,
        treatment,
        vector,
        waterfall,
        workforce,
        young_people,
    )


def threads() -> int:
    """The threads the kernels run on (numba's, set by NUMBA_NUM_THREADS)."""
    import numba
    return numba.get_num_threads()
