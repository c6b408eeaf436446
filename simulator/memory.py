"""Memory for a simulation's big output arrays, kept for the next simulation.

Fresh memory is slow to write on a virtual machine: memory a process frees goes
back to the system (and from there to the host), and the first write to each of
its pages then costs far more than the write itself, and a run writes hundreds of
megabytes of outputs: into fresh memory, a run is measurably slower than into memory
used before.

So the engine takes its output arrays from a :class:`BufferPool`. A pooled buffer
is handed out again once nothing outside the pool refers to it: the caller has
dropped every result, frame and view made from it (numpy's views of views all
refer to the buffer that owns the memory, so one reference count tells). The
first simulation in a process still writes fresh memory; later ones (a batch, a
stress test, a calibration, a benchmark's repeats) reuse it. At most
``max_bytes`` are pooled, the oldest idle buffers making way for new ones;
:func:`release` hands idle buffers back to the system.

Handed-out arrays are uninitialised: the kernel zeroes each path's rows itself.
"""
from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

MAX_POOLED_BYTES = 1 << 30   # 1 GiB: three sets of outputs of a 40,000-path Essex run


class BufferPool:
    """Float64 buffers reused across simulations once their arrays are dropped."""

    def __init__(self, max_bytes: int = MAX_POOLED_BYTES):
        self.max_bytes = max_bytes
        self._buffers: list[np.ndarray] = []
        self._lock = threading.Lock()   # simulations may run in several Python threads

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised, C-contiguous float64 array of ``shape``."""
        need = math.prod(shape)
        with self._lock:
            buf = self._idle_fit(need)
            if buf is None:
                buf = np.empty(need)
                self._make_room(buf.nbytes)
                if self.pooled_bytes() + buf.nbytes <= self.max_bytes:
                    self._buffers.append(buf)
            return buf[:need].reshape(shape)

    def _make_room(self, nbytes: int) -> None:
        """Drop the oldest idle buffers until ``nbytes`` more fit under the bound, so
        that the pool follows the sizes of the latest runs."""
        i = 0
        while self.pooled_bytes() + nbytes > self.max_bytes and i < len(self._buffers):
            if self._idle(i):
                del self._buffers[i]
            else:
                i += 1

    def _idle_fit(self, need: int) -> np.ndarray | None:
        """The smallest idle buffer that holds ``need`` values without wasting half of
        itself (a small run does not tie up a big run's buffer)."""
        best = -1
        for i in range(len(self._buffers)):   # by index: a loop variable is a reference
            size = self._buffers[i].size
            if need <= size <= 2 * need and self._idle(i) and (
                    best < 0 or size < self._buffers[best].size):
                best = i
        return self._buffers[best] if best >= 0 else None

    def _idle(self, i: int) -> bool:
        """Whether only the pool refers to buffer i (counted as for a buffer held by a
        list alone, so the interpreter's own temporary references cancel out)."""
        return sys.getrefcount(self._buffers[i]) <= _LIST_ONLY

    def pooled_bytes(self) -> int:
        return sum(b.nbytes for b in self._buffers)

    def idle_bytes(self) -> int:
        with self._lock:
            return sum(self._buffers[i].nbytes for i in range(len(self._buffers))
                       if self._idle(i))

    def release(self) -> int:
        """Hand the idle buffers back to the system; returns the bytes released."""
        with self._lock:
            before = self.pooled_bytes()
            for i in reversed(range(len(self._buffers))):
                if self._idle(i):
                    del self._buffers[i]
            return before - self.pooled_bytes()


def _count_list_only() -> int:
    held = [np.empty(1)]
    return sys.getrefcount(held[0])


_LIST_ONLY = _count_list_only()


OUTPUTS = BufferPool()


def available_bytes() -> int | None:
    """Memory a new allocation can still get without swapping, or None where unknown:
    Linux's MemAvailable (elsewhere the physical memory, an upper bound), capped by the
    room under the process's control-group limit (a container's, cgroup v2 or v1), plus
    what the pool holds idle (a run reuses it)."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, OSError, ValueError):
            return None
    room = cgroup_room("/sys/fs/cgroup")
    if room is None:
        room = cgroup_v1_room("/sys/fs/cgroup/memory")
    if room is not None:
        free = min(free, room)
    return max(free, 0) + OUTPUTS.idle_bytes()


def cgroup_room(folder: str) -> int | None:
    """Bytes under a cgroup v2 memory limit (``memory.max`` in ``folder``) that are not
    already taken by the group's anonymous memory: its page cache is given back on
    demand, so it is room too. None without a limit."""
    try:
        with open(os.path.join(folder, "memory.max")) as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(folder, "memory.stat")) as f:
            stat = dict(line.split() for line in f if line.strip())
        return int(limit) - int(stat["anon"])
    except (OSError, KeyError, ValueError):
        return None


def cgroup_v1_room(folder: str) -> int | None:
    """cgroup_room for the older cgroup v1 memory controller (Docker on hosts before
    cgroup v2): ``memory.limit_in_bytes`` (no limit reads as a number near 2^63) less
    the group's anonymous memory (``total_rss``, or ``rss``, in ``memory.stat``)."""
    try:
        with open(os.path.join(folder, "memory.limit_in_bytes")) as f:
            limit = int(f.read().strip())
        if limit >= 1 << 60:
            return None
        with open(os.path.join(folder, "memory.stat")) as f:
            stat = dict(line.split() for line in f if line.strip())
        return limit - int(stat.get("total_rss", stat["rss"]))
    except (OSError, KeyError, ValueError):
        return None


def release() -> int:
    """Hand the engine's idle output memory back to the system (bytes released)."""
    return OUTPUTS.release()
