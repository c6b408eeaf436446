"""Care: entry and exit hazards, the treated and counterfactual care walks, and the
tracking window's child, care and baseline days and outcome events."""
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
    K_CHILD_DAYS,
    O_CARE_DAYS_COUNTERFACTUAL,
    O_CARE_DAYS_TREATED,
    O_CHILD_DAYS,
    O_ENTERED_CARE_COUNTERFACTUAL,
    O_ENTERED_CARE_TREATED,
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
    ST_STARTED,
)
from .binning import bump, bump_cohort, count_at, quarter_room, slope_at, slope_at_since
from .cache import FASTMATH, INNER, path_helper, path_kernel
from .rng import exponential
from .vector import INF, pick

# False, but not as a literal constant: numba compiles a function called with a literal
# argument for that literal, so a call with a literal False and one with a computed flag
# would compile it twice
_NO = np.bool_(False)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def _next_entry(t, target, horizon, rate0, who, tx, rules):
    """Time at which the cumulative entry hazard from t reaches ``target``, or +inf, for a
    young person ``who`` (referral time, age then) whose untreated hazard is rate0 a day
    at referral age; ``tx``: (treated, start, end, hazard ratios during and after
    treatment, the log of the latter); ``rules``: walk_rules'.

    The hazard is piecewise constant: it changes at birthdays (if the age hazard
    ratio is not 1), at treatment start and end, and (if the effect wanes) on
    month-long steps after treatment end. Boundaries are stepped by counters,
    not recomputed from t, so rounding can never stall the walk.
    """
    t_ref, age0 = who
    treated, s, e, mult_during, mult_after, lhr_after = tx
    age_hr, ref_age, half_life = rules[3], rules[4], rules[5]
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
    return _next_entry(t_ref, e0, horizon, rate0, (t_ref, age0),
                       (_NO, 0.0, 0.0, 1.0, 1.0, 0.0), (_NO, 0.0, 1.0, age_hr, ref_age, 0.0, _NO))


@path_kernel
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


@path_helper
def _untreated_entry(n, first, t, target, rate, horizon):
    """The next entry into care under one constant untreated hazard (the first, n = 0,
    worked out ahead), or never (inf) before the horizon."""
    t_in = pick(n == 0, first, t + target / rate)
    return t_in if rate * (horizon - t) >= target else INF


@path_helper
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


@path_helper
def _bin_calendar_spell(a, b, track_b, k_b, room_b, edges, day_q, slope, part, col):
    """A care spell [a, b) into calendar quarters, column col."""
    slope_at(a, 1.0, edges, day_q, slope, part, col)
    if b == track_b:
        bump(k_b, room_b, -1.0, slope, part, col)
    else:
        slope_at(b, -1.0, edges, day_q, slope, part, col)


@path_kernel
def _weaker(kappa, hr, log_hr):
    """The hazard ratio hr with its log scaled by kappa (hr itself when kappa is 1)."""
    return hr if kappa == 1.0 else math.exp(kappa * log_hr)


QSR_WIDTH = 3.0 * DAYS_PER_MONTH   # a quarter since tracking start, in days


@path_kernel
def care_outcomes(prm, scenario, people, work, rows):
    """Child days and care days, treated and counterfactual, in the tracking window of
    each young person who started treatment: by quarter since tracking start, and by
    calendar quarter, or under a contract by tracking cohort, with baseline days
    (work.binning.cohort_days[CO_*]) and outcome events, treated and counterfactual
    (event_counts[0], [1]). Compiled without reference counting: it allocates nothing,
    and numba's refcount pruning gives up on loops this large."""
    cfg = scenario.config
    binning = work.binning
    effect = treatment_effect(prm)
    rules = walk_rules(prm, cfg)
    days = (scenario.calendar_edges, scenario.day_quarter, binning.q_slope, rows.qsr,
            binning.k_slope, rows.cal, work.checks)
    # what each walk bins into: columns (not literals, so that one walk serves both),
    # cohort band, in-care flags at the outcome events
    untreated_bins = (np.int64(Q_CARE_COUNTERFACTUAL), np.int64(K_CARE_COUNTERFACTUAL),
                      binning.cohort_slope[CO_COUNTERFACTUAL],
                      binning.cohort_days[CO_COUNTERFACTUAL], work.in_care[1])
    treated_bins = (np.int64(Q_CARE_TREATED), np.int64(K_CARE_TREATED),
                    binning.cohort_slope[CO_TREATED], binning.cohort_days[CO_TREATED],
                    work.in_care[0])
    # totals over young people, kept in registers and written once: kept in out, each add
    # waited for the one before (the compiler cannot tell out from the other arrays)
    child_days = 0.0
    care_days_cf = 0.0
    care_days_tr = 0.0
    entered_cf = 0
    entered_tr = 0
    for c in range(people.status.shape[0]):
        i = np.uint64(c)   # (unsigned: see the binning helpers)
        if people.status[i] != ST_STARTED:
            continue
        r, s, e = people.ref_time[i], people.start_t[i], people.end_t[i]
        window = _window(r, s, e, people.age0[i], cfg, days)
        if window[1] > window[0]:
            child_days += window[1] - window[0]
        cohort = _baseline_days(window, cfg, scenario.baseline, days, binning)
        _clear_checks(r, scenario.event_months, work.checks, work.in_care)
        walk_window = (window[0], window[1], window[2], window[5], window[6], cohort)
        person = (r, people.age0[i], people.rate0[i], people.care_key[i], people.care_e0[i],
                  people.care_x1[i], people.care_e2[i], people.care_x3[i],
                  people.first_entry_t[i], s, e)
        tx = _person_effect(effect, people.noncompleted[c], people.disrupted[i])
        # Care spells from referral to the horizon: the untreated counterfactual walk,
        # then the treated one, on the same draws. Treatment without effect (hazard
        # ratios of 1) walks by the counterfactual's rule, so its spells are the
        # counterfactual's to the last bit, and the payments at hazard ratio 1 the
        # no-effect payments exactly. Most treated young people never enter care: the
        # treated walk is skipped when the whole treated hazard to the horizon (closed
        # form if it is piecewise constant in three pieces) stays below the first target.
        no_effect = tx[0] == 1.0 and tx[1] == 1.0
        skip_treated = not no_effect and rules[0] and (
            _treated_hazard(r, s, e, window[2], people.rate0[i], tx[0], tx[1])
            < people.care_e0[i])
        cf = 0.0
        tr = 0.0
        for who in range(2 - skip_treated):   # the counterfactual walk, then the treated one
            bins = untreated_bins if who == 0 else treated_bins
            days_in = _walk(person, (who == 1) and not no_effect, tx, walk_window, rules, bins,
                            days)
            if who == 0:
                cf = days_in
            else:
                tr = days_in
        _count_events(window[2], days, scenario.event_months.shape[0], work)
        care_days_cf += cf
        care_days_tr += tr
        entered_cf += cf > 0.0
        entered_tr += tr > 0.0
    rows.out[O_CHILD_DAYS] += child_days
    rows.out[O_CARE_DAYS_COUNTERFACTUAL] += care_days_cf
    rows.out[O_CARE_DAYS_TREATED] += care_days_tr
    rows.out[O_ENTERED_CARE_COUNTERFACTUAL] += entered_cf
    rows.out[O_ENTERED_CARE_TREATED] += entered_tr


@path_helper
def treatment_effect(prm):
    """The path's hazard ratios of care entry during and after treatment, for a full
    treatment and for a weaker one (kappa < 1: non-completed, disrupted or both, which
    scales the log hazard ratios): (hr during, hr after, log hr after, kappas (nc,
    disrupted, both), hrs during (nc, disrupted, both), hrs after (likewise)). Three
    kappas a path, so the ratios are worked out once, and picked per young person
    without a branch."""
    hr_during0 = prm[P_HR_DURING]
    hr_after0 = prm[P_HR_AFTER]
    lhr_during0 = math.log(hr_during0)
    lhr_after0 = math.log(hr_after0)
    kappa_nc = prm[P_NONCOMPLETED_RETENTION]
    kappa_dis = prm[P_DISRUPTED_RETENTION]
    kappa_both = kappa_nc * kappa_dis
    return (hr_during0, hr_after0, lhr_after0, kappa_nc, kappa_dis, kappa_both,
            _weaker(kappa_nc, hr_during0, lhr_during0),
            _weaker(kappa_dis, hr_during0, lhr_during0),
            _weaker(kappa_both, hr_during0, lhr_during0),
            _weaker(kappa_nc, hr_after0, lhr_after0),
            _weaker(kappa_dis, hr_after0, lhr_after0),
            _weaker(kappa_both, hr_after0, lhr_after0))


@path_helper
def _person_effect(effect, nc, dis):
    """A young person's (hr during, hr after, log hr after), by whether they did not
    complete treatment (nc) and whether it was disrupted (dis)."""
    (hr_during0, hr_after0, lhr_after0, kappa_nc, kappa_dis, kappa_both,
     during_nc, during_dis, during_both, after_nc, after_dis, after_both) = effect
    kappa = pick(nc, pick(dis, kappa_both, kappa_nc), pick(dis, kappa_dis, 1.0))
    mult_during = pick(nc, pick(dis, during_both, during_nc), pick(dis, during_dis, hr_during0))
    mult_after = pick(nc, pick(dis, after_both, after_nc), pick(dis, after_dis, hr_after0))
    return mult_during, mult_after, kappa * lhr_after0


@path_helper
def walk_rules(prm, cfg):
    """The path's rules of a care walk: (one constant hazard but for the treatment (no
    age effect, no waning), exit rate a day, re-entry hazard ratio, age hazard ratio,
    reference age, effect half-life, under a contract)."""
    age_hr = prm[P_AGE_HR]
    half_life = prm[P_EFFECT_HALF_LIFE_DAYS]
    return (age_hr == 1.0 and half_life <= 0.0, prm[P_EXIT_RATE] / DAYS_PER_YEAR,
            prm[P_REENTRY_HR], age_hr, cfg[C_REFERENCE_AGE], half_life,
            cfg[C_HAS_CONTRACT] > 0.5)


@path_helper
def _window(r, s, e, age0, cfg, days):
    """A young person's tracking window (from referral, treatment start or end, to the
    tracking length or age 18): (start, end, horizon of the care walks, and the start's
    and end's quarter look-ups), its child days binned (sharing the look-ups)."""
    cal_edges, day_q, q_slope, qsr_out, k_slope, cal_out, _ = days
    track_from = int(cfg[C_TRACK_FROM])
    track_a = r if track_from == 0 else (s if track_from == 1 else e)
    t18 = r + (cfg[C_CARE_END_AGE] - age0) * DAYS_PER_YEAR
    track_b = min(track_a + cfg[C_TRACKING_DAYS], t18)
    horizon = track_b
    k_a, room_a = quarter_room(track_a, cal_edges, day_q)
    k_b, room_b = quarter_room(track_b, cal_edges, day_q)
    if track_b > track_a:
        slope_at_since(0.0, 1.0, QSR_WIDTH, q_slope, qsr_out, Q_CHILD_DAYS)
        slope_at_since(track_b - track_a, -1.0, QSR_WIDTH, q_slope, qsr_out, Q_CHILD_DAYS)
        bump(k_a, room_a, 1.0, k_slope, cal_out, K_CHILD_DAYS)
        bump(k_b, room_b, -1.0, k_slope, cal_out, K_CHILD_DAYS)
    else:
        horizon = r
    return track_a, track_b, horizon, k_a, room_a, k_b, room_b


@path_helper
def _baseline_days(window, cfg, baseline_q, days, binning):
    """Under a contract, the window's tracking cohort (the calendar quarter it opens in,
    clamped: a window after the calendar bins nothing) and its baseline care days: child
    days times the baseline proportion. Returns the cohort (0 without a contract)."""
    if cfg[C_HAS_CONTRACT] <= 0.5:
        return 0
    track_a, track_b, _, k_a, room_a, k_b, room_b = window
    cal_edges, day_q = days[0], days[1]
    n_cal = cal_edges.shape[0] - 1
    base_slope, base_cq = binning.cohort_slope[CO_BASELINE], binning.cohort_days[CO_BASELINE]
    cohort = min(pick(k_a >= 0, k_a, n_cal - 1), binning.cohort_days.shape[2] - 1)
    w_child = 1.0 if track_b > track_a else 0.0
    if baseline_q.shape[0] == 1:
        bump_cohort(k_a, room_a, baseline_q[0] * w_child, cohort, base_slope, base_cq)
        bump_cohort(k_b, room_b, -baseline_q[0] * w_child, cohort, base_slope, base_cq)
    elif track_b > track_a:
        _add_baseline_days(track_a, track_b, QSR_WIDTH, baseline_q, cal_edges, day_q,
                           base_slope, base_cq, cohort)
    return cohort


@path_helper
def _clear_checks(r, event_months, checks, in_care):
    """The times a young person referred at r is assessed for the outcome events, and
    not yet known to be in care at any of them."""
    for m in range(event_months.shape[0]):
        checks[m] = r + event_months[m] * DAYS_PER_MONTH
        in_care[0, m] = False
        in_care[1, m] = False


@path_helper
def _walk(person, with_effect, tx, window, rules, bins, days):
    """One care walk from referral to the horizon (n = 0, 2, 4.. entry targets, 1, 3, 5..
    spell lengths; draws 0 to 3 made in advance, in draw_young_people's vector loop):
    its spells binned as ``bins`` says (quarter-since-tracking and calendar columns,
    cohort band, in-care flags at the outcome events). The treated walk has the effect
    (with_effect) unless it has none, when it walks by the counterfactual's rule.
    Returns the care days in the window."""
    r, age0, rate0, key, e0, x1, e2, x3, first, s, e = person
    track_a, track_b, horizon, k_b, room_b, cohort = window
    constant_pieces, exit_rate, reentry_hr, _, _, _, has_contract = rules
    q_col, k_col, co_slope, co_days, in_care = bins
    cal_edges, day_q, q_slope, qsr_out, k_slope, cal_out, checks = days
    mult_during, mult_after, lhr_after = tx
    days_in = 0.0
    t = r
    n = 0
    rate = rate0
    target = e0
    while t < horizon:
        if constant_pieces and not with_effect:   # the first entry worked out ahead
            t_in = _untreated_entry(n, first, t, target, rate, horizon)
        elif constant_pieces:
            t_in = _entry_in_pieces(t, target, horizon, rate, True, s, e, mult_during,
                                    mult_after)
        else:
            t_in = _next_entry(t, target, horizon, rate, (r, age0),
                               (with_effect, s, e, mult_during, mult_after, lhr_after), rules)
        if t_in >= horizon:
            break
        t_out = _spell_end(t_in, n, key, x1, x3, exit_rate, horizon)
        n += 2
        for m in range(checks.shape[0]):
            if t_in <= checks[m] < t_out:
                in_care[m] = True
        a = max(t_in, track_a)
        b = min(t_out, track_b)
        if b > a:
            days_in += b - a
            slope_at_since(a - track_a, 1.0, QSR_WIDTH, q_slope, qsr_out, q_col)
            slope_at_since(b - track_a, -1.0, QSR_WIDTH, q_slope, qsr_out, q_col)
            if has_contract:
                _bin_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, cohort, co_slope,
                           co_days)
            else:
                _bin_calendar_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, k_slope,
                                    cal_out, k_col)
        t = t_out
        rate = rate0 * reentry_hr
        if t < horizon:
            target = e2 if n == 2 else exponential(key, n)
    return days_in


@path_helper
def _count_events(horizon, days, n_events, work):
    """Each outcome event assessed before the horizon counts, treated and counterfactual,
    unless the young person was in care then."""
    cal_edges, day_q, checks = days[0], days[1], days[6]
    event_counts, in_care = work.binning.event_counts, work.in_care
    for m in range(n_events):
        if checks[m] < horizon:
            if not in_care[0, m]:
                count_at(checks[m], cal_edges, day_q, event_counts[0], m, 1.0)
            if not in_care[1, m]:
                count_at(checks[m], cal_edges, day_q, event_counts[1], m, 1.0)
