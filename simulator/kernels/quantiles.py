"""Means and exact percentiles across paths of the quarterly lines, as numba kernels.

The fan-chart table (metrics.quarters_table) needs, for each line and calendar
quarter, the mean and a few percentiles over every path. A quarter at a time, its
rows (together in memory, as engine.new_outputs lays the quarters out) are copied
out a column at a time, the paths shared by the cores, noting which columns are not
all zero; then, line by line on the cores, the line's values are made from those
columns in one pass that also sums them in path order (the mean numpy and numba take
along paths) and counts those unlike the first; unless all are equal, their
percentiles are found: a sample brackets each order statistic the percentiles need,
one branch-free pass counts the values below each bracket and copies out those
within, and a quickselect among these few picks them. A line whose columns are all
zero in a quarter (and, if a running total, so far) has figures of zero, set without
a pass. Percentiles are numpy's default ("linear"): the same values.
"""
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from .cache import INNER

_SMALL = 16        # a range this short is sorted
_SAMPLED = 4096    # fewer values are selected directly, more through a sample


def lanes() -> int:
    """The lanes line_figures shares the lines among: one a thread the kernels run on."""
    return numba.get_num_threads()


def line_figures(cal, parts, signs, cumulative, divisor, qs, lanes, out):
    """Fill out[line, quarter] with (mean, then each percentile of qs) over paths.

    Line i is the sum of signs[i, j] * cal[:, :, parts[i, j]] over its parts (a part
    < 0 is unused), summed over the quarters so far if cumulative[i], and divided by
    divisor[i, quarter]. The lines are shared among ``lanes`` threads, each with one
    set of work arrays (new memory costs more than the work done in it); the kernels
    release the GIL, so Python's threads run them side by side."""
    n_paths = cal.shape[0]
    columns = np.empty((cal.shape[2], n_paths))   # one quarter of cal, a row a column
    nonzero = np.zeros((lanes, cal.shape[2]), np.bool_)   # of each lane's share of paths
    sums_at = np.cumsum(cumulative) - 1           # each cumulative line's row of running
    running = np.zeros((max(sums_at[-1] + 1, 1), n_paths))   # their sums so far
    started = np.zeros(parts.shape[0], np.bool_)  # running totals not all zero so far
    values = np.empty((lanes, n_paths))           # a lane's line, one quarter
    kept = np.empty((lanes, n_paths))             # its values within the brackets
    within = np.empty((lanes, n_paths), np.bool_)
    spec = (parts, signs, cumulative, divisor, sums_at)
    shares = np.linspace(0, n_paths, lanes + 1).astype(np.int64)   # each lane's paths
    with ThreadPoolExecutor(lanes) as pool:
        for k in range(cal.shape[1]):
            rows = _quarter_rows(cal, k)
            _each(pool, [(_copy_columns, rows, shares[lane], shares[lane + 1], columns,
                          nonzero[lane]) for lane in range(lanes)])
            quarter = (k, columns, nonzero.any(axis=0))
            _each(pool, [(_lane_figures, lane, lanes, quarter, spec, (running, started),
                          (values[lane], kept[lane], within[lane]), qs, out)
                         for lane in range(lanes)])


def _quarter_rows(cal, k):
    """cal[:, k, :], in one block of memory (a copy only if cal is not laid out
    quarter-major, as engine.new_outputs lays it out)."""
    rows = cal[:, k, :]
    return rows if rows.flags.c_contiguous else np.ascontiguousarray(rows)


def _each(pool, calls):
    """Each (kernel, *arguments) of calls on the pool's threads; returns when all are done."""
    for done in [pool.submit(*call) for call in calls]:
        done.result()


@njit(cache=True, nogil=True)
def _copy_columns(rows, start, end, columns, nonzero):
    """columns[:, start:end] = rows[start:end].T, and nonzero[c]: whether any of these
    paths' values of column c is not zero (counted in memory of the kernel's own: the
    lanes' rows of nonzero share a cache line, which writes would pass to and fro)."""
    counts = np.zeros(rows.shape[1], np.int64)
    for p in range(start, end):
        for c in range(rows.shape[1]):
            v = rows[p, c]
            columns[c, p] = v
            counts[c] += v != 0.0
    for c in range(rows.shape[1]):
        nonzero[c] = counts[c] > 0


@njit(cache=True, nogil=True)
def _lane_figures(lane, lanes, quarter, spec, sums, work, qs, out):
    """Quarter k's figures of every lanes-th line from ``lane`` (the costly lines spread):
    ``quarter`` is (k, its columns, which columns are not all zero), ``sums`` (the
    running sums, which lines' are not all zero)."""
    k, columns, nonzero = quarter
    parts, signs, cumulative, divisor, sums_at = spec
    running, started = sums
    values, kept, within = work
    for i in range(lane, parts.shape[0], lanes):
        present = False
        for j in range(parts.shape[1]):
            present |= parts[i, j] >= 0 and nonzero[parts[i, j]]
        started[i] |= present
        if not (started[i] if cumulative[i] else present):
            out[i, k] = 0.0   # every value 0.0 (0.0 + 0.0 * sign, 0.0 / days)
            continue
        total, differ = _line_values(columns, parts[i], signs[i], cumulative[i],
                                     divisor[i, k], running[max(sums_at[i], 0)], values)
        out[i, k, 0] = total / values.shape[0]
        if differ == 0:   # (a constant quarter: common)
            out[i, k, 1:] = values[0]
        else:
            _percentiles(values, qs, kept, within, out[i, k, 1:])


@njit(cache=True)
def percentiles(values, qs):
    """numpy's linear percentiles qs (0-100) of values: finite, and reordered in place."""
    out = np.empty(qs.shape[0])
    _percentiles(values, qs, np.empty_like(values), np.empty(values.shape[0], np.bool_), out)
    return out


@njit(cache=True, **INNER)
def _line_values(columns, parts, signs, cumulative, divisor, running, values):
    """One quarter of a line, every path, into values; returns their sum in path order
    and how many differ from the first. A path's value is made with the same
    operations, in the same order, as the sum over its parts (the same to the last bit)."""
    total = 0.0
    differ = 0
    first = 0.0
    for p in range(values.shape[0]):
        v = 0.0
        for j in range(parts.shape[0]):
            if parts[j] >= 0:
                v += signs[j] * columns[parts[j], p]
        if cumulative:
            running[p] += v
            v = running[p]
        if divisor != 1.0:   # (a division costs more than the rest)
            v /= divisor
        values[p] = v
        if p == 0:
            first = v
        total += v
        differ += v != first
    return total, differ


@njit(cache=True, **INNER)
def _percentiles(values, qs, kept, within, out):
    """numpy's linear percentiles qs (0-100) of values (reordered in place) into out
    (kept and within: work arrays as long as values)."""
    n = values.shape[0]
    m = qs.shape[0]
    ranks = np.empty(2 * m, np.int64)   # each percentile's two neighbouring ranks
    for j in range(m):
        r0 = int(math.floor((n - 1) * (qs[j] / 100.0)))
        ranks[2 * j] = r0
        ranks[2 * j + 1] = min(r0 + 1, n - 1)
    at = np.empty(2 * m)
    if n <= _SAMPLED:
        _select(values, _sorted(ranks))
        for j in range(2 * m):
            at[j] = values[ranks[j]]
    else:
        _order_statistics(values, ranks, kept, within, at)
    for j in range(m):
        out[j] = _lerp(at[2 * j], at[2 * j + 1], (n - 1) * (qs[j] / 100.0) - ranks[2 * j])


@njit(cache=True, **INNER)
def _order_statistics(values, ranks, kept, within, at):
    """at[j] = the ranks[j]-th smallest of values (ranks in pairs, a percentile's two),
    selected among the values within the brackets a sample gives; among all values
    where a bracket misses (rarely: it is three standard deviations wide)."""
    low, high = _brackets(values, ranks)
    below, upto, found = _bracketed(values, low, high, within, kept)
    before = np.cumsum(upto - below) - (upto - below)   # kept from the lower brackets
    wanted = np.full(ranks.shape[0], -1, np.int64)       # each rank's place in kept
    for j in range(ranks.shape[0]):
        for c in range(low.shape[0]):
            if below[c] <= ranks[j] < upto[c]:
                wanted[j] = ranks[j] - below[c] + before[c]
    if np.all(wanted >= 0):
        _select(kept[:found], _sorted(wanted))
        for j in range(ranks.shape[0]):
            at[j] = kept[wanted[j]]
    else:
        _select(values, _sorted(ranks))
        for j in range(ranks.shape[0]):
            at[j] = values[ranks[j]]


@njit(cache=True, **INNER)
def _brackets(values, ranks):
    """Disjoint intervals, in order, that most likely hold the order statistics ranks
    (in pairs): Floyd and Rivest's, from a sample of about n^(2/3) values, each pair's
    between sample values three standard deviations of a sample rank either side."""
    n = values.shape[0]
    sample = values[::n // int(n ** (2.0 / 3.0))].copy()
    s = sample.shape[0]
    sides = np.empty(ranks.shape[0], np.int64)   # each pair's lower and upper sample rank
    for j in range(0, ranks.shape[0], 2):
        f = ranks[j] / (n - 1)
        spread = 3.0 * math.sqrt(s * f * (1.0 - f)) + 2.0
        sides[j] = max(int(f * (s - 1) - spread), 0)
        sides[j + 1] = min(int(f * (s - 1) + spread) + 1, s - 1)
    _select(sample, _sorted(sides))
    return _merged(sample[sides[0::2]], sample[sides[1::2]])


@njit(cache=True, **INNER)
def _merged(low, high):
    """The intervals [low[j], high[j]], overlapping ones merged, in order."""
    order = _sorted(np.arange(low.shape[0]), low)
    merged_low = np.empty(low.shape[0])
    merged_high = np.empty(low.shape[0])
    c = -1
    for j in order:
        if c >= 0 and low[j] <= merged_high[c]:
            merged_high[c] = max(merged_high[c], high[j])
        else:
            c += 1
            merged_low[c] = low[j]
            merged_high[c] = high[j]
    return merged_low[:c + 1], merged_high[:c + 1]


@njit(cache=True, **INNER)
def _bracketed(values, low, high, within, kept):
    """For each interval c, the values below low[c] and up to high[c] (counts), and the
    values within any interval copied, in path order, to the start of kept (returns
    the two counts and how many were kept). Branch-free loops: vectorised, but the copy."""
    n = values.shape[0]
    below = np.empty(low.shape[0], np.int64)
    upto = np.empty(low.shape[0], np.int64)
    within[:] = False
    for c in range(low.shape[0]):
        lo, hi = low[c], high[c]
        count_below = 0
        count_upto = 0
        for p in range(n):
            v = values[p]
            count_below += v < lo
            count_upto += v <= hi
            within[p] |= (v >= lo) & (v <= hi)
        below[c] = count_below
        upto[c] = count_upto
    found = 0
    for p in range(n):
        kept[found] = values[p]   # (written always, kept only if within)
        found += within[p]
    return below, upto, found


@njit(cache=True, **INNER)
def _sorted(x, by=None):
    """A sorted copy of the few values x (a handful of ranks or brackets; by: sorted by
    by[x] instead), by insertion: numba's general sort compiled for longer than it ran."""
    out = x.copy()
    for i in range(1, out.shape[0]):
        v = out[i]
        j = i
        while j > 0 and (out[j - 1] > v if by is None else by[out[j - 1]] > by[v]):
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
    return out


@njit(cache=True, **INNER)
def _lerp(a, b, t):
    """numpy's interpolation between neighbouring order statistics (exact at both ends)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


@njit(cache=True, **INNER)
def _select(a, ks):
    """Reorder a so that a[k] is its k-th smallest value for every k of ks (sorted): a
    quickselect descending only into the ranges that hold some k."""
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
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))   # the median of three
        split = _partition(a, lo, hi, pivot, False)
        if split == lo:   # nothing below the pivot: its ties go first, where they belong
            split = _partition(a, lo, hi, pivot, True)
            if split == lo:   # (nothing equal either: a NaN)
                a[lo:hi].sort()
                continue
            _push(stack, top, split, hi, _first_from(ks, k0, k1, split), k1)
            top += 1
            continue
        m = _first_from(ks, k0, k1, split)
        _push(stack, top, lo, split, k0, m)
        _push(stack, top + 1, split, hi, m, k1)
        top += 2


@njit(cache=True, **INNER)
def _first_from(ks, k0, k1, split):
    """The first of ks[k0:k1] (sorted) at or after split (k1 if none)."""
    while k0 < k1 and ks[k0] < split:
        k0 += 1
    return k0


@njit(cache=True, inline="always")
def _push(stack, at, lo, hi, k0, k1):
    stack[at, 0] = lo
    stack[at, 1] = hi
    stack[at, 2] = k0
    stack[at, 3] = k1


@njit(cache=True, **INNER)
def _partition(a, lo, hi, pivot, ties):
    """Move the values of a[lo:hi] below pivot (and equal to it, if ties) to its start;
    returns where the rest start. Branch-free (Lomuto's, every value swapped): a
    mispredicted branch per value cost more than the swaps."""
    split = lo
    for i in range(lo, hi):
        v = a[i]
        a[i] = a[split]
        a[split] = v
        split += (v < pivot) | (ties & (v == pivot))
    return split
