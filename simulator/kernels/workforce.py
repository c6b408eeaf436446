"""TODO docstring."""
import numpy as np
from numba import njit

from ..layout import (
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
    S_THERAPIST,
)
from .binning import add_interval
from .cache import FASTMATH
from .rng import exponential, gamma_draw, stream_key, subkey
from .vector import INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _add_event(ev_t, ev_p, ev_k, n_ev, t, p, kind):
    """Append a staffing event; returns the new count, or -1 when the arrays are full."""
    if n_ev < 0 or n_ev >= ev_t.shape[0]:
        return -1
    ev_t[n_ev] = t
    ev_p[n_ev] = p
    ev_k[n_ev] = kind
    return n_ev + 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def simulate_workforce(seed, path, prm, team_start, team_size, n_in_waiting, service_end,
                       cal_edges, cal_out, out, posts, times, keys, ev_t, ev_p, ev_k):
    """Therapist posts over time: staffing events (time, post, kind) into ev_t, ev_p, ev_k in
    time order, and each post's team into posts[0]. Returns the number of events, or -1
    if they did not fit (the caller makes more room and simulates the path again).

    Each post starts staffed at its team's start. A leaver's post is filled at
    once by a therapist in waiting if one is free (the reserve is then
    re-recruited), otherwise it stays vacant until a recruitment completes.
    A completed recruitment fills the longest-vacant post, or joins the reserve.
    Work arrays (the caller's): posts (2, posts), times (4, posts + n_in_waiting + 1),
    keys (posts,).
    """
    n_teams = team_start.shape[0]
    n_posts = posts.shape[1]
    posts[:] = 0
    times[:] = INF
    post_team = posts[0]
    post_draws = posts[1]
    leave_at = times[0, :n_posts]
    vacant_since = times[1, :n_posts]
    staffed_since = times[2, :n_posts]
    recruit_done = times[3]
    leave_rate = prm[P_LEAVING_RATE] / DAYS_PER_YEAR
    vac_mean = prm[P_VACANCY_MEAN_DAYS]
    vac_shape = prm[P_VACANCY_SHAPE]

    n_ev = 0
    base = stream_key(seed, S_THERAPIST, path)
    p = 0
    for k in range(n_teams):
        for _ in range(team_size[k]):
            post_team[p] = k
            keys[p] = subkey(base, p)
            staffed_since[p] = team_start[k]
            leave_at[p] = _tenure_end(team_start[k], keys[p], post_draws, p, leave_rate)
            n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, team_start[k], p, EV_FILL)
            p += 1
    # initial fills in time order (teams may be listed out of order)
    _sort_events(ev_t, ev_p, ev_k, n_ev)
    in_reserve = n_in_waiting
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
            _close_staffed(p, t, staffed_since, team_start, post_team, cal_edges, cal_out)
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
                _add_vacancy(vacant_since[p], t, cal_edges, cal_out, out)
                vacant_since[p] = INF
                staffed_since[p] = t
                leave_at[p] = _tenure_end(t, keys[p], post_draws, p, leave_rate)
                n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_FILL)
            else:
                in_reserve += 1
    for p in range(n_posts):
        if vacant_since[p] < service_end:
            _add_vacancy(vacant_since[p], service_end, cal_edges, cal_out, out)
        if staffed_since[p] < service_end:
            _close_staffed(p, service_end, staffed_since, team_start, post_team, cal_edges, cal_out)
    out[O_LEAVERS] = leavers
    if n_ev < 0:
        return -1
    # events sorted by time; ties keep generation order (leave before its instant fill)
    _sort_events(ev_t, ev_p, ev_k, n_ev)
    return n_ev


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _tenure_end(t, key, post_draws, p, leave_rate):
    if leave_rate <= 0.0:
        return INF
    e = exponential(key, post_draws[p])
    post_draws[p] += 1
    return t + e / leave_rate


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _add_vacancy(a, b, cal_edges, cal_out, out):
    out[O_VACANCY_DAYS] += b - a
    add_interval(a, b, cal_edges, cal_out, K_VACANCY_DAYS, 1.0)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _close_staffed(p, t, staffed_since, team_start, post_team, cal_edges, cal_out):
    a = staffed_since[p]
    if a < t:
        add_interval(a, t, cal_edges, cal_out, K_THERAPIST_DAYS, 1.0)
    staffed_since[p] = INF
