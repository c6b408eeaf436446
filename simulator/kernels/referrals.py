"""Referrals: counts per team-month, arrival times, screening and rejection reasons."""
import math

import numpy as np
from numba import njit

from ..layout import (
    C_REFERRALS_END,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    K_ACCEPTED,
    K_REFERRALS,
    O_REFERRALS,
    O_REFERRALS_FIRST_YEAR,
    O_REJECTED,
    P_ACCEPTANCE_SHARE,
    P_RAMP_START_SHARE,
    P_RAMP_UP_MONTHS,
    P_REFERRAL_DISPERSION,
    P_REFERRAL_RATE,
    P_REFERRAL_TREND,
    P_SCREENING_DAYS,
    R_ARRIVAL,
    R_REASON,
    R_SCREEN,
)
from .binning import add_count, quarter_bounds, quarter_of
from .cache import FASTMATH, INNER, path_helper, path_kernel
from .rng import gamma_draw, poisson_draw, subkey, uniform
from .vector import INF, batch_exp, batch_log, batch_norm_ppf, pick


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def _month_mean(prm, j, weight):
    ramp_months = prm[P_RAMP_UP_MONTHS]
    start = prm[P_RAMP_START_SHARE]
    ramp = 1.0
    if ramp_months > 0.0 and j < ramp_months:
        ramp = start + (1.0 - start) * (j / ramp_months)
    trend = 1.0
    if prm[P_REFERRAL_TREND] != 0.0:  # pow is slow even for a base of 1
        trend = (1.0 + prm[P_REFERRAL_TREND]) ** (j * DAYS_PER_MONTH / DAYS_PER_YEAR)
    return prm[P_REFERRAL_RATE] * weight * ramp * trend


@path_kernel
def referral_months(team_start, delay, referrals_end):
    """Months of referrals of the team that takes them longest, its start (team_start)
    delayed by ``delay`` days (at least 1: the columns of count_referrals' counts)."""
    n_months = 1
    for k in range(team_start.shape[0]):
        start = team_start[k] + delay
        if referrals_end > start:
            n_months = max(n_months, int(math.ceil((referrals_end - start) / DAYS_PER_MONTH)))
    return n_months


@path_kernel
def count_referrals(key, prm, team_start, team_weight, referrals_end, counting):
    """Referral counts per team-month (negative binomial as a gamma-Poisson mixture) on
    the referral-count stream ``key``, into counting.counts (teams, referral_months),
    overwritten.

    In three passes over the team-months: their means, keys and first uniforms; the
    first Marsaglia-Tsang attempt of each gamma draw and the Poisson's exp(-mean), in
    branch-free arithmetic that vectorises (for a gamma shape of 1 or more); then each
    count, by the scalar gamma_draw where the squeeze did not accept that first attempt
    (the same draws, so the same value), and by inversion of the Poisson.
    """
    counting.counts[:] = 0
    n = _cell_draws(key, prm, team_start, team_weight, referrals_end, counting)
    k_nb = prm[P_REFERRAL_DISPERSION]
    _first_gamma_attempts(k_nb, counting, n)
    _cell_counts(k_nb, counting, n)


@path_helper
def _cell_draws(key, prm, team_start, team_weight, referrals_end, counting):
    """Each team-month with referrals: its cell number, key, mean and first two uniforms
    (counting's work rows, in cell order). Returns the number of cells."""
    n_months = counting.counts.shape[1]
    cell, mean, u0, u1 = counting.ints[0], counting.real[0], counting.real[1], counting.real[2]
    n = np.int64(0)   # (not a literal: see care._NO)
    for k in range(team_start.shape[0]):
        for j in range(n_months):
            a = team_start[k] + j * DAYS_PER_MONTH
            if a >= referrals_end:
                break
            share = min(1.0, (referrals_end - a) / DAYS_PER_MONTH)
            cell_key = subkey(subkey(key, k), j)
            cell[n] = k * n_months + j
            counting.keys[n] = cell_key
            mean[n] = _month_mean(prm, j, team_weight[k]) * share
            u0[n] = uniform(cell_key, 0)
            u1[n] = uniform(cell_key, 1)
            n += 1
    return n


@path_helper
def _first_gamma_attempts(k_nb, counting, n):
    """Each cell's Poisson mean: its negative-binomial mean, or, for a gamma shape of 1 or
    more, gamma_draw's first attempt (draws 0 and 1) with whether it was accepted."""
    mean, u0, u1 = counting.real[0], counting.real[1], counting.real[2]
    accepted = counting.accepted
    accepted[:n] = False
    lam = counting.real[3, :n]
    for m in range(n):
        lam[m] = mean[m]
    if k_nb >= 1.0:
        d = k_nb - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        for m in range(n):  # gamma_draw's first attempt, branch-free
            x = batch_norm_ppf(u0[m])
            v = 1.0 + c * x
            x2 = x * x
            v3 = v * v * v
            # the squeeze, or else the exact test (for a v <= 0, log's garbage is masked)
            squeeze = u1[m] < 1.0 - 0.0331 * x2 * x2
            exact = batch_log(u1[m]) < 0.5 * x2 + d - d * v3 + d * batch_log(v3)
            accepted[m] = (v > 0.0) & (squeeze | exact)
            lam[m] = d * v3 * (mean[m] / k_nb) * 1.0


@path_helper
def _cell_counts(k_nb, counting, n):
    """Each cell's count: the gamma draws the first attempt did not settle, then the
    Poisson by inversion (by poisson_draw for a mean of 30 or more)."""
    n_months = counting.counts.shape[1]
    cell, mean, u0, u1 = counting.ints[0], counting.real[0], counting.real[1], counting.real[2]
    keys, lam = counting.keys, counting.real[3, :n]
    p0 = counting.real[4, :n]
    for m in range(n):
        p0[m] = batch_exp(-lam[m])
    draws = counting.ints[1, :n]   # the draw number of each cell's Poisson uniform
    for m in range(n):
        key = keys[m]
        draw = np.int64(0)   # (not a literal: see care._NO)
        if k_nb > 0.0:
            if counting.accepted[m]:
                draw = 2
            else:
                lam[m], draw = gamma_draw(key, draw, k_nb, mean[m] / k_nb)
                p0[m] = math.exp(-lam[m])
        draws[m] = draw
        u0[m] = uniform(key, draw)
    found = counting.ints[2, :n]
    _poisson_inversions(u0, lam, p0, u1, found, n)
    for m in range(n):
        count = found[m]
        if not (0.0 < lam[m] < 30.0):
            count = poisson_draw(keys[m], draws[m], lam[m])[0]
        counting.counts[cell[m] // n_months, cell[m] % n_months] = count


@path_kernel
def _poisson_inversions(u, lam, p, cdf, k, n):
    """_poisson_inversion of the first n cells at once (those with 0 < lam < 30; the
    others get k = 0), p = exp(-lam) on entry (overwritten, as is the work array cdf).
    In lock-step: each step takes every cell still below its uniform one count further,
    with the same arithmetic, so the same counts; a loop without branches, which
    vectorises, where a loop per cell mispredicted its exit about once a cell."""
    for m in range(n):
        cdf[m] = p[m]
        k[m] = 0
    while True:
        going = 0
        for m in range(n):
            go = (u[m] > cdf[m]) & (p[m] > 0.0) & (lam[m] > 0.0) & (lam[m] < 30.0)
            k[m] += go
            p[m] = pick(go, p[m] * (lam[m] / k[m]), p[m])
            cdf[m] = pick(go, cdf[m] + p[m], cdf[m])
            going += go
        if going == 0:
            return


@path_helper
def _sort_arrivals(times, keys, a, b):
    """Stable insertion sort of one month's arrivals (a handful) by time, keys alongside.

    Branch-free: each arrival is carried down the sorted run before it, every later
    arrival moving up one place and every earlier one written back where it was.
    Where it stops is a coin toss, so the usual early exit would be mispredicted
    about once an arrival; this does more work but never waits on a wrong guess.
    """
    for i in range(a + 1, b):
        t = times[i]
        key = keys[i]
        for j in range(i - 1, a - 1, -1):
            x = times[j]
            kx = keys[j]
            up = x > t
            times[j + 1] = pick(up, x, t)
            keys[j + 1] = pick(up, kx, key)
            t = pick(up, t, x)
            key = pick(up, key, kx)
        times[a] = t
        keys[a] = key


SORT_RUN = 16      # a big month's arrivals are insertion-sorted in runs this long ...
SORT_MERGE_FROM = 32   # ... and the runs merged, from this many arrivals in a month


@path_kernel
def _sort_month(times, keys, tmp_t, tmp_k, a, b):
    """Stable sort of one month's arrivals [a, b) by time, keys alongside: the branch-free
    insertion sort for a handful (Essex: about four); for a big month (a programme of
    hundreds of referrals a month), insertion-sorted runs merged pairwise through tmp_t
    and tmp_k, O(m log m) rather than O(m^2). Both are stable, so the order is the same."""
    m = b - a
    if m < SORT_MERGE_FROM:
        _sort_arrivals(times, keys, a, b)
        return
    for r in range(a, b, SORT_RUN):
        _sort_arrivals(times, keys, r, min(r + SORT_RUN, b))
    width = np.int64(SORT_RUN)   # (not a literal: see care._NO)
    in_tmp = False
    while width < m:
        if in_tmp:
            _merge_runs(tmp_t, tmp_k, times, keys, a, b, width)
        else:
            _merge_runs(times, keys, tmp_t, tmp_k, a, b, width)
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for p in range(a, b):
            times[p] = tmp_t[p]
            keys[p] = tmp_k[p]


@path_kernel
def _merge_runs(src_t, src_k, dst_t, dst_k, a, b, width):
    """Merge the sorted runs of ``width`` in [a, b) pairwise from src into dst; on equal
    times the earlier run's arrival first (stable)."""
    for lo in range(a, b, 2 * width):
        mid = min(lo + width, b)
        hi = min(lo + 2 * width, b)
        i = lo
        j = mid
        o = lo
        while i < mid and j < hi:
            if src_t[j] < src_t[i]:
                dst_t[o] = src_t[j]
                dst_k[o] = src_k[j]
                j += 1
            else:
                dst_t[o] = src_t[i]
                dst_k[o] = src_k[i]
                i += 1
            o += 1
        while i < mid:
            dst_t[o] = src_t[i]
            dst_k[o] = src_k[i]
            i += 1
            o += 1
        while j < hi:
            dst_t[o] = src_t[j]
            dst_k[o] = src_k[j]
            j += 1
            o += 1


@path_kernel
def screen_referrals(key, prm, scenario, team_start, first_year, counts, refs, accepted, rows):
    """Each referral's team, arrival time (uniform in its month, in time order within the
    month) and key, on the referrals' stream ``key``, then screening, and the reasons
    for rejection. Returns the number accepted; their team, referral time, key and
    acceptance time go to the first rows of ``accepted`` (People as long as the
    referrals), in order: team by team, and in time order within a team (every kernel
    after this one works on the accepted young people, in this order; run_team takes
    each team's as a range). ``first_year``: (start, end) of the first year of referrals."""
    _arrivals(key, counts, team_start, scenario.config[C_REFERRALS_END], refs, accepted)
    for i in range(refs.time.shape[0]):  # the screening draws (vector instructions again)
        refs.work[i] = uniform(refs.key[i], R_SCREEN)
    n_acc, n_rej = _screen(prm, scenario, first_year, refs, accepted, rows)
    reason_cdf = scenario.reason_cdf
    if reason_cdf.shape[0] > 0:
        for c in range(n_rej):
            ref_key = refs.key[np.uint64(refs.rejected[c])]
            rows.reasons[_categorical(uniform(ref_key, R_REASON), reason_cdf)] += 1.0
    rows.out[O_REFERRALS] = refs.time.shape[0]
    rows.out[O_REJECTED] = n_rej
    return n_acc


@path_helper
def _arrivals(key, counts, team_start, referrals_end, refs, accepted):
    """Each referral's team, key and arrival time, in time order within its month."""
    ref_team, ref_time, ref_key, slot, u = refs.team, refs.time, refs.key, refs.slot, refs.work
    # each referral's month (its key, start and width) and place in the month ...
    i = 0
    for k in range(counts.shape[0]):
        team_key = subkey(key, k)
        for j in range(counts.shape[1]):
            a = team_start[k] + j * DAYS_PER_MONTH
            width = min(DAYS_PER_MONTH, referrals_end - a)
            month_key = subkey(team_key, j)
            for m in range(counts[k, j]):
                ref_key[i] = month_key
                slot[i] = m
                ref_team[i] = k
                ref_time[i] = a
                u[i] = width
                i += 1
    # ... then the hashes, on contiguous arrays only: vector instructions
    for i in range(ref_time.shape[0]):
        referral_key = subkey(ref_key[i], slot[i])
        ref_key[i] = referral_key
        ref_time[i] = ref_time[i] + u[i] * uniform(referral_key, R_ARRIVAL)
    first = np.int64(0)   # (not a literal: see care._NO)
    for k in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            m = counts[k, j]
            if m < SORT_MERGE_FROM:   # (inline here: the call cost a per cent of a path)
                _sort_arrivals(ref_time, ref_key, first, first + m)
            else:   # a big month (accepted's ref_time and key are written only later)
                _sort_month(ref_time, ref_key, accepted.ref_time, accepted.key, first,
                            first + m)
            first += m


@path_helper
def _screen(prm, scenario, first_year, refs, accepted, rows):
    """Screening, branch-free (acceptance is a coin toss): the accepted to ``accepted``, the
    rejected's indices to refs.rejected, referrals and acceptances counted by calendar
    quarter, and those in the first year. Returns (accepted, rejected)."""
    cal_edges, day_q, cal_out = scenario.calendar_edges, scenario.day_quarter, rows.cal
    first_year_a, first_year_b = first_year
    ref_team, ref_time, ref_key, u = refs.team, refs.time, refs.key, refs.work
    accept_share = prm[P_ACCEPTANCE_SHARE]
    screening = prm[P_SCREENING_DAYS]
    n_acc = 0
    n_rej = 0
    in_first_year = 0
    # Referrals and acceptances are counted by calendar quarter in runs: a team's
    # referrals come in time order, so the quarter changes a few dozen times a path.
    # Adding 1 to a quarter's count in memory for each referral chained every
    # referral to the one before through that memory.
    # A run lasts while the time stays within its quarter's bounds: two comparisons a
    # referral, the quarter looked up only when a run ends.
    k_ref = -1
    run_ref = 0
    lo_ref, hi_ref = INF, -INF   # (empty bounds: the first referral starts a run)
    k_acc = -1
    run_acc = 0
    lo_acc, hi_acc = INF, -INF
    for i in range(ref_time.shape[0]):
        t = ref_time[i]
        in_first_year += (first_year_a <= t) & (t < first_year_b)
        t_acc = t + screening
        acc = u[i] < accept_share
        accepted.team[n_acc] = ref_team[i]   # (written whether accepted or not: kept if so)
        accepted.ref_time[n_acc] = t
        accepted.key[n_acc] = ref_key[i]
        accepted.accept_t[n_acc] = t_acc
        refs.rejected[n_rej] = i
        n_acc += acc
        n_rej += pick(acc, 0, 1)
        if not (lo_ref <= t < hi_ref):
            add_count(k_ref, run_ref, cal_out, K_REFERRALS)
            k_ref = quarter_of(t, cal_edges, day_q)
            lo_ref, hi_ref = quarter_bounds(k_ref, cal_edges)
            run_ref = 0
        run_ref += 1
        if not (lo_acc <= t_acc < hi_acc):
            add_count(k_acc, run_acc, cal_out, K_ACCEPTED)
            k_acc = quarter_of(t_acc, cal_edges, day_q)
            lo_acc, hi_acc = quarter_bounds(k_acc, cal_edges)
            run_acc = 0
        run_acc += acc
    add_count(k_ref, run_ref, cal_out, K_REFERRALS)
    add_count(k_acc, run_acc, cal_out, K_ACCEPTED)
    rows.out[O_REFERRALS_FIRST_YEAR] += in_first_year
    return n_acc, n_rej


@path_kernel
def _categorical(u, cdf):
    """Index of the category whose cumulative share first exceeds u (a handful of
    categories: a branch-free count of the shares passed)."""
    i = 0
    for j in range(cdf.shape[0]):
        i += cdf[j] <= u
    return min(i, cdf.shape[0] - 1)
