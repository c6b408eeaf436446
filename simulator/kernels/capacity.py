"""TODO docstring."""
import numpy as np
from numba import njit

from ..layout import (
    C_REFERENCE_AGE,
    DAYS_PER_YEAR,
    EV_LEAVE,
    P_AGE_HR,
    ST_LOST_CARE,
    ST_LOST_SERVICE_END,
    ST_LOST_WAIT,
    ST_STARTED,
)
from .cache import FASTMATH
from .care import first_entry
from .vector import INF, pick


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _first_to_end(open_end, n_open):
    """Index of the open case that ends first (-1 if none): a branch-free scan of a few cases."""
    which = -1
    best = INF
    for c in range(n_open):
        earlier = open_end[c] < best
        best = open_end[c] if earlier else best
        which = c if earlier else which
    return which


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _best_post(p0, n, staffed, caseload, limit, exclude):
    """Staffed post with the fewest cases (below ``limit``), lowest index on ties; -1 if none."""
    best = -1
    fewest = limit   # branch-free scan: which post wins is not predictable
    for p in range(p0, p0 + n):
        up = np.uint64(p)   # (unsigned: see the binning helpers)
        better = staffed[up] & (p != exclude) & (caseload[up] < fewest)
        best = p if better else best
        fewest = caseload[up] if better else fewest
    return best


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def waiting_deadlines(n_acc, accept_t, ref_time, age0, rate0, care_e0, prm, cfg, max_wait,
                       care_end_age, deadline, lost_to_care, first_entry_t):
    """When each young person would leave a waiting list: at the longest wait, or on
    entering care first (their untreated first entry; lost_to_care says which). For all
    of them at once, before the capacity loops: under one constant hazard, a loop of
    arithmetic only, which vectorises; it also gives the untreated walk its first
    entry time (first_entry_t, with no horizon: written under one constant hazard only)."""
    age_hr = prm[P_AGE_HR]
    ref_age = cfg[C_REFERENCE_AGE]
    if age_hr == 1.0:   # first_entry under one constant hazard, without a branch
        for c in range(n_acc):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            r = ref_time[c]
            enters = rate0[c] * (min(d_wait, t18) - r) >= care_e0[c]
            first_entry_t[c] = r + care_e0[c] / rate0[c]
            d_care = pick(enters, first_entry_t[c], INF)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)
    else:
        for c in range(n_acc):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            d_care = first_entry(care_e0[c], ref_time[c], min(d_wait, t18), age0[c], rate0[c],
                                 age_hr, ref_age)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def team_range_end(acc_team, begin, n, k):
    """The end of team k's range of accepted young people, which starts at ``begin``
    (acc_team[:n] is in team order): a bisection."""
    lo = begin
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if acc_team[np.uint64(mid)] <= k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def run_team(k, begin, end, accept_t, status, start_t, end_t, disrupted, length,
              ev_t, ev_p, ev_k, post_team, limit, service_end, joins, deadline, lost_to_care,
              staffed, caseload, open_end, open_case, open_post):
    """One team in event order: acceptances join a FIFO list; starts fill free places.

    The team's young people are the accepted ones begin .. end - 1 (in order). A
    waiting young person is lost when the wait passes ``max_wait`` or they enter care
    first (their untreated first entry: ``deadline`` and ``lost_to_care`` say which
    comes first), or when the service ends. A leaver's open cases move to the
    least-loaded staffed colleagues (over the limit if need be) and are marked
    disrupted. The work arrays after lost_to_care are the caller's (sized for all
    accepted referrals), so that this kernel allocates nothing and runs without
    reference counting.
    """
    m = end - begin
    for c in range(m):
        joins[c] = accept_t[np.uint64(begin + c)]
    joins[m] = INF   # after the last to join
    n_posts = post_team.shape[0]
    p0 = n_posts
    n_team_posts = 0
    for p in range(n_posts):
        if post_team[p] == k:
            p0 = min(p0, p)
            n_team_posts += 1
    for p in range(n_posts):
        staffed[p] = False
        caseload[p] = 0
    # open cases (open_end, open_case, open_post), unordered: end time, young person, post
    n_open = 0
    n_ev = ev_t.shape[0]
    ei = 0
    while ei < n_ev and post_team[ev_p[ei]] != k:
        ei += 1
    joined = 0
    head = 0
    which = -1  # open case that ends first
    while True:
        t_acc = joins[np.uint64(joined)]
        t_ev = ev_t[ei] if ei < n_ev else INF
        t_end = open_end[which] if which >= 0 else INF
        t = min(t_acc, t_ev, t_end)
        if t == INF:
            break
        if which >= 0 and t_end <= t_ev and t_end <= t_acc:
            caseload[np.uint64(open_post[which])] -= 1
            n_open -= 1
            open_end[which] = open_end[n_open]
            open_case[which] = open_case[n_open]
            open_post[which] = open_post[n_open]
            which = _first_to_end(open_end, n_open)
        elif t_ev <= t_acc:
            p = ev_p[ei]
            if ev_k[ei] == EV_LEAVE:
                staffed[p] = False
                for c in range(n_open):
                    if open_post[c] == p:
                        disrupted[open_case[c]] = True
                        q = _best_post(p0, n_team_posts, staffed, caseload, 1 << 30, p)
                        if q >= 0:
                            caseload[p] -= 1
                            caseload[q] += 1
                            open_post[c] = q
            else:
                staffed[p] = True
            ei += 1
            while ei < n_ev and post_team[ev_p[ei]] != k:
                ei += 1
        else:
            joined += 1
        while head < joined:
            i = np.uint64(begin + head)
            if t >= service_end:  # whoever still waits is lost, to the deadline met first
                lost_first = deadline[i] < service_end
                status[i] = ST_LOST_SERVICE_END if not lost_first else (
                    ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT)
                end_t[i] = min(deadline[i], service_end)  # left the waiting list
                head += 1
                continue
            if deadline[i] < t:
                status[i] = ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT
                end_t[i] = deadline[i]
                head += 1
                continue
            q = _best_post(p0, n_team_posts, staffed, caseload, limit, -1)
            if q < 0:
                break
            start_t[i] = t
            end_t[i] = t + length[i]
            status[i] = ST_STARTED
            caseload[q] += 1
            open_end[n_open] = end_t[i]
            open_case[n_open] = i
            open_post[n_open] = q
            if which < 0 or end_t[i] < open_end[which]:
                which = n_open
            n_open += 1
            head += 1
    for c in range(head, m):
        i = np.uint64(begin + c)
        if deadline[i] < service_end:
            status[i] = ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT
        else:
            status[i] = ST_LOST_SERVICE_END
        end_t[i] = min(deadline[i], service_end)
