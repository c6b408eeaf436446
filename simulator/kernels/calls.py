"""Calling, from Python, a kernel compiled only for other kernels (cache.INNER).

Such a kernel has no entry point for Python: tests, and anyone exploring one process
in a notebook, call it through a small jitted function that calls it, compiled for
the arguments given, like any kernel called from Python.
"""
from types import SimpleNamespace

from numba import njit
from numba.extending import is_jitted


@njit
def _call(kernel, args):
    return kernel(*args)


def from_python(kernel):
    """``kernel`` as a Python function: from_python(binning.settle)(edges, 0.0, s, p)."""
    def call(*args):
        return _call(kernel, args)
    call.__name__ = call.__qualname__ = getattr(kernel, "__name__", "kernel")
    call.__doc__ = getattr(kernel, "__doc__", None)
    return call


def kernels_from_python(module):
    """``module``'s names, its kernels callable from Python (see :func:`from_python`):
    kernels_from_python(binning).settle(edges, 0.0, s, p)."""
    return SimpleNamespace(**{name: from_python(value) if is_jitted(value) else value
                              for name, value in vars(module).items()})
