"""A path's work arrays: the bundles they travel in, cut from the thread's workspace.

A path's kernels allocate nothing: their work arrays are cut from a workspace that
each thread allocates once (four flat arrays, one per element type) and grows when a
path needs more. Compiled without reference counting, a view of the workspace costs
nothing. Arrays that travel together are named tuples, so that a kernel takes a few
bundles rather than dozens of arrays.
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from ..layout import (
    C_COHORT_QUARTERS,
    C_COHORTS,
    C_HAS_CONTRACT,
    C_REFERRALS_END,
    C_THERAPISTS_IN_WAITING,
    DAYS_PER_MONTH,
    N_CO,
    N_K,
    N_Q,
    P_START_DELAY_MONTHS,
)
from .cache import FASTMATH, path_helper, path_kernel
from .contract import N_BQ
from .referrals import referral_months
from .treatment import MEDIAN_BINS
from .waterfall import N_LINES, payment_work_size

# a workspace's first size (float, int, unsigned, bool elements; room for about 1,200
# referrals in Essex) and room for staffing events; both double when a path needs more
WORKSPACE_FIRST = (1 << 15, 1 << 13, 1 << 12, 1 << 12)
EVENTS_FIRST = 64


class Workspace(NamedTuple):
    """A thread's work memory: flat arrays of float64, int64, uint64 and bool."""
    f: np.ndarray
    i: np.ndarray
    u: np.ndarray
    b: np.ndarray


WORKSPACE_TYPES = (np.float64, np.int64, np.uint64, np.bool_)   # Workspace's, in order


def workspace(sizes) -> Workspace:
    """A workspace of sizes[j] elements of type j, made by Python (as a thread's is, so
    that the kernels cutting it need no reference counting; new_workspace: in a kernel)."""
    return Workspace(*(np.empty(n, t) for n, t in zip(sizes, WORKSPACE_TYPES, strict=True)))


class Sizes(NamedTuple):
    """The sizes of a path's work arrays known before its referrals are counted."""
    teams: int
    posts: int
    in_waiting: int       # therapists in waiting
    events: int           # room for staffing events
    months: int           # months of referrals of the team that takes them longest
    calendar: int         # calendar quarters
    tracking: int         # quarters since tracking start
    band: int             # calendar quarters a tracking cohort's days can fall in
    cohorts: int          # tracking cohorts
    outcome_events: int   # the contract's outcome events


class Staffing(NamedTuple):
    """Therapist posts and their staffing events (workforce's; capacity reads the events)."""
    times: np.ndarray     # (4, posts + therapists in waiting + 1) work rows
    keys: np.ndarray      # (posts,) each post's random stream
    posts: np.ndarray     # (2, posts) each post's team, and its next draw number
    ev_t: np.ndarray      # staffing events in time order: time,
    ev_p: np.ndarray      # post,
    ev_k: np.ndarray      # and kind (EV_LEAVE, EV_FILL)


class Counting(NamedTuple):
    """Referral counts per team-month and count_referrals' work (a cell a team-month)."""
    counts: np.ndarray    # (teams, months)
    real: np.ndarray      # (5, cells)
    ints: np.ndarray      # (3, cells)
    keys: np.ndarray      # (cells,)
    accepted: np.ndarray  # (cells,)


class Binning(NamedTuple):
    """Days slope-binned (binning.settle): slopes beside the contents they settle into
    (the path's calendar and tracking quarters, and cohort_days), and event counts."""
    k_slope: np.ndarray       # (calendar quarters, N_K)
    q_slope: np.ndarray       # (quarters since tracking start, N_Q)
    cohort_days: np.ndarray   # (N_CO, band, cohorts) care days by tracking cohort, CO_*
    cohort_slope: np.ndarray  # (N_CO, band, cohorts)
    event_counts: np.ndarray  # (2, calendar quarters, events): treated, counterfactual


class Money(NamedTuple):
    """The contract's and the waterfall's work arrays."""
    by_quarter: np.ndarray    # (contract.N_BQ, calendar quarters)
    lines: np.ndarray         # (calendar quarters, waterfall.N_LINES)
    payment_work: np.ndarray  # (waterfall.payment_work_size,)


class PathWork(NamedTuple):
    """The work arrays of a fixed size of one path."""
    team_start: np.ndarray    # (teams,) each team's start after the path's delay
    staffing: Staffing
    counting: Counting
    binning: Binning
    money: Money
    caseload: np.ndarray      # (posts,) open cases of each post
    staffed: np.ndarray       # (posts,) whether each post is staffed
    checks: np.ndarray        # (events,) a young person's outcome-event times
    in_care: np.ndarray       # (2, events) whether in care then: treated, counterfactual
    median_counts: np.ndarray  # (treatment.MEDIAN_BINS,)


class Referrals(NamedTuple):
    """Each referral, in order team by team (screen_referrals' arrays)."""
    team: np.ndarray
    time: np.ndarray
    key: np.ndarray
    rejected: np.ndarray      # the referrals rejected at screening
    slot: np.ndarray          # a referral's place in its month
    work: np.ndarray


class People(NamedTuple):
    """The accepted young people, team by team and in time order within a team: every
    kernel after screening works on these, in this order."""
    team: np.ndarray
    ref_time: np.ndarray
    key: np.ndarray           # each young person's random stream
    accept_t: np.ndarray
    age0: np.ndarray          # age at referral (years)
    prior: np.ndarray         # in care before
    rate0: np.ndarray         # untreated care-entry rate a day, at referral
    care_key: np.ndarray      # the care stream, its first draws made in advance:
    care_e0: np.ndarray       # the first care-entry target (the wait and both walks'),
    care_x1: np.ndarray       # the first spell's length,
    care_e2: np.ndarray       # the second entry target,
    care_x3: np.ndarray       # and the second spell's length
    length: np.ndarray        # treatment length, if treatment starts
    noncompleted: np.ndarray  # would not complete a treatment
    female: np.ndarray
    status: np.ndarray        # ST_*
    start_t: np.ndarray       # treatment start (inf: never)
    end_t: np.ndarray         # treatment end, or when the waiting list was left
    disrupted: np.ndarray     # lost a therapist during treatment
    deadline: np.ndarray      # when the waiting list would be left, at the latest
    lost_to_care: np.ndarray  # ... by entering care first
    first_entry_t: np.ndarray  # the untreated first entry (one constant hazard only)


class Queue(NamedTuple):
    """Capacity's work arrays (room for every accepted young person and one more)."""
    joins: np.ndarray         # acceptance times of a team's young people, then inf
    open_end: np.ndarray      # open cases (unordered): end time,
    open_case: np.ndarray     # young person,
    open_post: np.ndarray     # and post


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def new_workspace(n_f, n_i, n_u, n_b):
    """A thread's workspace of these many float, int, unsigned and bool elements."""
    return Workspace(np.empty(n_f), np.empty(n_i, np.int64), np.empty(n_u, np.uint64),
                     np.empty(n_b, np.bool_))


# The cutting helpers are compiled once per element type and called, not inlined:
# inlined, their slice and reshape would be compiled again at each of their thirty uses
# in simulate_path. Their size arguments are passed as int64 (I64), since a
# literal int argument compiles a copy of the helper for each value.
I64 = np.int64


@path_kernel
def _take(buf, at, n):
    """n elements of the workspace array buf from offset at, and the offset after them.
    Past buf's end the view is short: the caller checks the offset before using it."""
    return buf[at:at + n], at + n


@path_kernel
def _take2(buf, at, rows, cols):
    """_take as a (rows, cols) matrix (empty past buf's end)."""
    n = rows * cols
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, cols)), at + n
    return buf[at:at + n].reshape((rows, cols)), at + n


@path_kernel
def _take3(buf, at, n0, n1, n2):
    """_take as an (n0, n1, n2) array (empty past buf's end)."""
    n = n0 * n1 * n2
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, n1, n2)), at + n
    return buf[at:at + n].reshape((n0, n1, n2)), at + n


@path_helper
def fits(ws, at):
    """Whether the offsets ``at`` (float, int, unsigned, bool) lie within the workspace."""
    return (at[0] <= ws.f.shape[0] and at[1] <= ws.i.shape[0] and at[2] <= ws.u.shape[0]
            and at[3] <= ws.b.shape[0])


@path_helper
def path_sizes(prm, scenario, tracking, ev_cap):
    """The sizes of a path's fixed work arrays."""
    cfg = scenario.config
    n_posts = 0
    for k in range(scenario.team_size.shape[0]):
        n_posts += scenario.team_size[k]
    delay = prm[P_START_DELAY_MONTHS] * DAYS_PER_MONTH
    n_cal = scenario.calendar_edges.shape[0] - 1
    has_contract = cfg[C_HAS_CONTRACT] > 0.5
    return Sizes(scenario.team_start.shape[0], n_posts, int(cfg[C_THERAPISTS_IN_WAITING]),
                 ev_cap, referral_months(scenario.team_start, delay, cfg[C_REFERRALS_END]),
                 n_cal, tracking,
                 min(int(cfg[C_COHORT_QUARTERS]), n_cal) if has_contract else 0,
                 int(cfg[C_COHORTS]) if has_contract else 0, scenario.event_months.shape[0])


@path_helper
def path_work(ws, n):
    """A path's fixed work arrays cut from the workspace ws (sizes n), and the offsets
    after them (each past its array's end if the workspace is too small)."""
    cells = n.teams * n.months
    f, i, u, b = I64(0), I64(0), I64(0), I64(0)
    team_start, f = _take(ws.f, f, n.teams)
    times, f = _take2(ws.f, f, I64(4), n.posts + n.in_waiting + 1)
    ev_t, f = _take(ws.f, f, n.events)
    count_real, f = _take2(ws.f, f, I64(5), cells)
    k_slope, f = _take2(ws.f, f, n.calendar, I64(N_K))
    q_slope, f = _take2(ws.f, f, n.tracking, I64(N_Q))
    cohort_days, f = _take3(ws.f, f, I64(N_CO), n.band, n.cohorts)
    cohort_slope, f = _take3(ws.f, f, I64(N_CO), n.band, n.cohorts)
    event_counts, f = _take3(ws.f, f, I64(2), n.calendar, n.outcome_events)
    checks, f = _take(ws.f, f, n.outcome_events)
    by_quarter, f = _take2(ws.f, f, I64(N_BQ), n.calendar)
    lines, f = _take2(ws.f, f, n.calendar, I64(N_LINES))
    payment_work, f = _take(ws.f, f, payment_work_size(n.band, n.cohorts, n.calendar))
    posts, i = _take2(ws.i, i, I64(2), n.posts)
    ev_p, i = _take(ws.i, i, n.events)
    ev_k, i = _take(ws.i, i, n.events)
    counts, i = _take2(ws.i, i, n.teams, n.months)
    count_ints, i = _take2(ws.i, i, I64(3), cells)
    caseload, i = _take(ws.i, i, n.posts)
    median_counts, i = _take(ws.i, i, I64(MEDIAN_BINS))
    post_keys, u = _take(ws.u, u, n.posts)
    cell_keys, u = _take(ws.u, u, cells)
    cell_accepted, b = _take(ws.b, b, cells)
    staffed, b = _take(ws.b, b, n.posts)
    in_care, b = _take2(ws.b, b, I64(2), n.outcome_events)
    work = PathWork(team_start, Staffing(times, post_keys, posts, ev_t, ev_p, ev_k),
                    Counting(counts, count_real, count_ints, cell_keys, cell_accepted),
                    Binning(k_slope, q_slope, cohort_days, cohort_slope, event_counts),
                    Money(by_quarter, lines, payment_work), caseload, staffed, checks,
                    in_care, median_counts)
    return work, (f, i, u, b)


# Rows of the per-referral work matrices (float, int, unsigned, bool): the referrals'
# arrays, then the accepted young people's (People's fields), then capacity's.
F_REF_TIME, F_REF_WORK, F_TIME, F_ACCEPT, F_AGE, F_RATE, F_E0, F_X1, F_E2, F_X3 = range(10)
F_LENGTH, F_START, F_END, F_DEADLINE, F_OPEN_END, F_JOINS, F_LENGTHS, F_MEDIAN = range(10, 18)
F_FIRST_ENTRY = 18
F_ROWS = 19
I_REF_TEAM, I_REJECTED, I_SLOT, I_TEAM, I_STATUS, I_OPEN_CASE, I_OPEN_POST = range(7)
U_REF_KEY, U_KEY, U_CARE_KEY = range(3)
B_PRIOR, B_NONCOMPLETED, B_FEMALE, B_DISRUPTED, B_LOST_TO_CARE = range(5)


@path_helper
def person_work(ws, at, n_ref):
    """The per-referral work matrices (float, int, unsigned, bool), a row of n_ref + 1
    each (the most any kernel reads: n_ref, n_acc or n_acc + 1), cut from the workspace
    after the offsets ``at``, and the offsets after them. Bool rows start False."""
    wf, f = _take2(ws.f, at[0], I64(F_ROWS), n_ref + 1)
    wi, i = _take2(ws.i, at[1], I64(7), n_ref + 1)
    wu, u = _take2(ws.u, at[2], I64(3), n_ref + 1)
    wb, b = _take2(ws.b, at[3], I64(5), n_ref + 1)
    wb[:] = False
    return (wf, wi, wu, wb), (f, i, u, b)


@path_kernel
def referrals_of(mats, n):
    """The referrals' rows of the work matrices, n long."""
    wf, wi, wu, _ = mats
    return Referrals(wi[I_REF_TEAM, :n], wf[F_REF_TIME, :n], wu[U_REF_KEY, :n],
                     wi[I_REJECTED, :n], wi[I_SLOT, :n], wf[F_REF_WORK, :n])


@path_kernel
def people_of(mats, n):
    """The first n young people's rows of the work matrices."""
    wf, wi, wu, wb = mats
    return People(wi[I_TEAM, :n], wf[F_TIME, :n], wu[U_KEY, :n], wf[F_ACCEPT, :n],
                  wf[F_AGE, :n], wb[B_PRIOR, :n], wf[F_RATE, :n], wu[U_CARE_KEY, :n],
                  wf[F_E0, :n], wf[F_X1, :n], wf[F_E2, :n], wf[F_X3, :n], wf[F_LENGTH, :n],
                  wb[B_NONCOMPLETED, :n], wb[B_FEMALE, :n], wi[I_STATUS, :n],
                  wf[F_START, :n], wf[F_END, :n], wb[B_DISRUPTED, :n], wf[F_DEADLINE, :n],
                  wb[B_LOST_TO_CARE, :n], wf[F_FIRST_ENTRY, :n])


@path_kernel
def queue_of(mats, n):
    """Capacity's rows of the work matrices, for n young people (n + 1 long)."""
    wf, wi, _, _ = mats
    return Queue(wf[F_JOINS, :n + 1], wf[F_OPEN_END, :n + 1], wi[I_OPEN_CASE, :n + 1],
                 wi[I_OPEN_POST, :n + 1])
