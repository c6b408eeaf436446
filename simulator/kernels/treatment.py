"""TODO docstring."""
from numba import njit

from .cache import FASTMATH


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _select(a, lo, hi, k):
    """Move the k-th smallest of a[lo:hi] to a[k], smaller values before it: quickselect
    with branch-free partitions (whether a value is below the pivot is a coin toss)."""
    while hi - lo > 1:
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        i = lo
        for j in range(lo, hi):  # a[lo:i] < pivot <= a[i:j]
            v = a[j]
            a[j] = a[i]
            a[i] = v
            i += v < pivot
        if k < i:
            hi = i
            continue
        m = i
        for j in range(i, hi):  # a[i:m] == pivot < a[m:j]
            v = a[j]
            a[j] = a[m]
            a[m] = v
            m += v <= pivot
        if k < m:
            return
        lo = m


MEDIAN_BINS = 64


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin(x, lo, scale, top):
    """x's bin of width 1 / scale from lo, the end bins taking what lies outside: monotone
    in x, so every value of a bin lies between those of the bins either side."""
    return int(min(max((x - lo) * scale, 0.0), top))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def median_binned(a, n, lo, hi, counts, work):
    """np.median(a[:n]) (n > 0) for values that mostly lie in [lo, hi] (any are right): count
    them into len(counts) bins, then select the middle among those in the bin or two that
    hold it, copied to ``work`` (room for n). Two passes over a, where quickselect on all of
    them made about five; a is left as it was."""
    nb = counts.shape[0]
    for b in range(nb):
        counts[b] = 0
    scale = nb / (hi - lo) if hi > lo else 0.0
    top = nb - 1.0
    for c in range(n):
        counts[_bin(a[c], lo, scale, top)] += 1
    h = n // 2
    first = h if n % 2 else h - 1   # the lower of the middle ranks (the same if n is odd)
    below = 0                       # values in the bins before b
    b_first = -1
    below_first = 0
    b_h = nb - 1
    for b in range(nb):
        if b_first < 0 and below + counts[b] > first:
            b_first = b
            below_first = below
        if below + counts[b] > h:
            b_h = b
            break
        below += counts[b]
    m = 0
    for c in range(n):   # branch-free: which values are kept is a coin toss
        x = a[c]
        b = _bin(x, lo, scale, top)
        work[m] = x
        m += (b_first <= b) & (b <= b_h)
    k = h - below_first             # rank h among the values kept
    _select(work, 0, m, k)
    if n % 2:
        return work[k]
    low = work[0]
    for c in range(1, k):  # the largest below it: rank h - 1
        low = max(low, work[c])
    return (low + work[k]) / 2.0
