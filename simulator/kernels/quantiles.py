"""Means and exact percentiles across paths of the quarterly lines, as numba kernels.

The fan-chart table (metrics.quarters_table) needs, for each line and calendar
quarter, the mean and a few percentiles over every path. numpy's percentile sorts
a strided copy of each column: most of a big run's time after its simulation.
Here a quarter at a time, every line's values are gathered in one pass over the
paths (each path's row of the quarter read once, paths shared by the cores), and
then, line by line on the cores, the order statistics the percentiles need
are selected together by a three-way quickselect that descends only into the parts
holding them. Percentiles are numpy's default ("linear"): the same values.
"""
import math

import numpy as np
from numba import njit, prange

_SMALL = 16        # a range this short is sorted
_SAMPLED = 4096    # fewer values are selected directly, more through a sample


@njit(cache=True, parallel=True)
def line_figures(cal, parts, signs, cumulative, divisor, qs, out):
    """Fill out[line, quarter] with (mean, then each percentile of qs) over paths.

    Line i is the sum of signs[i, j] * cal[:, :, parts[i, j]] over its parts (a part
    < 0 is unused), summed over the quarters so far if cumulative[i], and divided by
    divisor[i, quarter]."""
    n_paths, n_lines = cal.shape[0], parts.shape[0]
    running = np.zeros((n_paths, n_lines))   # the cumulative lines' sums so far
    values = np.empty((n_lines, n_paths))    # one quarter of every line
    scratch = np.empty((n_lines, n_paths))
    for k in range(cal.shape[1]):
        # every line's value of the quarter, path by path (each path's row read once;
        # indexed here, not through views of the arrays, which threads would share)
        for p in prange(n_paths):
            for i in range(n_lines):
                v = 0.0
                for j in range(parts.shape[1]):
                    if parts[i, j] >= 0:
                        v += signs[i, j] * cal[p, k, parts[i, j]]
                if cumulative[i]:
                    running[p, i] += v
                    v = running[p, i]
                if divisor[i, k] != 1.0:   # (a division costs more than the rest)
                    v /= divisor[i, k]
                values[i, p] = v
        for i in prange(n_lines):
            out[i, k, 0] = values[i].mean()
            _percentiles(values[i], qs, scratch[i], out[i, k, 1:])


@njit(cache=True)
def _percentiles(values, qs, scratch, out):
    """numpy's linear percentiles qs (0-100) of values (reordered in place) into out
    (scratch: a work array as long as values)."""
    n = values.shape[0]
    m = qs.shape[0]
    if values.min() == values.max():   # (a quarter of zeros, say: common)
        out[:m] = values[0]
        return
    r0 = np.empty(m, np.int64)
    for j in range(m):
        r0[j] = int(math.floor((n - 1) * (qs[j] / 100.0)))
    if n <= _SAMPLED:
        _select_ranks(values, r0)
        for j in range(m):
            out[j] = _lerp(values[r0[j]], values[min(r0[j] + 1, n - 1)],
                           (n - 1) * (qs[j] / 100.0) - r0[j])
        return
    # Floyd and Rivest's way: each pair of ranks is bracketed between two values of a
    # sample, one pass counts the values below each bracket and keeps those within it,
    # and the ranks are selected among those. Where a bracket misses, among them all.
    sample = np.sort(values[::n // int(n ** (2.0 / 3.0))])
    low = np.empty(m)
    high = np.empty(m)
    for j in range(m):
        _brackets(sample, r0[j] / (n - 1), low, high, j)
    for j in range(m):
        r1 = min(r0[j] + 1, n - 1)
        below, found = _bracketed(values, low[j], high[j], scratch)
        if below <= r0[j] and r1 < below + found:
            within = scratch[:found]
            _select(within, np.array([r0[j] - below, r1 - below], np.int64))
            a, b = within[r0[j] - below], within[r1 - below]
        else:
            _select(values, np.array([r0[j], r1], np.int64))
            a, b = values[r0[j]], values[r1]
        out[j] = _lerp(a, b, (n - 1) * (qs[j] / 100.0) - r0[j])


@njit(cache=True)
def _bracketed(values, low, high, kept):
    """(how many values are below low, how many lie in [low, high]), the latter copied
    to the start of kept. Branch-free: every value is written, kept only if within."""
    below = 0
    found = 0
    for v in values:
        below += v < low
        kept[found] = v
        found += (v >= low) & (v <= high)
    return below, found


@njit(cache=True)
def _brackets(sample, f, low, high, j):
    """Sample values either side of the fraction f of the way up, three standard
    deviations of a sample rank apart: the rank's value lies between them."""
    s = sample.shape[0]
    spread = 3.0 * math.sqrt(s * f * (1.0 - f)) + 2.0
    low[j] = sample[max(int(f * (s - 1) - spread), 0)]
    high[j] = sample[min(int(f * (s - 1) + spread) + 1, s - 1)]


@njit(cache=True)
def _select_ranks(values, r0):
    """Select each rank of r0 and the rank above it (values reordered in place)."""
    n = values.shape[0]
    ks = np.empty(2 * r0.shape[0], np.int64)
    for j in range(r0.shape[0]):
        ks[2 * j] = r0[j]
        ks[2 * j + 1] = min(r0[j] + 1, n - 1)
    ks.sort()
    _select(values, ks)


@njit(cache=True)
def _lerp(a, b, t):
    """numpy's interpolation between neighbouring order statistics (exact at both ends)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


@njit(cache=True)
def _select(a, ks):
    """Reorder a so that a[k] is its k-th smallest value for every k of ks (sorted): a
    three-way quickselect descending only into the ranges that hold some k."""
    stack = np.empty((64 + 2 * ks.shape[0], 4), np.int64)   # (lo, hi, first k, end of ks)
    _push(stack, 0, 0, a.shape[0], 0, ks.shape[0])
    top = 1
    while top > 0:
        top -= 1
        lo, hi, k0, k1 = stack[top]
        if k0 >= k1:
            continue
        if hi - lo <= _SMALL or top >= stack.shape[0] - 2:
            a[lo:hi].sort()   # (a deep stack means bad pivots: sorting ends it)
            continue
        lt, gt = _partition3(a, lo, hi)
        m0 = k0
        while m0 < k1 and ks[m0] < lt:
            m0 += 1
        m1 = m0
        while m1 < k1 and ks[m1] < gt:   # ks in [lt, gt) hold the pivot already
            m1 += 1
        _push(stack, top, lo, lt, k0, m0)
        _push(stack, top + 1, gt, hi, m1, k1)
        top += 2


@njit(cache=True, inline="always")
def _push(stack, at, lo, hi, k0, k1):
    stack[at, 0] = lo
    stack[at, 1] = hi
    stack[at, 2] = k0
    stack[at, 3] = k1


@njit(cache=True)
def _partition3(a, lo, hi):
    """Partition a[lo:hi] around the median of three into < pivot, == pivot, > pivot;
    returns (start, end) of the equal part."""
    x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
    pivot = max(min(x, y), min(max(x, y), z))
    lt, i, gt = lo, lo, hi
    while i < gt:
        v = a[i]
        if v < pivot:
            a[i], a[lt] = a[lt], v
            lt += 1
            i += 1
        elif v > pivot:
            gt -= 1
            a[i], a[gt] = a[gt], v
        else:
            i += 1
    return lt, gt
