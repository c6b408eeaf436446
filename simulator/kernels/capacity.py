"""Capacity: each team's caseload limit, FIFO waiting list and losses from it."""
import numpy as np

from ..layout import (
    C_CARE_END_AGE,
    C_CASELOAD_LIMIT,
    C_REFERENCE_AGE,
    C_SERVICE_END,
    DAYS_PER_YEAR,
    EV_LEAVE,
    P_AGE_HR,
    P_MAX_WAIT_DAYS,
    ST_LOST_CARE,
    ST_LOST_SERVICE_END,
    ST_LOST_WAIT,
    ST_STARTED,
)
from .cache import path_helper, path_kernel
from .care import first_entry
from .vector import INF, pick


@path_helper
def _first_to_end(open_end, n_open):
    """Index of the open case that ends first (-1 if none): a branch-free scan of a few cases."""
    which = -1
    best = INF
    for c in range(n_open):
        earlier = open_end[c] < best
        best = open_end[c] if earlier else best
        which = c if earlier else which
    return which


@path_helper
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


@path_kernel
def run_capacity(prm, scenario, people, staffing, queue, posts):
    """Each team's FIFO waiting list and caseloads: every young person's status, treatment
    start and end (or when they left the list), and whether a therapist left mid-way.
    ``posts``: (caseload, staffed) work arrays, one a post."""
    people.start_t[:] = INF
    people.end_t[:] = INF
    waiting_deadlines(prm, scenario.config, people)
    n_acc = people.team.shape[0]
    # the accepted young people come team by team (see screen_referrals): a team's are a range
    end = np.int64(0)   # (not a literal 0: numba would compile run_team for it too)
    for k in range(scenario.team_start.shape[0]):
        begin = end
        end = team_range_end(people.team, begin, n_acc, k)
        run_team(k, begin, end, people, staffing, scenario.config, queue, posts)


@path_kernel
def waiting_deadlines(prm, cfg, people):
    """When each young person would leave a waiting list: at the longest wait, or on
    entering care first (their untreated first entry; lost_to_care says which). For all
    of them at once, before the capacity loops: under one constant hazard, a loop of
    arithmetic only, which vectorises; it also gives the untreated walk its first
    entry time (first_entry_t, with no horizon: written under one constant hazard only)."""
    accept_t, ref_time, age0, rate0, care_e0 = (people.accept_t, people.ref_time, people.age0,
                                                people.rate0, people.care_e0)
    deadline, lost_to_care, first_entry_t = (people.deadline, people.lost_to_care,
                                             people.first_entry_t)
    max_wait = prm[P_MAX_WAIT_DAYS]
    care_end_age = cfg[C_CARE_END_AGE]
    age_hr = prm[P_AGE_HR]
    ref_age = cfg[C_REFERENCE_AGE]
    if age_hr == 1.0:   # first_entry under one constant hazard, without a branch
        for c in range(accept_t.shape[0]):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            r = ref_time[c]
            enters = rate0[c] * (min(d_wait, t18) - r) >= care_e0[c]
            first_entry_t[c] = r + care_e0[c] / rate0[c]
            d_care = pick(enters, first_entry_t[c], INF)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)
    else:
        for c in range(accept_t.shape[0]):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            d_care = first_entry(care_e0[c], ref_time[c], min(d_wait, t18), age0[c], rate0[c],
                                 age_hr, ref_age)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)


@path_kernel
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


@path_kernel
def run_team(k, begin, end, people, staffing, cfg, queue, posts):
    """One team in event order: acceptances join a FIFO list; starts fill free places.

    The team's young people are the accepted ones begin .. end - 1 (in order). A
    waiting young person is lost when the wait passes the longest wait or they enter
    care first (their untreated first entry: ``deadline`` and ``lost_to_care`` say which
    comes first), or when the service ends. A leaver's open cases move to the
    least-loaded staffed colleagues (over the limit if need be) and are marked
    disrupted. The work arrays (queue, posts) are the caller's, so that this kernel
    allocates nothing and runs without reference counting.
    """
    service_end = cfg[C_SERVICE_END]
    joins, open_end, open_case, open_post = queue
    caseload = posts[0]
    ev_t, ev_p, ev_k, post_team = staffing.ev_t, staffing.ev_p, staffing.ev_k, staffing.posts[0]
    m = end - begin
    for c in range(m):
        joins[c] = people.accept_t[np.uint64(begin + c)]
    joins[m] = INF   # after the last to join
    team = _team_posts(k, post_team, posts, int(cfg[C_CASELOAD_LIMIT]))
    n_ev = ev_t.shape[0]
    ei = _next_event(k, post_team, ev_p, 0, n_ev)
    joined = 0
    state = (0, 0, -1)   # (head of the list, open cases, the open case that ends first)
    while True:
        n_open, which = state[1], state[2]
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
            _staffing_event(ev_p[ei], ev_k[ei], n_open, queue, posts, team, people.disrupted)
            ei = _next_event(k, post_team, ev_p, ei + 1, n_ev)
        else:
            joined += 1
        state = _start_waiting(t, begin, joined, (state[0], n_open, which), people, queue,
                               posts, team, service_end)
    _lost_waiting(begin, state[0], m, people, service_end)


@path_helper
def _team_posts(k, post_team, posts, limit):
    """Team k's posts (a range: first post, number) and caseload limit, its posts'
    state reset (all posts: the work arrays are shared by the teams)."""
    caseload, staffed = posts
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
    return p0, n_team_posts, limit


@path_helper
def _next_event(k, post_team, ev_p, ei, n_ev):
    """The index of team k's next staffing event from ei (n_ev: none left)."""
    while ei < n_ev and post_team[ev_p[ei]] != k:
        ei += 1
    return ei


@path_helper
def _staffing_event(p, kind, n_open, queue, posts, team, disrupted):
    """Post p's therapist leaves (its open cases disrupted and moved to the least-loaded
    staffed colleagues) or the post is filled."""
    caseload, staffed = posts
    p0, n_team_posts, _ = team
    if kind == EV_LEAVE:
        staffed[p] = False
        for c in range(n_open):
            if queue.open_post[c] == p:
                disrupted[queue.open_case[c]] = True
                q = _best_post(p0, n_team_posts, staffed, caseload, 1 << 30, p)
                if q >= 0:
                    caseload[p] -= 1
                    caseload[q] += 1
                    queue.open_post[c] = q
    else:
        staffed[p] = True


@path_helper
def _start_waiting(t, begin, joined, state, people, queue, posts, team, service_end):
    """At time t, the waiting list from its head: those past their deadline (or all, from
    the service end) leave it; the rest start treatment while a post has room.
    ``state``: (head, open cases, the open case that ends first), returned updated."""
    head, n_open, which = state
    status, start_t, end_t = people.status, people.start_t, people.end_t
    deadline, lost_to_care = people.deadline, people.lost_to_care
    caseload, staffed = posts
    p0, n_team_posts, limit = team
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
        end_t[i] = t + people.length[i]
        status[i] = ST_STARTED
        caseload[q] += 1
        queue.open_end[n_open] = end_t[i]
        queue.open_case[n_open] = i
        queue.open_post[n_open] = q
        if which < 0 or end_t[i] < queue.open_end[which]:
            which = n_open
        n_open += 1
        head += 1
    return head, n_open, which


@path_helper
def _lost_waiting(begin, head, m, people, service_end):
    """Those still waiting when the team's events end: lost, to the deadline met first."""
    for c in range(head, m):
        i = np.uint64(begin + c)
        if people.deadline[i] < service_end:
            people.status[i] = ST_LOST_CARE if people.lost_to_care[i] else ST_LOST_WAIT
        else:
            people.status[i] = ST_LOST_SERVICE_END
        people.end_t[i] = min(people.deadline[i], service_end)
