"""numba's disk cache for the kernels, in a folder named by every kernel source.

numba checks a cached kernel against its own source file only, yet a kernel carries
compiled copies of the kernels it calls from other files (numba issue #1833): edit
``waterfall.py`` alone and ``path.py``'s cached kernel would still run the old
waterfall. So the kernels are cached in a folder named by a digest of every kernel
source and the layout whose constants they compile in: a change to any one of them
compiles them all afresh, into a new folder. The folder is handed to numba through its
public cache-directory setting (``NUMBA_CACHE_DIR``'s ``numba.config.CACHE_DIR``) while
the kernel modules are defined (:func:`kernel_cache`), and the setting is put back after,
so other numba code in the process keeps its own.

The folder is ``__pycache__`` beside the kernels, or the user's cache folder when the
package folder is read-only, or, when ``NUMBA_CACHE_DIR`` is set, a folder inside it.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numba

# Floating-point options of every kernel: a multiply and an add may be fused into one
# FMA instruction (rounded once instead of twice): faster polynomials of log, exp and
# the normal quantile, and binning arithmetic. Results stay the same
# for any thread count and chunking; they can differ at rounding level from a build on
# a CPU without FMA (x86-64 before 2013), and from the same formula in plain Python.
# Reassociation ("reassoc") would cost log and exp their 1-ulp accuracy and let sums
# depend on the vector width of the CPU: not used.
FASTMATH = {"contract"}

# A kernel only other kernels call is compiled without the entry points Python and C
# would call it through (numba's CPython and cfunc wrappers), which then need no compiling.
# Python must not call one (it would crash); tests do so through calls.from_python.
INNER = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}

# The options of a path's kernels, which allocate nothing (no reference counting: their
# work arrays are cut from a thread's workspace) and which only other kernels call.
_PATH = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy", "_nrt": False}


def path_kernel(function):
    """A kernel of a path: compiled on its own, with no entry point from Python."""
    return numba.njit(**_PATH, **INNER)(function)


def path_helper(function):
    """A short helper of a path's kernels, inlined where it is called."""
    return numba.njit(**_PATH, inline="always")(function)

_HERE = Path(__file__).resolve().parent
_PREFIX = "sibsim-"
# the files whose contents name the cache folder: the kernels' sources and the layout
KERNEL_SOURCES = tuple(sorted(_HERE.glob("*.py"))) + (_HERE.parent / "layout.py",)


def sources_digest() -> str:
    """A digest of every kernel source file's contents."""
    digest = hashlib.sha256()
    for path in KERNEL_SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def cache_folder() -> Path:
    """The folder of this version's compiled kernels (not made yet if never compiled)."""
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    if user_dir:
        parent = Path(user_dir)
    elif _writable(_HERE / "__pycache__"):
        parent = _HERE / "__pycache__"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        parent = Path(base) / "sibsim"
    return parent / (_PREFIX + sources_digest())


def _prune_others(folder: Path) -> None:
    """Remove the folders of other versions of the kernels beside ``folder``: after an
    edit or an upgrade their code is never loaded again."""
    for other in folder.parent.glob(_PREFIX + "*"):
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def kernel_cache():
    """Within: kernels defined with ``cache=True`` are cached in :func:`cache_folder`."""
    folder = cache_folder()
    if not folder.exists():
        _prune_others(folder)
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(folder)
    try:
        yield folder
    finally:
        numba.config.CACHE_DIR = previous


@functools.cache
def _marker(part: str) -> Path:
    """The file that says ``part`` of the kernels was compiled into the cache folder for
    this CPU (numba compiles for the CPU it runs on)."""
    import llvmlite.binding as llvm
    cpu = llvm.get_host_cpu_name() + llvm.get_host_cpu_features().flatten()
    return cache_folder() / f"compiled-{part}-{hashlib.sha256(cpu.encode()).hexdigest()[:12]}"


def is_warm(part: str = "simulation") -> bool:
    """Whether ``part`` of the kernels ("simulation": a path's and the checks'; "figures":
    the summary's and the quarterly table's) was compiled into the cache for this CPU
    (False: its next use compiles it first)."""
    return _marker(part).exists()


def mark_warm(part: str = "simulation") -> None:
    """Record that ``part`` of the kernels is compiled into the cache for this CPU."""
    if not is_warm(part):
        with contextlib.suppress(OSError):
            _marker(part).touch()
