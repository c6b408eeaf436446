"""Days into quarters: intervals of days binned into calendar quarters, quarters since
tracking start and the tracking-cohort band, by their end points (slope binning)."""
import math

import numpy as np
from numba import njit

from .cache import FASTMATH, path_helper, path_kernel
from .vector import INF


@path_kernel
def bin_of(t, edges):
    """searchsorted(edges, t, side="right") - 1: the bin holding t (-1 below, nb above).

    Calendar quarters are nearly equal in length, so a proportional guess lands on
    or next to the right bin; stepping from it is exact for any sorted edges.
    """
    nb = edges.shape[0] - 1
    if not t >= edges[0]:
        return -1
    if t >= edges[nb]:
        return nb
    i = min(int((t - edges[0]) * nb / (edges[nb] - edges[0])), nb - 1)
    while edges[i] > t:
        i -= 1
    while edges[i + 1] <= t:
        i += 1
    return i


@path_kernel
def add_interval(a, b, edges, out, col, weight):
    """Add the overlap of [a, b) with each bin of ``edges`` (times weight) to out[:, col]
    (col an int64: as a literal, each column would compile a copy of its own)."""
    if b <= a:
        return
    nb = edges.shape[0] - 1
    i = max(bin_of(a, edges), 0)
    while i < nb and edges[i] < b:
        lo = max(a, edges[i])
        hi = min(b, edges[i + 1])
        if hi > lo:
            out[i, col] += (hi - lo) * weight
        i += 1


# Indices known to be non-negative are cast to unsigned (np.uint64) in the hot
# helpers and loops: numba then leaves out the code that wraps negative indices
# around, a few instructions per access.
#
# Calendar quarters start on whole days, so a table from day to quarter gives
# the quarter of any time in one look-up. The hot paths bin intervals by their
# end points: where an interval of weight w opens, w joins the running slope
# of its quarter and w * (quarter end - time) its content; where it closes, the
# same with -w. settle() then adds slope-so-far * width to each quarter, once
# per path. An interval so costs two look-ups however many quarters it spans.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def day_quarters(edges):
    """Quarter index of each whole day from edges[0] to edges[-1] (edges must be whole days)."""
    for e in edges:
        if e != math.floor(e):
            raise ValueError("calendar edges must fall on whole days")
    d0 = edges[0]
    n = int(edges[-1] - d0)
    table = np.empty(n, np.int16)   # (small, so that it stays in the first-level cache)
    k = 0
    for d in range(n):
        while edges[k + 1] <= d0 + d:
            k += 1
        table[d] = k
    return table


@path_kernel
def quarter_of(t, edges, day_q):
    """bin_of for whole-day edges: -1 before the first quarter, nb after the last."""
    if not t >= edges[0]:
        return -1
    x = np.floor(t) - edges[0]   # (np.floor stays a float: no round trip via int)
    if not x < day_q.shape[0]:   # compared as a float: int(+inf) is undefined
        return edges.shape[0] - 1
    return day_q[np.uint64(int(x))]


@path_kernel
def quarter_bounds(k, edges):
    """The times whose quarter_of is k: [edges[k], edges[k + 1]), open-ended for -1 (before
    the first quarter) and for the index after the last."""
    nb = edges.shape[0] - 1
    lo = edges[np.uint64(k)] if k >= 0 else -INF
    hi = edges[np.uint64(k + 1)] if k < nb else INF
    return lo, hi


@path_kernel
def count_at(t, edges, day_q, out, col, w):
    k = quarter_of(t, edges, day_q)
    if 0 <= k < edges.shape[0] - 1:
        out[k, col] += w


@path_helper
def add_count(k, n, out, col):
    """Add the count n to quarter k of out[:, col] (nothing if k is -1 or past the last)."""
    if 0 <= k < out.shape[0]:
        out[k, col] += n


@path_kernel
def quarter_room(t, edges, day_q):
    """(quarter of t, days from t to the quarter's end) for slope binning; quarter -1 after
    the last quarter (nothing to bin), and a time before the first counts from its start."""
    if t < edges[0]:
        return 0, edges[1] - edges[0]
    x = np.floor(t) - edges[0]   # (np.floor stays a float: no round trip via int)
    if not x < day_q.shape[0]:   # compared as a float: int(+inf) is undefined
        return -1, 0.0
    k = day_q[np.uint64(int(x))]
    return k, edges[np.uint64(k + 1)] - t


@path_kernel
def bump(k, room, w, slope, part, col):
    """Slope binning at a looked-up (quarter, room): several columns can share one look-up."""
    if k >= 0:
        uk = np.uint64(k)
        uc = np.uint64(col)
        slope[uk, uc] += w
        part[uk, uc] += w * room


@path_kernel
def slope_at(t, w, edges, day_q, slope, part, col):
    """An interval of weight w opens at t (w < 0: closes) in calendar quarters."""
    k, room = quarter_room(t, edges, day_q)
    bump(k, room, w, slope, part, col)


@path_kernel
def span(a, b, w, edges, day_q, slope, part, col):
    """[a, b) with weight w, in calendar quarters."""
    if b > a:
        slope_at(a, w, edges, day_q, slope, part, col)
        slope_at(b, -w, edges, day_q, slope, part, col)


@path_kernel
def slope_at_since(x, w, width, slope, part, col):
    """As slope_at for quarters of equal width since a young person's tracking start (x >= 0).

    The quarter is found by multiplying by 1 / width (a constant: no division on the
    hot path). Where x is a quarter boundary to rounding, either neighbour is right:
    the quarter before gets room 0 and the slope, which settle() turns into the same days.
    """
    k = int(x * (1.0 / width))
    if k < slope.shape[0]:
        uk = np.uint64(k)
        uc = np.uint64(col)
        slope[uk, uc] += w
        part[uk, uc] += w * ((k + 1) * width - x)


@path_kernel
def settle(edges, width, slope, part):
    """Turn slope-binned contents into days per bin (edges, or equal ``width`` if edges is
    empty). ``slope`` is overwritten with its running sum down the bins: row after row,
    so the inner loop runs along a row and vectorises."""
    for k in range(1, slope.shape[0]):
        uk = np.uint64(k)
        w = (edges[uk + 1] - edges[uk]) if edges.shape[0] else width
        for col in range(slope.shape[1]):
            uc = np.uint64(col)
            part[uk, uc] += slope[uk - 1, uc] * w
            slope[uk, uc] += slope[uk - 1, uc]


# Days by tracking cohort (the calendar quarter a young person's tracking window
# opens in) are kept as a band: row j, column c is cohort c in calendar quarter c + j,
# for the C_COHORT_QUARTERS quarters a window can reach, rather than a square quarter-
# by-cohort matrix that is mostly zeros. A row
# holds every cohort at one offset, so the passes over the band (settling, totals by
# quarter, the contract's true-up) run along rows, over cohorts, and vectorise.
@path_kernel
def bump_cohort(k, room, w, cohort, slope, part):
    """bump() into the cohort band: quarter k (>= cohort) of this cohort's column."""
    if k >= 0:
        uc = np.uint64(cohort)
        uj = np.uint64(k - cohort)
        slope[uj, uc] += w
        part[uj, uc] += w * room


@path_kernel
def span_cohort(a, b, w, edges, day_q, cohort, slope, part):
    """span() into the cohort band."""
    if b > a:
        k, room = quarter_room(a, edges, day_q)
        bump_cohort(k, room, w, cohort, slope, part)
        k, room = quarter_room(b, edges, day_q)
        bump_cohort(k, room, -w, cohort, slope, part)


@path_kernel
def settle_cohorts(edges, slope, part):
    """settle() for the cohort band: down each cohort's column to the last calendar quarter,
    a row (offset) at a time."""
    n_cal = edges.shape[0] - 1
    for j in range(1, slope.shape[0]):
        uj = np.uint64(j)
        for c in range(min(slope.shape[1], n_cal - j)):
            uc = np.uint64(c)
            part[uj, uc] += slope[uj - 1, uc] * (edges[uc + uj + 1] - edges[uc + uj])
            slope[uj, uc] += slope[uj - 1, uc]


@path_kernel
def cohort_totals(band, totals):
    """Days in each calendar quarter summed over the cohorts into ``totals`` (quarters,),
    overwritten. Rows from the last offset to the first, so that each quarter adds its
    cohorts in cohort order."""
    n_cal = totals.shape[0]
    for k in range(n_cal):
        totals[k] = 0.0
    for j in range(band.shape[0] - 1, -1, -1):
        uj = np.uint64(j)
        for c in range(min(band.shape[1], n_cal - j)):
            uc = np.uint64(c)
            totals[uc + uj] += band[uj, uc]
