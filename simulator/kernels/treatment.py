"""Treatment: who started, waiting and caseload days, and the figures of treatment."""
import numpy as np

from ..layout import (
    C_MAX_TREATMENT_DAYS,
    C_MIN_TREATMENT_DAYS,
    K_CASELOAD_DAYS,
    K_STARTED,
    K_WAITING_DAYS,
    O_ACCEPTED,
    O_COMPLETED,
    O_DISRUPTED,
    O_FEMALE,
    O_LOST_CARE,
    O_LOST_SERVICE_END,
    O_LOST_WAIT,
    O_MEAN_AGE,
    O_MEAN_WAIT_DAYS,
    O_NONCOMPLETED,
    O_PRIOR_CARE,
    O_REJECTED,
    O_SHARE_UNDER_THRESHOLD,
    O_STARTED,
    O_STARTED_FIRST_YEAR,
    O_TREATMENT_DAYS_MEDIAN,
    P_SHORT_THRESHOLD_DAYS,
    ST_LOST_CARE,
    ST_LOST_SERVICE_END,
    ST_LOST_WAIT,
    ST_STARTED,
)
from .binning import bump, quarter_room, span
from .cache import path_helper, path_kernel
from .vector import pick


@path_kernel
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


@path_helper
def _bin(x, lo, scale, top):
    """x's bin of width 1 / scale from lo, the end bins taking what lies outside: monotone
    in x, so every value of a bin lies between those of the bins either side."""
    return int(min(max((x - lo) * scale, 0.0), top))


@path_kernel
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
    m = np.int64(0)   # (not a literal: see care._NO)
    for c in range(n):   # branch-free: which values are kept is a coin toss
        x = a[c]
        b = _bin(x, lo, scale, top)
        work[m] = x
        m += (b_first <= b) & (b <= b_h)
    k = h - below_first             # rank h among the values kept
    _select(work, np.int64(0), m, k)   # (not a literal: see care._NO)
    if n % 2:
        return work[k]
    low = work[0]
    for c in range(1, k):  # the largest below it: rank h - 1
        low = max(low, work[c])
    return (low + work[k]) / 2.0


@path_kernel
def treatment_outcomes(people, scenario, first_year, k_slope, rows, lengths):
    """After the capacity model: each young person's waiting and caseload days (slope-binned
    into k_slope beside rows.cal), starts by quarter, the treatment lengths of those who
    started (into ``lengths``, in order) and the counts of losses and of who started.
    Returns (started, total wait, total age at referral of those who started)."""
    cal_edges, day_q, cal_out = scenario.calendar_edges, scenario.day_quarter, rows.cal
    first_year_a, first_year_b = first_year
    status, accept_t, start_t, end_t = (people.status, people.accept_t, people.start_t,
                                        people.end_t)
    n_started = 0
    wait_sum = 0.0
    age_sum = 0.0
    # totals kept in registers and written once (see care.care_outcomes)
    lost_wait = 0
    lost_care = 0
    lost_service_end = 0
    started_first_year = 0
    noncompleted_n = 0
    disrupted_n = 0
    female_n = 0
    prior_care_n = 0
    for c in range(status.shape[0]):
        i = np.uint64(c)   # (unsigned: see the binning helpers)
        st = status[i]
        lost_wait += st == ST_LOST_WAIT
        lost_care += st == ST_LOST_CARE
        lost_service_end += st == ST_LOST_SERVICE_END
        if st != ST_STARTED:  # lost: waited from acceptance until leaving the list
            span(accept_t[i], end_t[i], 1.0, cal_edges, day_q, k_slope, cal_out, K_WAITING_DAYS)
            continue
        s = start_t[i]
        k_s = _waiting_and_caseload(accept_t[i], s, end_t[i], cal_edges, day_q, k_slope, cal_out)
        lengths[n_started] = end_t[i] - s
        n_started += 1
        wait_sum += s - accept_t[i]
        age_sum += people.age0[i]
        if s >= cal_edges[0] and k_s >= 0:
            cal_out[k_s, K_STARTED] += 1.0
        started_first_year += (first_year_a <= s) & (s < first_year_b)
        noncompleted_n += people.noncompleted[c]
        disrupted_n += people.disrupted[i]
        female_n += people.female[c]
        prior_care_n += people.prior[i]
    out = rows.out
    out[O_LOST_WAIT] += lost_wait
    out[O_LOST_CARE] += lost_care
    out[O_LOST_SERVICE_END] += lost_service_end
    out[O_STARTED_FIRST_YEAR] += started_first_year
    out[O_NONCOMPLETED] += noncompleted_n
    out[O_DISRUPTED] += disrupted_n
    out[O_FEMALE] += female_n
    out[O_PRIOR_CARE] += prior_care_n
    return n_started, wait_sum, age_sum


@path_helper
def _waiting_and_caseload(accepted, s, e, cal_edges, day_q, k_slope, cal_out):
    """Waiting [acceptance, s) and caseload [s, e) days by calendar quarter, sharing the
    look-up at s; returns the quarter of s."""
    k_acc, room_acc = quarter_room(accepted, cal_edges, day_q)
    k_s, room_s = quarter_room(s, cal_edges, day_q)
    k_e, room_e = quarter_room(e, cal_edges, day_q)
    w_wait = pick(s > accepted, 1.0, 0.0)
    bump(k_acc, room_acc, w_wait, k_slope, cal_out, K_WAITING_DAYS)
    bump(k_s, room_s, -w_wait, k_slope, cal_out, K_WAITING_DAYS)
    bump(k_s, room_s, 1.0, k_slope, cal_out, K_CASELOAD_DAYS)
    bump(k_e, room_e, -1.0, k_slope, cal_out, K_CASELOAD_DAYS)
    return k_s


@path_kernel
def treatment_figures(prm, cfg, out, n_ref, started, lengths, median_counts, median_work):
    """A path's figures of treatment: accepted, started and completed, the share of
    treatments under the short threshold, the median length, the mean wait and age.
    ``started``: treatment_outcomes' (started, total wait, total age)."""
    n_started, wait_sum, age_sum = started
    out[O_ACCEPTED] = n_ref - out[O_REJECTED]
    out[O_STARTED] = n_started
    out[O_COMPLETED] = n_started - out[O_NONCOMPLETED]
    if n_started > 0:
        short = 0
        for c in range(n_started):
            short += lengths[c] < prm[P_SHORT_THRESHOLD_DAYS]
        out[O_SHARE_UNDER_THRESHOLD] = short / n_started
        out[O_TREATMENT_DAYS_MEDIAN] = median_binned(
            lengths, n_started, cfg[C_MIN_TREATMENT_DAYS], cfg[C_MAX_TREATMENT_DAYS],
            median_counts, median_work)
        out[O_MEAN_WAIT_DAYS] = wait_sum / n_started
        out[O_MEAN_AGE] = age_sum / n_started
    else:
        out[O_TREATMENT_DAYS_MEDIAN] = np.nan
        out[O_SHARE_UNDER_THRESHOLD] = np.nan
        out[O_MEAN_WAIT_DAYS] = np.nan
        out[O_MEAN_AGE] = np.nan
