"""TODO docstring."""
import numpy as np
from numba import njit

from ..layout import (
    C_CARE_END_AGE,
    C_CASELOAD_LIMIT,
    C_COHORT_QUARTERS,
    C_COHORTS,
    C_HAS_CONTRACT,
    C_MAX_TREATMENT_DAYS,
    C_MIN_TREATMENT_DAYS,
    C_REFERRALS_END,
    C_SERVICE_END,
    C_THERAPISTS_IN_WAITING,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    K_THERAPIST_DAYS,
    N_CO,
    N_K,
    N_Q,
    O_ACCEPTED,
    O_COMPLETED,
    O_MEAN_AGE,
    O_MEAN_WAIT_DAYS,
    O_NONCOMPLETED,
    O_REJECTED,
    O_SHARE_UNDER_THRESHOLD,
    O_STARTED,
    O_THERAPIST_DAYS,
    O_TREATMENT_DAYS_MEDIAN,
    P_MAX_WAIT_DAYS,
    P_SHORT_THRESHOLD_DAYS,
    P_START_DELAY_MONTHS,
)
from . import waterfall as W
from .binning import settle, settle_cohorts
from .cache import FASTMATH
from .capacity import run_team, team_range_end, waiting_deadlines
from .care import young_people_outcomes
from .contract import N_BQ, contract_and_finance
from .referrals import count_referrals, referral_months, screen_referrals
from .treatment import MEDIAN_BINS, median_binned
from .vector import INF
from .workforce import simulate_workforce
from .young_people import draw_young_people

# A path's kernels allocate nothing: their work arrays are cut from a workspace that
# each thread allocates once (four flat arrays, one per element type) and grows when a
# path needs more. Compiled without reference counting, a view of the workspace costs
# nothing. simulate_path's return value says whether the path was done.
PATH_DONE = 0
WORKSPACE_SMALL = 1   # the workspace was too small: grow it and simulate the path again
EVENTS_FULL = 2       # the staffing events did not fit: allow more and simulate it again


# a workspace's first size (float, int, unsigned, bool elements; room for about 1,200
# referrals in Essex) and room for staffing events; both double when a path needs more
WORKSPACE_FIRST = (1 << 15, 1 << 13, 1 << 12, 1 << 12)
EVENTS_FIRST = 64
REFERRAL_FLOAT_ROWS = 19   # float work rows a referral (simulate_path's wf)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take(buf, at, n):
    """n elements of the workspace array buf from offset at, and the offset after them.
    Past buf's end the view is short: the caller checks the offset before using it."""
    return buf[at:at + n], at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take2(buf, at, rows, cols):
    """_take as a (rows, cols) matrix (empty past buf's end)."""
    n = rows * cols
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, cols)), at + n
    return buf[at:at + n].reshape((rows, cols)), at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take3(buf, at, n0, n1, n2):
    """_take as an (n0, n1, n2) array (empty past buf's end)."""
    n = n0 * n1 * n2
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, n1, n2)), at + n
    return buf[at:at + n].reshape((n0, n1, n2)), at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def simulate_path(seed, path, prm, cfg, team_start0, team_size, team_weight, reason_cdf,
                  cal_edges, day_q, baseline_q, event_months, event_prices, call_schedule, out,
                  qsr_out, cal_out, reasons_out, ws_f, ws_i, ws_u, ws_b, ev_cap):
    """One path into its rows of the outputs (zeroed by the caller), its work arrays cut
    from the workspace ws_* (ev_cap: room for staffing events). Returns PATH_DONE, or
    WORKSPACE_SMALL or EVENTS_FULL, when the caller makes more room and calls again."""
    referrals_end = cfg[C_REFERRALS_END]
    service_end = cfg[C_SERVICE_END]
    limit = int(cfg[C_CASELOAD_LIMIT])
    n_teams = team_start0.shape[0]
    n_posts = 0
    for k in range(n_teams):
        n_posts += team_size[k]
    n_in_waiting = int(cfg[C_THERAPISTS_IN_WAITING])
    delay = prm[P_START_DELAY_MONTHS] * DAYS_PER_MONTH
    n_months = referral_months(team_start0, delay, referrals_end)
    n_cells = n_teams * n_months
    qsr_width = 3.0 * DAYS_PER_MONTH
    has_contract = cfg[C_HAS_CONTRACT] > 0.5
    n_cal = cal_edges.shape[0] - 1
    n_cohorts = int(cfg[C_COHORTS]) if has_contract else 0
    band = min(int(cfg[C_COHORT_QUARTERS]), n_cal) if has_contract else 0
    n_q = qsr_out.shape[0]
    n_events = event_months.shape[0]

    # ---- the work arrays of a fixed size, cut from the workspace (f: float, i: int,
    # u: unsigned, b: bool; each offset past its array's end means it is too small)
    f = 0
    i = 0
    u = 0
    b = 0
    team_start, f = _take(ws_f, f, n_teams)
    times, f = _take2(ws_f, f, 4, n_posts + n_in_waiting + 1)
    ev_t, f = _take(ws_f, f, ev_cap)
    count_work, f = _take2(ws_f, f, 5, n_cells)
    # days are slope-binned (see settle): cal_out and qsr_out hold the partial
    # contents, these the slopes; the cohort matrices the same by tracking cohort
    zeroed_from = f   # (the binning arrays, zeroed together below: one flat fill)
    k_slope, f = _take2(ws_f, f, n_cal, N_K)
    q_slope, f = _take2(ws_f, f, n_q, N_Q)
    # care days by cohort (CO_*; band: see bump_cohort)
    cohort_days, f = _take3(ws_f, f, N_CO, band, n_cohorts)
    cohort_slope, f = _take3(ws_f, f, N_CO, band, n_cohorts)
    event_counts, f = _take3(ws_f, f, 2, n_cal, n_events)     # treated, counterfactual
    zeroed_to = f
    checks, f = _take(ws_f, f, n_events)
    by_quarter, f = _take2(ws_f, f, N_BQ, n_cal)
    lines, f = _take2(ws_f, f, n_cal, W.N_LINES)
    payment_work, f = _take(ws_f, f, W.payment_work_size(band, n_cohorts, n_cal))
    posts, i = _take2(ws_i, i, 2, n_posts)
    ev_p, i = _take(ws_i, i, ev_cap)
    ev_k, i = _take(ws_i, i, ev_cap)
    counts, i = _take2(ws_i, i, n_teams, n_months)
    count_work_int, i = _take2(ws_i, i, 3, n_cells)
    caseload, i = _take(ws_i, i, n_posts)
    median_counts, i = _take(ws_i, i, MEDIAN_BINS)
    post_keys, u = _take(ws_u, u, n_posts)
    cell_keys, u = _take(ws_u, u, n_cells)
    cell_accepted, b = _take(ws_b, b, n_cells)
    staffed, b = _take(ws_b, b, n_posts)
    in_care, b = _take2(ws_b, b, 2, n_events)
    if f > ws_f.shape[0] or i > ws_i.shape[0] or u > ws_u.shape[0] or b > ws_b.shape[0]:
        return WORKSPACE_SMALL

    first_year_a = INF
    for k in range(n_teams):
        team_start[k] = team_start0[k] + delay
        first_year_a = min(first_year_a, team_start[k])
    first_year_b = first_year_a + DAYS_PER_YEAR

    # ---- workforce
    n_ev = simulate_workforce(seed, path, prm, team_start, team_size, n_in_waiting, service_end,
                              cal_edges, cal_out, out, posts, times, post_keys, ev_t, ev_p, ev_k)
    if n_ev < 0:
        return EVENTS_FULL
    ev_t = ev_t[:n_ev]
    ev_p = ev_p[:n_ev]
    ev_k = ev_k[:n_ev]
    post_team = posts[0]
    out[O_THERAPIST_DAYS] = cal_out[:, K_THERAPIST_DAYS].sum()

    # ---- referrals and screening
    count_referrals(seed, path, prm, team_start, team_weight, referrals_end, counts, count_work,
                    count_work_int, cell_keys, cell_accepted)
    n_ref = counts.sum()
    # The per-referral work arrays are rows of four matrices, one per element type
    # (each row keeps the length the kernels read: n_ref, n_acc or n_acc + 1, all at
    # most n_ref + 1). After screening, every array is the accepted young people's, in
    # order: no kernel after screen_referrals goes through an index of referrals.
    wf, f = _take2(ws_f, f, REFERRAL_FLOAT_ROWS, n_ref + 1)
    wi, i = _take2(ws_i, i, 7, n_ref + 1)
    wu, u = _take2(ws_u, u, 3, n_ref + 1)
    wb, b = _take2(ws_b, b, 5, n_ref + 1)
    if f > ws_f.shape[0] or i > ws_i.shape[0] or u > ws_u.shape[0] or b > ws_b.shape[0]:
        return WORKSPACE_SMALL
    wb[:] = False
    acc_team = wi[3, :n_ref]
    acc_time = wf[2, :n_ref]   # referral times, and so on: of the accepted, in order
    acc_key = wu[1, :n_ref]
    accept_t = wf[3, :n_ref]
    n_acc = screen_referrals(seed, path, prm, counts, team_start, referrals_end, first_year_a,
                       first_year_b, cal_edges, day_q, reason_cdf, wi[0, :n_ref], wf[0, :n_ref],
                       wu[0, :n_ref], acc_team, acc_time, acc_key, accept_t, wi[1, :n_ref],
                       wi[2, :n_ref], wf[1, :n_ref], out, cal_out, reasons_out)
    acc_team = acc_team[:n_acc]
    acc_time = acc_time[:n_acc]
    accept_t = accept_t[:n_acc]

    # ---- young people (fixed draw numbers in each referral's stream, so draws never shift).
    # Drawn in one branch-free pass, before the event logic that uses them, so the
    # latency of log, exp and the normal quantile overlaps across young people.
    age0 = wf[4, :n_acc]
    prior = wb[0, :n_acc]
    rate0 = wf[5, :n_acc]
    care_key = wu[2, :n_acc]
    care_e0 = wf[6, :n_acc]   # first care-entry target: shared by the wait and both walks
    care_x1 = wf[7, :n_acc]   # first spell-length draw: shared by both walks
    care_e2 = wf[8, :n_acc]   # second entry target and spell length: the same
    care_x3 = wf[9, :n_acc]
    length = wf[10, :n_acc]   # treatment length, if treatment starts
    noncompleted = wb[1, :n_acc]
    female = wb[2, :n_acc]
    draw_young_people(prm, cfg, n_acc, acc_key[:n_acc], acc_time, age0, prior, rate0, care_key,
                  care_e0, care_x1, care_e2, care_x3, length, noncompleted, female)

    # ---- capacity: each team's FIFO waiting list and caseloads
    status = wi[4, :n_acc]
    start_t = wf[11, :n_acc]
    end_t = wf[12, :n_acc]
    start_t[:] = INF
    end_t[:] = INF
    disrupted = wb[3, :n_acc]
    max_wait = prm[P_MAX_WAIT_DAYS]
    care_end_age = cfg[C_CARE_END_AGE]
    deadline = wf[13, :n_acc]
    lost_to_care = wb[4, :n_acc]
    open_end = wf[14, :n_acc + 1]
    open_case = wi[5, :n_acc + 1]
    open_post = wi[6, :n_acc + 1]
    joins = wf[15, :n_acc + 1]
    first_entry_t = wf[18, :n_acc]
    waiting_deadlines(n_acc, accept_t, acc_time, age0, rate0, care_e0, prm, cfg, max_wait,
                       care_end_age, deadline, lost_to_care, first_entry_t)
    # the accepted young people come team by team (see screen_referrals): a team's are a range
    team_end = 0
    for k in range(n_teams):
        team_begin = team_end
        team_end = team_range_end(acc_team, team_begin, n_acc, k)
        run_team(k, team_begin, team_end, accept_t, status, start_t, end_t, disrupted,
                  length, ev_t, ev_p, ev_k, post_team, limit, service_end, joins, deadline,
                  lost_to_care, staffed, caseload, open_end, open_case, open_post)

    # ---- outcomes for everyone who started
    ws_f[zeroed_from:zeroed_to] = 0.0   # k_slope to event_counts
    in_care[:] = False
    lengths = wf[16, :n_acc]
    n_started, wait_sum, age_sum = young_people_outcomes(
        prm, cfg, n_acc, status, noncompleted, female, acc_time, accept_t, start_t,
        end_t, disrupted, age0, prior, rate0, care_key, care_e0, care_x1, care_e2, care_x3,
        first_entry_t, baseline_q, event_months,
        cal_edges, day_q, first_year_a, first_year_b, out, qsr_out, cal_out, k_slope, q_slope,
        cohort_days, cohort_slope, event_counts, checks, in_care, lengths)
    settle(cal_edges, 0.0, k_slope, cal_out)
    settle(cal_edges[:0], qsr_width, q_slope, qsr_out)
    if has_contract:
        for co in range(N_CO):
            settle_cohorts(cal_edges, cohort_slope[co], cohort_days[co])
        contract_and_finance(prm, cfg, team_start, cal_edges, cohort_days, event_counts,
                              event_prices, call_schedule, out, cal_out, by_quarter, lines,
                              payment_work)
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
            median_counts, wf[17])
        out[O_MEAN_WAIT_DAYS] = wait_sum / n_started
        out[O_MEAN_AGE] = age_sum / n_started
    else:
        out[O_TREATMENT_DAYS_MEDIAN] = np.nan
        out[O_SHARE_UNDER_THRESHOLD] = np.nan
        out[O_MEAN_WAIT_DAYS] = np.nan
        out[O_MEAN_AGE] = np.nan
    return PATH_DONE
