"""TODO docstring."""
import math

import numpy as np
from numba import njit

from ..layout import (
    C_CARE_END_AGE,
    C_HAS_CONTRACT,
    C_REFERENCE_AGE,
    C_TRACK_FROM,
    C_TRACKING_DAYS,
    CO_BASELINE,
    CO_COUNTERFACTUAL,
    CO_TREATED,
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    K_CARE_COUNTERFACTUAL,
    K_CARE_TREATED,
    K_CASELOAD_DAYS,
    K_CHILD_DAYS,
    K_STARTED,
    K_WAITING_DAYS,
    O_CARE_DAYS_COUNTERFACTUAL,
    O_CARE_DAYS_TREATED,
    O_CHILD_DAYS,
    O_DISRUPTED,
    O_ENTERED_CARE_COUNTERFACTUAL,
    O_ENTERED_CARE_TREATED,
    O_FEMALE,
    O_LOST_CARE,
    O_LOST_SERVICE_END,
    O_LOST_WAIT,
    O_NONCOMPLETED,
    O_PRIOR_CARE,
    O_STARTED_FIRST_YEAR,
    P_AGE_HR,
    P_DISRUPTED_RETENTION,
    P_EFFECT_HALF_LIFE_DAYS,
    P_EXIT_RATE,
    P_HR_AFTER,
    P_HR_DURING,
    P_NONCOMPLETED_RETENTION,
    P_REENTRY_HR,
    Q_CARE_COUNTERFACTUAL,
    Q_CARE_TREATED,
    Q_CHILD_DAYS,
    ST_LOST_CARE,
    ST_LOST_SERVICE_END,
    ST_LOST_WAIT,
    ST_STARTED,
)
from .binning import bump, bump_cohort, count_at, quarter_room, slope_at, slope_at_since, span
from .cache import FASTMATH
from .rng import exponential
from .vector import INF, pick


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _next_entry(t, target, horizon, t_ref, age0, rate0, age_hr, ref_age,
                treated, s, e, mult_during, mult_after, lhr_after, half_life):
    """Time at which the cumulative entry hazard from t reaches ``target``, or +inf.

    The hazard is piecewise constant: it changes at birthdays (if the age hazard
    ratio is not 1), at treatment start and end, and (if the effect wanes) on
    month-long steps after treatment end. Boundaries are stepped by counters,
    not recomputed from t, so rounding can never stall the walk.
    """
    by_age = age_hr != 1.0
    if not by_age and not treated:  # one constant hazard: the loop below in one step
        if rate0 * (horizon - t) >= target:
            return t + target / rate0
        return INF
    next_bday = INF
    age_mult = 1.0
    if by_age:
        whole = math.floor(age0 + (t - t_ref) / DAYS_PER_YEAR)
        next_bday = t_ref + (whole + 1.0 - age0) * DAYS_PER_YEAR
        if next_bday <= t:
            whole += 1.0
            next_bday += DAYS_PER_YEAR
        age_mult = age_hr ** (whole - ref_age)
    step = -1.0
    step_end = INF
    while t < horizon:
        seg_end = min(horizon, next_bday)
        rate = rate0 * age_mult
        if treated:
            if t < s:
                seg_end = min(seg_end, s)
            elif t < e:
                seg_end = min(seg_end, e)
                rate *= mult_during
            elif half_life > 0.0:
                if step < 0.0:
                    step = math.floor((t - e) / DAYS_PER_MONTH)
                    step_end = e + (step + 1.0) * DAYS_PER_MONTH
                    if step_end <= t:
                        step += 1.0
                        step_end += DAYS_PER_MONTH
                seg_end = min(seg_end, step_end)
                rate *= math.exp(lhr_after * 2.0 ** (-(step + 0.5) * DAYS_PER_MONTH / half_life))
            else:
                rate *= mult_after
        room = rate * (seg_end - t)
        if room >= target:
            return t + target / rate
        target -= room
        t = seg_end
        if t >= next_bday:
            next_bday += DAYS_PER_YEAR
            age_mult *= age_hr
        if t >= step_end:
            step += 1.0
            step_end += DAYS_PER_MONTH
    return INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _entry_in_pieces(t, target, horizon, rate, treated, s, e, mult_during, mult_after):
    """_next_entry when the hazard is constant but for the treatment (no age effect, no
    waning): at most three pieces, with the same arithmetic, so the same result."""
    if not treated:
        if rate * (horizon - t) >= target:
            return t + target / rate
        return INF
    while t < horizon:
        seg_end = horizon
        r = rate
        if t < s:
            seg_end = min(seg_end, s)
        elif t < e:
            seg_end = min(seg_end, e)
            r = rate * mult_during
        else:
            r = rate * mult_after
        room = r * (seg_end - t)
        if room >= target:
            return t + target / r
        target -= room
        t = seg_end
    return INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _spell_end(t_in, n, key, first_stay, second_stay, exit_rate, horizon):
    """End of a care spell entered at t_in (the horizon at the latest): its length is
    draw n + 1 of the young person's care stream (n: the walk's draw counter), made in
    advance for their first two spells."""
    if exit_rate > 0.0:
        stay = first_stay if n == 0 else (second_stay if n == 2 else exponential(key, n + 1))
        return min(t_in + stay / exit_rate, horizon)
    return horizon


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _treated_hazard(r, s, e, h, rate0, mult_during, mult_after):
    """Cumulative treated entry hazard over [r, h) with no age effect and no waning."""
    before = max(min(s, h) - r, 0.0)
    during = max(min(e, h) - s, 0.0)
    after = max(h - e, 0.0)
    return rate0 * (before + mult_during * during + mult_after * after)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def first_entry(e0, t_ref, horizon, age0, rate0, age_hr, ref_age):
    """First untreated care entry after referral, for target e0 (losses from the waiting list)."""
    return _next_entry(t_ref, e0, horizon, t_ref, age0, rate0, age_hr,
                       ref_age, False, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _add_baseline_days(track_a, track_b, width, baseline_q, edges, day_q, slope, part, cohort):
    """Baseline care days: child days times the baseline proportion of their tracking quarter."""
    w = 0.0
    for j in range(baseline_q.shape[0]):
        a = track_a + j * width
        if a >= track_b:
            break
        k, room = quarter_room(a, edges, day_q)
        bump_cohort(k, room, baseline_q[j] - w, cohort, slope, part)
        w = baseline_q[j]
    end = track_b   # one proportion covers the window; a list, only its own quarters
    if baseline_q.shape[0] > 1:
        end = min(track_b, track_a + baseline_q.shape[0] * width)
    k, room = quarter_room(end, edges, day_q)
    bump_cohort(k, room, -w, cohort, slope, part)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _untreated_entry(n, first, t, target, rate, horizon):
    """The next entry into care under one constant untreated hazard (the first, n = 0,
    worked out ahead), or never (inf) before the horizon."""
    t_in = pick(n == 0, first, t + target / rate)
    return t_in if rate * (horizon - t) >= target else INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin_spell(a, b, track_b, k_b, room_b, edges, day_q, cohort, slope, part):
    """A care spell [a, b) into a cohort band; (k_b, room_b) is the window end's look-up,
    where most spells end."""
    k_in, room_in = quarter_room(a, edges, day_q)
    bump_cohort(k_in, room_in, 1.0, cohort, slope, part)
    if b == track_b:
        bump_cohort(k_b, room_b, -1.0, cohort, slope, part)
    else:
        k_out, room_out = quarter_room(b, edges, day_q)
        bump_cohort(k_out, room_out, -1.0, cohort, slope, part)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin_calendar_spell(a, b, track_b, k_b, room_b, edges, day_q, slope, part, col):
    """A care spell [a, b) into calendar quarters, column col."""
    slope_at(a, 1.0, edges, day_q, slope, part, col)
    if b == track_b:
        bump(k_b, room_b, -1.0, slope, part, col)
    else:
        slope_at(b, -1.0, edges, day_q, slope, part, col)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _weaker(kappa, hr, log_hr):
    """The hazard ratio hr with its log scaled by kappa (hr itself when kappa is 1)."""
    return hr if kappa == 1.0 else math.exp(kappa * log_hr)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def young_people_outcomes(prm, cfg, n_acc, status, noncompleted_c, female_c, ref_time, accept_t,
              start_t, end_t,
              disrupted, age0, prior, rate0, care_key, care_e0, care_x1, care_e2, care_x3,
              first_entry_t, baseline_q,
              event_months, cal_edges, day_q, first_year_a, first_year_b, out, qsr_out, cal_out,
              k_slope, q_slope, cohort_days, cohort_slope, event_counts, checks, in_care,
              lengths):
    """The accepted young people's outcomes after the capacity model: counts, waiting and
    caseload days, child days and care days (treated and counterfactual) in their
    tracking window. Under a contract, the baseline, treated and counterfactual care days
    by tracking cohort (cohort_days[CO_*], slope-binned with cohort_slope) and the outcome
    events, treated and counterfactual (event_counts[0], [1]; in_care likewise).
    Returns (started, total wait, total age). Compiled without reference counting: it
    allocates nothing, and numba's refcount pruning gives up on loops this large."""
    care_end_age = cfg[C_CARE_END_AGE]
    track_days = cfg[C_TRACKING_DAYS]
    track_from = int(cfg[C_TRACK_FROM])
    qsr_width = 3.0 * DAYS_PER_MONTH
    hr_during0 = prm[P_HR_DURING]
    hr_after0 = prm[P_HR_AFTER]
    lhr_during0 = math.log(hr_during0)
    lhr_after0 = math.log(hr_after0)
    # A weaker effect (kappa < 1: non-completed, disrupted or both) scales the log hazard
    # ratios. Three kappas a path, so the hazard ratios are worked out here, once, and
    # picked per young person without a branch.
    kappa_nc = prm[P_NONCOMPLETED_RETENTION]
    kappa_dis = prm[P_DISRUPTED_RETENTION]
    kappa_both = kappa_nc * kappa_dis
    during_nc = _weaker(kappa_nc, hr_during0, lhr_during0)
    during_dis = _weaker(kappa_dis, hr_during0, lhr_during0)
    during_both = _weaker(kappa_both, hr_during0, lhr_during0)
    after_nc = _weaker(kappa_nc, hr_after0, lhr_after0)
    after_dis = _weaker(kappa_dis, hr_after0, lhr_after0)
    after_both = _weaker(kappa_both, hr_after0, lhr_after0)
    half_life = prm[P_EFFECT_HALF_LIFE_DAYS]
    exit_rate = prm[P_EXIT_RATE] / DAYS_PER_YEAR
    age_hr = prm[P_AGE_HR]
    reentry_hr = prm[P_REENTRY_HR]
    ref_age = cfg[C_REFERENCE_AGE]
    has_contract = cfg[C_HAS_CONTRACT] > 0.5
    constant_pieces = age_hr == 1.0 and half_life <= 0.0
    single_baseline = baseline_q.shape[0] == 1
    n_cal = cal_edges.shape[0] - 1
    n_cohorts = cohort_days.shape[2]
    base_cq, base_slope = cohort_days[CO_BASELINE], cohort_slope[CO_BASELINE]
    care_cq, care_slope = cohort_days[CO_TREATED], cohort_slope[CO_TREATED]
    cf_cq, cf_slope = cohort_days[CO_COUNTERFACTUAL], cohort_slope[CO_COUNTERFACTUAL]
    n_events = event_months.shape[0]
    n_started = 0
    wait_sum = 0.0
    age_sum = 0.0
    # Totals over young people, kept in registers and written once: kept in out, each
    # add waited for the one before (the compiler cannot tell out from the other arrays).
    # The same adds in the same order, so the same sums.
    lost_wait = 0
    lost_care = 0
    lost_service_end = 0
    started_first_year = 0
    noncompleted_n = 0
    disrupted_n = 0
    female_n = 0
    prior_care_n = 0
    child_days = 0.0
    care_days_cf = 0.0
    care_days_tr = 0.0
    entered_cf = 0
    entered_tr = 0
    for c in range(n_acc):
        i = np.uint64(c)   # (unsigned: see the binning helpers)
        st = status[i]
        lost_wait += st == ST_LOST_WAIT
        lost_care += st == ST_LOST_CARE
        lost_service_end += st == ST_LOST_SERVICE_END
        if st != ST_STARTED:  # lost: waited from acceptance until leaving the list
            span(accept_t[i], end_t[i], 1.0, cal_edges, day_q, k_slope, cal_out, K_WAITING_DAYS)
            continue
        s = start_t[i]
        e = end_t[i]
        # waiting [acceptance, s) and caseload [s, e) share the look-up at s
        k_acc, room_acc = quarter_room(accept_t[i], cal_edges, day_q)
        k_s, room_s = quarter_room(s, cal_edges, day_q)
        k_e, room_e = quarter_room(e, cal_edges, day_q)
        w_wait = pick(s > accept_t[i], 1.0, 0.0)
        bump(k_acc, room_acc, w_wait, k_slope, cal_out, K_WAITING_DAYS)
        bump(k_s, room_s, -w_wait, k_slope, cal_out, K_WAITING_DAYS)
        bump(k_s, room_s, 1.0, k_slope, cal_out, K_CASELOAD_DAYS)
        bump(k_e, room_e, -1.0, k_slope, cal_out, K_CASELOAD_DAYS)
        lengths[n_started] = e - s
        n_started += 1
        wait_sum += s - accept_t[i]
        age_sum += age0[i]
        if s >= cal_edges[0] and k_s >= 0:
            cal_out[k_s, K_STARTED] += 1.0
        started_first_year += (first_year_a <= s) & (s < first_year_b)
        noncompleted = noncompleted_c[c]
        noncompleted_n += noncompleted
        disrupted_n += disrupted[i]
        nc = noncompleted
        dis = disrupted[i]
        kappa = pick(nc, pick(dis, kappa_both, kappa_nc), pick(dis, kappa_dis, 1.0))
        mult_during = pick(nc, pick(dis, during_both, during_nc), pick(dis, during_dis, hr_during0))
        mult_after = pick(nc, pick(dis, after_both, after_nc), pick(dis, after_dis, hr_after0))
        female_n += female_c[c]
        prior_care_n += prior[i]
        r = ref_time[i]
        track_a = r if track_from == 0 else (s if track_from == 1 else e)
        t18 = r + (care_end_age - age0[i]) * DAYS_PER_YEAR
        track_b = min(track_a + track_days, t18)
        horizon = track_b
        # child days (and baseline days, proportional to them) share the look-ups at
        # the window's two ends
        k_a, room_a = quarter_room(track_a, cal_edges, day_q)
        k_b, room_b = quarter_room(track_b, cal_edges, day_q)
        w_child = 0.0
        if track_b > track_a:
            w_child = 1.0
            child_days += track_b - track_a
            slope_at_since(0.0, 1.0, qsr_width, q_slope, qsr_out, Q_CHILD_DAYS)
            slope_at_since(track_b - track_a, -1.0, qsr_width, q_slope, qsr_out, Q_CHILD_DAYS)
            bump(k_a, room_a, 1.0, k_slope, cal_out, K_CHILD_DAYS)
            bump(k_b, room_b, -1.0, k_slope, cal_out, K_CHILD_DAYS)
        else:
            horizon = r
        for m in range(n_events):
            checks[m] = r + event_months[m] * DAYS_PER_MONTH
            in_care[0, m] = False
            in_care[1, m] = False
        cohort = 0
        if has_contract:
            # quarter_of(track_a), clamped (a window after the calendar bins nothing)
            cohort = min(pick(k_a >= 0, k_a, n_cal - 1), n_cohorts - 1)
            if single_baseline:
                bump_cohort(k_a, room_a, baseline_q[0] * w_child, cohort, base_slope, base_cq)
                bump_cohort(k_b, room_b, -baseline_q[0] * w_child, cohort, base_slope, base_cq)
            elif track_b > track_a:
                _add_baseline_days(track_a, track_b, qsr_width, baseline_q, cal_edges, day_q,
                                   base_slope, base_cq, cohort)
        # Care spells from referral to the horizon: the untreated counterfactual walk,
        # then the treated one, on the same draws (n = 0, 2, 4.. entry targets, 1, 3, 5..
        # spell lengths; draws 0 to 3 made in advance, in draw_young_people's vector loop).
        # The walks are written here, not in a function, because a call passing a dozen
        # arrays is costly in this loop; and written twice, not as one loop over the two
        # walks, because that loop's tests of which walk it was in were as costly.
        # Treatment without effect (hazard ratios of 1) walks by the counterfactual's rule,
        # so its spells are the counterfactual's to the last bit, and the payments at
        # hazard ratio 1 the no-effect payments exactly.
        no_effect = mult_during == 1.0 and mult_after == 1.0
        key = care_key[i]
        lhr_after = kappa * lhr_after0
        cf = 0.0
        tr = 0.0
        t = r
        n = 0
        rate = rate0[i]
        target = care_e0[i]
        while t < horizon:
            if constant_pieces:   # one constant hazard (the first entry worked out ahead)
                t_in = _untreated_entry(n, first_entry_t[i], t, target, rate, horizon)
            else:
                t_in = _next_entry(t, target, horizon, r, age0[i], rate, age_hr, ref_age,
                                   False, s, e, mult_during, mult_after, lhr_after, half_life)
            if t_in >= horizon:
                break
            t_out = _spell_end(t_in, n, key, care_x1[i], care_x3[i], exit_rate, horizon)
            n += 2
            for m in range(n_events):
                if t_in <= checks[m] < t_out:
                    in_care[1, m] = True
            a = max(t_in, track_a)
            b = min(t_out, track_b)
            if b > a:
                cf += b - a
                slope_at_since(a - track_a, 1.0, qsr_width, q_slope, qsr_out, Q_CARE_COUNTERFACTUAL)
                slope_at_since(b - track_a, -1.0, qsr_width, q_slope, qsr_out,
                               Q_CARE_COUNTERFACTUAL)
                if has_contract:
                    _bin_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, cohort, cf_slope,
                               cf_cq)
                else:
                    _bin_calendar_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, k_slope,
                                        cal_out, K_CARE_COUNTERFACTUAL)
            t = t_out
            rate = rate0[i] * reentry_hr
            if t < horizon:
                target = care_e2[i] if n == 2 else exponential(key, n)
        # Most treated young people never enter care: the treated walk is skipped when
        # the whole treated hazard to the horizon (closed form if it is piecewise constant
        # in three pieces) stays below the first entry target.
        if no_effect or not (constant_pieces and (
                _treated_hazard(r, s, e, horizon, rate0[i], mult_during, mult_after)
                < care_e0[i])):
            t = r
            n = 0
            rate = rate0[i]
            target = care_e0[i]
            while t < horizon:
                if constant_pieces and no_effect:
                    t_in = _untreated_entry(n, first_entry_t[i], t, target, rate, horizon)
                elif constant_pieces:
                    t_in = _entry_in_pieces(t, target, horizon, rate, True, s, e,
                                            mult_during, mult_after)
                else:
                    t_in = _next_entry(t, target, horizon, r, age0[i], rate, age_hr, ref_age,
                                       not no_effect, s, e, mult_during, mult_after,
                                       lhr_after, half_life)
                if t_in >= horizon:
                    break
                t_out = _spell_end(t_in, n, key, care_x1[i], care_x3[i], exit_rate, horizon)
                n += 2
                for m in range(n_events):
                    if t_in <= checks[m] < t_out:
                        in_care[0, m] = True
                a = max(t_in, track_a)
                b = min(t_out, track_b)
                if b > a:
                    tr += b - a
                    slope_at_since(a - track_a, 1.0, qsr_width, q_slope, qsr_out, Q_CARE_TREATED)
                    slope_at_since(b - track_a, -1.0, qsr_width, q_slope, qsr_out, Q_CARE_TREATED)
                    # by cohort under a contract (arrays named in each call: choosing one
                    # at run time is costly too)
                    if has_contract:
                        _bin_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, cohort,
                                   care_slope, care_cq)
                    else:
                        _bin_calendar_spell(a, b, track_b, k_b, room_b, cal_edges, day_q,
                                            k_slope, cal_out, K_CARE_TREATED)
                t = t_out
                rate = rate0[i] * reentry_hr
                if t < horizon:
                    target = care_e2[i] if n == 2 else exponential(key, n)
        for m in range(n_events):
            if checks[m] < horizon:
                if not in_care[0, m]:
                    count_at(checks[m], cal_edges, day_q, event_counts[0], m, 1.0)
                if not in_care[1, m]:
                    count_at(checks[m], cal_edges, day_q, event_counts[1], m, 1.0)
        care_days_cf += cf
        care_days_tr += tr
        entered_cf += cf > 0.0
        entered_tr += tr > 0.0
    out[O_LOST_WAIT] += lost_wait
    out[O_LOST_CARE] += lost_care
    out[O_LOST_SERVICE_END] += lost_service_end
    out[O_STARTED_FIRST_YEAR] += started_first_year
    out[O_NONCOMPLETED] += noncompleted_n
    out[O_DISRUPTED] += disrupted_n
    out[O_FEMALE] += female_n
    out[O_PRIOR_CARE] += prior_care_n
    out[O_CHILD_DAYS] += child_days
    out[O_CARE_DAYS_COUNTERFACTUAL] += care_days_cf
    out[O_CARE_DAYS_TREATED] += care_days_tr
    out[O_ENTERED_CARE_COUNTERFACTUAL] += entered_cf
    out[O_ENTERED_CARE_TREATED] += entered_tr
    return n_started, wait_sum, age_sum
