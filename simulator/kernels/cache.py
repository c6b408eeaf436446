"""Numba's on-disk cache, keyed by every kernel source file rather than one.

Numba checks a cached kernel against its own source file only, yet a kernel in
``kernels.py`` carries compiled copies of the ``waterfall.py`` kernels it calls:
edit ``waterfall.py`` alone (or check out a commit that changes only it) and the
old code would still run (numba issue #1833). Here every cached kernel of this
package is stamped with the contents of all the kernel sources, so a change to
any one recompiles them all. Imported before any kernel is defined.

It also spares a process the import of scipy.linalg that numba makes on first use
only to learn whether np.convolve may call BLAS (a noticeable part of a short run):
see ``_numba_arraymath_without_blas_probe``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from functools import cache

from numba.core import caching

# Floating-point options of every kernel: a multiply and an add may be fused into one
# FMA instruction (rounded once instead of twice): faster polynomials of log, exp and
# the normal quantile, and binning arithmetic. Results stay the same
# for any thread count and chunking; they can differ at rounding level from a build on
# a CPU without FMA (x86-64 before 2013), and from the same formula in plain Python.
# Reassociation ("reassoc") would cost log and exp their 1-ulp accuracy and let sums
# depend on the vector width of the CPU: not used.
FASTMATH = {"contract"}

_HERE = os.path.dirname(os.path.abspath(__file__))
# the files whose contents stamp every cached kernel: the kernels' sources, the layout
# whose constants they compile in, and this file, which sets their compile options
# (FASTMATH above). numba's default optimisation level: "max" compiled for longer and
# ran no faster, with the same results.
KERNEL_SOURCES = tuple(sorted(os.path.join(_HERE, name) for name in os.listdir(_HERE)
                              if name.endswith(".py"))) + (
    os.path.join(os.path.dirname(_HERE), "layout.py"),)


@cache
def _file_hash(path: str, mtime: float, size: int) -> bytes:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


def sources_stamp() -> tuple[bytes, ...]:
    """A digest of each kernel source file (re-read whenever its mtime or size changes)."""
    stamps = []
    for path in KERNEL_SOURCES:
        st = os.stat(path)
        stamps.append(_file_hash(path, st.st_mtime, st.st_size))
    return tuple(stamps)


class _AllKernelSources:
    """Locator mixin: only for this package's kernel files; stamps all of them."""

    def get_source_stamp(self):
        return sources_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.abspath(py_file) not in KERNEL_SOURCES:
            return None
        return super().from_function(py_func, py_file)


def _numba_locator(name: str) -> type:
    """numba's cache locator class ``name`` (public in numba 0.63; "_"-prefixed in 0.61)."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


class UserProvidedLocator(_AllKernelSources, _numba_locator("UserProvidedCacheLocator")):
    """NUMBA_CACHE_DIR, when set."""


class InTreeLocator(_AllKernelSources, _numba_locator("InTreeCacheLocator")):
    """__pycache__ beside the sources."""


class UserWideLocator(_AllKernelSources, _numba_locator("UserWideCacheLocator")):
    """The user's cache directory, when the package directory is read-only."""


_OURS = (UserProvidedLocator, InTreeLocator, UserWideLocator)
if not any(cls in caching.CacheImpl._locator_classes for cls in _OURS):
    caching.CacheImpl._locator_classes[:0] = _OURS


def is_cached(*dispatchers) -> bool:
    """Whether each dispatcher is loaded already or numba's disk cache holds its code for
    this machine and these sources (False: its next call compiles it). Reads each cache
    index only; if numba's internals are not as expected, says True
    (the caller then just does not warn)."""
    try:
        for d in dispatchers:
            if d.overloads:   # compiled or loaded in this process already
                continue
            magic = d.targetctx.codegen().magic_tuple()
            if not any(key[1] == magic for key in d._cache._cache_file._load_index()):
                return False
    except Exception:  # noqa: BLE001 (a numba without these attributes)
        return True
    return True


def _numba_arraymath_without_blas_probe() -> None:
    """Import numba.np.arraymath with its BLAS probe answered by "is scipy installed?".

    At import, arraymath calls numba.np.linalg.ensure_blas(), which imports
    scipy.linalg (slow to import) only to set a flag that np.convolve and np.correlate read.
    The probe is swapped for a look-up of scipy's files during that one import and
    put back at once: numba code that really uses BLAS (np.dot, np.linalg) still
    goes through the original, which imports scipy.linalg and checks it then.
    """
    if "numba.np.arraymath" in sys.modules:
        return
    from numba.np import linalg
    probe = getattr(linalg, "ensure_blas", None)
    if probe is None:   # another numba: leave it alone
        return

    def scipy_installed() -> None:
        if importlib.util.find_spec("scipy") is None:
            raise ImportError("scipy is required for BLAS")

    linalg.ensure_blas = scipy_installed
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = probe


_numba_arraymath_without_blas_probe()
