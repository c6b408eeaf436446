"""The memory available to a run: every path's outputs are kept (for quantiles over
paths), so a run too big for the machine is refused before it allocates anything.
"""
from __future__ import annotations

import os


def available_bytes() -> int | None:
    """Memory a new allocation can still get without swapping, or None where unknown:
    Linux's MemAvailable (elsewhere the physical memory, an upper bound), capped by the
    room under the process's control-group limit (a container's, cgroup v2 or v1)."""
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
    return max(free, 0)


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
