"""Means and exact percentiles across paths of the quarterly lines, as numba kernels.

The fan-chart table (metrics.quarters_table) needs, for each line and calendar
quarter, the mean and a few percentiles over every path. The lines are shared among
the cores, each working through the quarters on its own, with no waiting for the
other. A quarter's rows (together in memory, as engine.new_outputs lays the quarters
out) are read a block of paths at a time: each of the core's lines gets its values,
their sum in path order (the mean numpy takes along the paths of a path-major array)
and a count of the values unlike the first. Unless all are equal, a line's
percentiles are then found: a sample brackets each order statistic they need, one
branch-free pass counts the values below each bracket and copies out those within,
and a quickselect among these few picks them. Percentiles are numpy's default
("linear"): the same values.
"""
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from .cache import INNER

_SMALL = 16        # a range this short is sorted
_SAMPLED = 4096    # fewer values are selected directly, more through a sample
_BLOCK = 512       # paths whose rows a lane works through at a time


def lanes() -> int:
    """The lanes line_figures shares the lines among: one a thread the kernels run on."""
    return numba.get_num_threads()


def line_figures(cal, parts, signs, cumulative, divisor, qs, lanes, out):
    """Fill out[line, quarter] with (mean, then each percentile of qs) over paths.

    Line i is the sum of signs[i, j] * cal[:, :, parts[i, j]] over its parts (a part
    < 0 is unused), summed over the quarters so far if cumulative[i], and divided by
    divisor[i, quarter]. Every lanes-th line goes to one of ``lanes`` threads, with
    work arrays of its own; the kernels release the GIL, so Python's threads run them
    side by side."""
    by_quarter = cal.transpose(1, 0, 2)   # (a copy only if cal is not quarter-major)
    if not by_quarter.flags.c_contiguous:
        by_quarter = np.ascontiguousarray(by_quarter)
    n_paths = cal.shape[0]
    shares = [np.arange(lane, parts.shape[0], lanes) for lane in range(lanes)]
    spec = (parts, signs, cumulative, divisor)
    with ThreadPoolExecutor(lanes) as pool:
        done = [pool.submit(_lane_lines, by_quarter, mine, spec, _work(len(mine), n_paths),
                            qs, out) for mine in shares if len(mine)]
        for lane in done:
            lane.result()


def _work(lines, n_paths):
    """A lane's work arrays: its lines' values of a quarter, their running sums, and
    two for the percentiles (new memory costs more than the work done in it, so once)."""
    return (np.empty((lines, n_paths)), np.zeros((lines, n_paths)), np.empty(n_paths),
            np.empty(n_paths, np.bool_))


@njit(cache=True, nogil=True)
def _lane_lines(by_quarter, lines, spec, work, qs, out):
    """Every quarter's figures of the lines ``lines``, from by_quarter (quarter, path,
    column)."""
    parts, signs, cumulative, divisor = spec
    values, running, kept, within = work
    n = by_quarter.shape[1]
    totals = np.empty(lines.shape[0])
    differ = np.empty(lines.shape[0], np.int64)
    for k in range(by_quarter.shape[0]):
        _quarter_values(by_quarter[k], lines, spec, k, (running, values, totals, differ))
        for j in range(lines.shape[0]):
            i = lines[j]
            out[i, k, 0] = totals[j] / n
            if differ[j] == 0:   # (a quarter of zeros, say: common)
                out[i, k, 1:] = values[j, 0]
            else:
                _percentiles(values[j], qs, kept, within, out[i, k, 1:])


@njit(cache=True, **INNER)
def _quarter_values(rows, lines, spec, k, into):
    """Quarter k's value of each of ``lines`` on every path (rows: the quarter's, a row
    a path) into values, running totals kept in running; in totals their sums in path
    order, in differ how many differ from the first path's. _BLOCK paths at a time,
    whose rows stay in the cache while each line reads its columns."""
    running, values, totals, differ = into
    totals[:] = 0.0
    differ[:] = 0
    for a in range(0, rows.shape[0], _BLOCK):
        b = min(a + _BLOCK, rows.shape[0])
        for j in range(lines.shape[0]):
            _block_values(rows, (a, b), (lines[j], k), spec, running[j], values[j])
            first = values[j, 0]
            count = 0
            for p in range(a, b):
                count += values[j, p] != first
            differ[j] += count
        _add_in_order(values, a, b, totals)


@njit(cache=True, **INNER)
def _block_values(rows, paths, at, spec, running, values):
    """values[a:b] of line i in quarter k (paths: (a, b), at: (i, k)): the same
    operations, in the same order, as the sum over its parts path by path (so the same
    values to the last bit)."""
    parts, signs, cumulative, divisor = spec
    a, b = paths
    i, k = at
    values[a:b] = 0.0
    for m in range(parts.shape[1]):
        column = parts[i, m]
        if column >= 0:
            sign = signs[i, m]
            for p in range(a, b):
                values[p] += sign * rows[p, column]
    if cumulative[i]:
        for p in range(a, b):
            running[p] += values[p]
            values[p] = running[p]
    if divisor[i, k] != 1.0:   # (a division costs more than the rest)
        for p in range(a, b):
            values[p] /= divisor[i, k]


@njit(cache=True, **INNER)
def _add_in_order(values, a, b, totals):
    """totals[j] += values[j, a:b], each in path order (numpy's sum along the paths of a
    path-major array); four lines at a time, as their sums can go forward side by side."""
    j = 0
    while j + 4 <= values.shape[0]:
        t0, t1, t2, t3 = totals[j], totals[j + 1], totals[j + 2], totals[j + 3]
        for p in range(a, b):
            t0 += values[j, p]
            t1 += values[j + 1, p]
            t2 += values[j + 2, p]
            t3 += values[j + 3, p]
        totals[j], totals[j + 1], totals[j + 2], totals[j + 3] = t0, t1, t2, t3
        j += 4
    for rest in range(j, values.shape[0]):
        t = totals[rest]
        for p in range(a, b):
            t += values[rest, p]
        totals[rest] = t


@njit(cache=True)
def percentiles(values, qs):
    """numpy's linear percentiles qs (0-100) of values: finite, and reordered in place."""
    out = np.empty(qs.shape[0])
    _percentiles(values, qs, np.empty_like(values), np.empty(values.shape[0], np.bool_), out)
    return out


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
