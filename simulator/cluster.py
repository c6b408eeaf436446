"""Runs spread over a Dask cluster (``dask.distributed``), bit-identical to a local run.

A path's random numbers depend on its number, the scenario and the seed only, so any
split of the paths gives the same paths. With a cluster in use (:func:`connect`):

- :func:`simulate_chunks`: a simulation's paths go out as tasks of whole chunks
  (``path_start``, ``paths``), each worker simulating its chunk into arrays of its own,
  and come back to be placed in the run's arrays exactly where a local run's chunks
  write theirs (engine.simulate_arrays); a worker's memory is bounded by its chunk;
- :func:`run_variants`: a batch's variants go out as whole tasks, each worker running
  the variant as ``sibsim run`` would and sending back its folder's files, which the
  batch writes (so workers need no shared disk).

Dask retries a task whose worker is lost; as a task's result depends on its paths
only, a retried task gives the same arrays. Dask is imported here only, and only
when a command is given ``--scheduler`` or ``--workers`` (``pip install
'sibsim[dask]'``).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_CLIENT = None          # the dask.distributed.Client in use, if any
_DESCRIPTION: dict[str, Any] | None = None
TASKS_PER_WORKER = 4    # a simulation's chunks per worker: the work evens out


class DaskMissing(RuntimeError):
    """--scheduler or --workers without Dask installed."""


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """Use a Dask cluster for the block: the running scheduler at ``scheduler``, or a
    LocalCluster of ``workers`` processes, started here and closed after. Without
    either, nothing changes (and Dask is not imported)."""
    if not scheduler and not workers:
        yield None
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DaskMissing("--scheduler and --workers need Dask: pip install "
                          "'sibsim[dask]'") from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            threads = max((os.cpu_count() or 1) // workers, 1)
            local = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=":0", env={"NUMBA_NUM_THREADS": str(threads)}))
            client = stack.enter_context(Client(local))
        with use(client, scheduler or "LocalCluster"):
            yield client


@contextlib.contextmanager
def use(client, scheduler: str = "") -> Iterator[Any]:
    """Use an existing Dask ``client`` for the block (engine.simulate and batches then
    send their work to it)."""
    global _CLIENT, _DESCRIPTION
    before = _CLIENT, _DESCRIPTION
    _CLIENT = client
    _DESCRIPTION = {"scheduler": scheduler or client.scheduler.address,
                    "workers": len(client.scheduler_info()["workers"])}
    try:
        yield client
    finally:
        _CLIENT, _DESCRIPTION = before


def active():
    """The Dask client in use, or None (a local run)."""
    return _CLIENT


def description() -> dict[str, Any] | None:
    """The scheduler and worker count in use (for the manifest), or None."""
    return dict(_DESCRIPTION) if _DESCRIPTION else None


# --------------------------------------------------------------------------- path chunks
def chunk_starts(n: int, chunk: int, workers: int) -> list[tuple[int, int]]:
    """(offset, paths) of the tasks a simulation of ``n`` paths is split into: at most
    ``chunk`` paths each, and enough tasks for every worker to take several."""
    size = max(min(chunk, -(-n // (TASKS_PER_WORKER * max(workers, 1)))), 1)
    return [(a, min(size, n - a)) for a in range(0, n, size)]


def simulate_chunks(task, scenario, seed: int, path_start: int, n: int, chunk: int):
    """Per task, in path order: (offset, paths, their outputs) of paths path_start +
    offset .., each simulated on a worker by ``task(scenario, seed, start, paths)``."""
    client = active()
    tasks = chunk_starts(n, chunk, _DESCRIPTION["workers"])
    scattered = client.scatter(scenario, broadcast=True)
    futures = [client.submit(task, scattered, seed, path_start + a, m, pure=False)
               for a, m in tasks]
    for (a, m), future in zip(tasks, futures, strict=True):
        yield a, m, future.result()
        future.release()


# --------------------------------------------------------------------------- variants
def run_variants(task, runs: list[tuple[Any, dict]]):
    """Each (PlannedRun, run_scenario keywords) as a task on the cluster, run there by
    ``task(loaded, keywords)``; yields (PlannedRun, the task's result or its exception)
    as they finish."""
    from dask.distributed import as_completed
    client = active()
    futures = {client.submit(task, r.variant.loaded, kwargs, pure=False): r
               for r, kwargs in runs}
    for future in as_completed(futures):
        try:
            yield futures[future], future.result()
        except Exception as exc:  # noqa: BLE001 - the batch reports it as the variant's
            yield futures[future], exc
        future.release()

