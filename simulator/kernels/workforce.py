"""The workforce: therapist posts, leavers, vacancies and therapists in waiting."""
import numpy as np
from numba import njit

from ..layout import (
    C_SERVICE_END,
    C_THERAPISTS_IN_WAITING,
    DAYS_PER_YEAR,
    EV_FILL,
    EV_LEAVE,
    K_THERAPIST_DAYS,
    K_VACANCY_DAYS,
    O_LEAVERS,
    O_VACANCY_DAYS,
    P_LEAVING_RATE,
    P_VACANCY_MEAN_DAYS,
    P_VACANCY_SHAPE,
)
from .binning import add_interval
from .cache import FASTMATH, INNER, path_helper, path_kernel
from .rng import exponential, gamma_draw, subkey
from .vector import INF
from .work import Staffing


@path_helper
def _add_event(ev_t, ev_p, ev_k, n_ev, t, p, kind):
    """Append a staffing event; returns the new count, or -1 when the arrays are full."""
    if n_ev < 0 or n_ev >= ev_t.shape[0]:
        return -1
    ev_t[n_ev] = t
    ev_p[n_ev] = p
    ev_k[n_ev] = kind
    return n_ev + 1


@path_kernel
def simulate_workforce(key, prm, scenario, team_start, staffing, rows):
    """Therapist posts over time, on the therapists' stream ``key``: staffing events (time,
    post, kind) into staffing's ev_t, ev_p, ev_k in time order, and each post's team into
    posts[0]; therapist and vacancy days into the path's rows. Returns the number of
    events, or -1 if they did not fit (the caller makes more room and simulates the path
    again).

    Each post starts staffed at its team's start. A leaver's post is filled at
    once by a therapist in waiting if one is free (the reserve is then
    re-recruited), otherwise it stays vacant until a recruitment completes.
    A completed recruitment fills the longest-vacant post, or joins the reserve.
    """
    cfg = scenario.config
    service_end = cfg[C_SERVICE_END]
    edges = scenario.calendar_edges
    ev_t, ev_p, ev_k, keys = staffing.ev_t, staffing.ev_p, staffing.ev_k, staffing.keys
    post_draws = staffing.posts[1]
    n_posts = staffing.posts.shape[1]
    times = staffing.times
    times[:] = INF
    leave_at = times[0, :n_posts]
    vacant_since = times[1, :n_posts]
    staffed_since = times[2, :n_posts]
    recruit_done = times[3]
    leave_rate = prm[P_LEAVING_RATE] / DAYS_PER_YEAR
    vac_mean = prm[P_VACANCY_MEAN_DAYS]
    vac_shape = prm[P_VACANCY_SHAPE]
    n_ev = _first_fills(key, team_start, scenario.team_size, staffing, leave_rate)
    in_reserve = int(cfg[C_THERAPISTS_IN_WAITING])
    leavers = 0
    while True:
        p_leave = np.argmin(leave_at)
        r_done = np.argmin(recruit_done)
        t = min(leave_at[p_leave], recruit_done[r_done])
        if t >= service_end:
            break
        if leave_at[p_leave] <= recruit_done[r_done]:
            p = p_leave
            leavers += 1
            _close_staffed(p, t, staffed_since, edges, rows.cal)
            n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_LEAVE)
            if vac_mean > 0.0:
                v, post_draws[p] = gamma_draw(keys[p], post_draws[p], vac_shape,
                                              vac_mean / vac_shape)
            else:
                v = 0.0
            recruit_done[np.argmax(recruit_done)] = t + v  # a free slot holds +inf
            if in_reserve > 0:
                in_reserve -= 1
                leave_at[p] = _tenure_end(t, keys[p], post_draws, p, leave_rate)
                staffed_since[p] = t
                n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_FILL)
            else:
                leave_at[p] = INF
                vacant_since[p] = t
        else:
            recruit_done[r_done] = INF
            p = np.argmin(vacant_since)
            if vacant_since[p] < INF:
                _add_vacancy(vacant_since[p], t, edges, rows)
                vacant_since[p] = INF
                staffed_since[p] = t
                leave_at[p] = _tenure_end(t, keys[p], post_draws, p, leave_rate)
                n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_FILL)
            else:
                in_reserve += 1
    _close_posts(service_end, staffing, edges, rows)
    rows.out[O_LEAVERS] = leavers
    if n_ev < 0:
        return -1
    # events sorted by time; ties keep generation order (leave before its instant fill)
    _sort_events(ev_t, ev_p, ev_k, n_ev)
    return n_ev


@path_helper
def _first_fills(key, team_start, team_size, staffing, leave_rate):
    """Every post, staffed from its team's start: its team, stream and first tenure, and
    its first fill among the events (in time order: teams may be listed out of order).
    Returns the number of events."""
    post_team, post_draws = staffing.posts[0], staffing.posts[1]
    post_draws[:] = 0
    staffed_since = staffing.times[2]
    leave_at = staffing.times[0]
    n_ev = np.int64(0)   # (not literals: see care._NO)
    p = np.int64(0)
    for k in range(team_start.shape[0]):
        for _ in range(team_size[k]):
            post_team[p] = k
            staffing.keys[p] = subkey(key, p)
            staffed_since[p] = team_start[k]
            leave_at[p] = _tenure_end(team_start[k], staffing.keys[p], post_draws, p,
                                      leave_rate)
            n_ev = _add_event(staffing.ev_t, staffing.ev_p, staffing.ev_k, n_ev,
                              team_start[k], p, EV_FILL)
            p += 1
    _sort_events(staffing.ev_t, staffing.ev_p, staffing.ev_k, n_ev)
    return n_ev


@path_helper
def _close_posts(service_end, staffing, edges, rows):
    """At the service end: every open vacancy and staffed spell binned up to it."""
    n_posts = staffing.posts.shape[1]
    vacant_since = staffing.times[1, :n_posts]
    staffed_since = staffing.times[2, :n_posts]
    for p in range(n_posts):
        if vacant_since[p] < service_end:
            _add_vacancy(vacant_since[p], service_end, edges, rows)
        if staffed_since[p] < service_end:
            _close_staffed(p, service_end, staffed_since, edges, rows.cal)


@path_helper
def staffing_events(staffing, n_ev):
    """The staffing bundle with its events cut to the n_ev made."""
    return Staffing(staffing.times, staffing.keys, staffing.posts, staffing.ev_t[:n_ev],
                    staffing.ev_p[:n_ev], staffing.ev_k[:n_ev])


@path_kernel
def _sort_events(ev_t, ev_p, ev_k, n):
    """Stable insertion sort of the first n events by time. The event loop makes them in
    time order, but for the fills at the start of a team that starts after a leaver of
    another: nearly sorted, where this is linear (and needs no work arrays, unlike argsort)."""
    for i in range(1, n):
        t, p, k = ev_t[i], ev_p[i], ev_k[i]
        j = i
        while j > 0 and ev_t[j - 1] > t:
            ev_t[j], ev_p[j], ev_k[j] = ev_t[j - 1], ev_p[j - 1], ev_k[j - 1]
            j -= 1
        ev_t[j], ev_p[j], ev_k[j] = t, p, k


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def _tenure_end(t, key, post_draws, p, leave_rate):
    if leave_rate <= 0.0:
        return INF
    e = exponential(key, post_draws[p])
    post_draws[p] += 1
    return t + e / leave_rate


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def _add_vacancy(a, b, edges, rows):
    rows.out[O_VACANCY_DAYS] += b - a
    add_interval(a, b, edges, rows.cal, np.int64(K_VACANCY_DAYS), 1.0)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def _close_staffed(p, t, staffed_since, cal_edges, cal_out):
    a = staffed_since[p]
    if a < t:
        add_interval(a, t, cal_edges, cal_out, np.int64(K_THERAPIST_DAYS), 1.0)
    staffed_since[p] = INF
