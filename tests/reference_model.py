"""A plain-Python reference implementation of the service model, written from the spec.

``simulate_reference(scenario, paths, seed)`` simulates the service model of
ARCHITECTURE.md ("The model, precisely", up to the contract) one path, one
team and one young person at a time, in plain Python with its own random
numbers (``numpy.random.Generator``; one child generator per path from a
``SeedSequence``). It shares nothing with :mod:`simulator.kernels`: no kernels,
no counter-based RNG, no array layout. It exists to check the numba engine in
distribution (tests/test_reference.py) and as the slow side of
benchmarks/bench_engine.py. Speed is not a goal.

How each mechanism is simulated (all times in days since the contract start):

* parameters: every uncertain parameter is drawn once per path as
  ``dist.ppf(u)`` of a uniform from the path's generator;
* workforce: a discrete-event simulation over all teams (a heap of leaving and
  recruitment-completion events), therapists in waiting shared by all teams,
  stopped at ``service_end``; its fill/leave events are then replayed per team;
* referrals: per team and month, a gamma-Poisson (negative binomial) count, or
  Poisson, with ramp, trend and the last month cut at ``referrals_end``;
  arrivals uniform in the month; acceptance, rejection reason, age (truncated
  normal), sex, prior care;
* capacity: per team, a discrete-event simulation (case ends, workforce events,
  acceptances, the end of the service) with a FIFO list; the waiting list is
  purged of those whose deadline (max wait, untreated first care entry) has
  passed at every event and emptied at ``service_end``;
* care: the entry hazard is a piecewise-constant function of time built per
  young person (breakpoints at birthdays, treatment start and end and the
  monthly waning steps; the rate of each piece is evaluated at its midpoint);
  entries are found by inverting the cumulative hazard against unit
  exponential draws. The same draws (entry targets and spell lengths) drive
  the untreated first entry that decides losses to care, the counterfactual
  walk and the treated walk.

Columns returned (same names as ``simulator.engine.OUTPUT_COLUMNS``):
``referrals, accepted, rejected, started, completed, noncompleted, lost_wait,
lost_care, lost_service_end, disrupted, child_days, care_days_treated,
care_days_counterfactual, entered_care_treated, entered_care_counterfactual,
leavers, vacancy_days, referrals_first_year, started_first_year,
treatment_days_median, share_under_threshold, mean_wait_days, female,
prior_care, mean_age, therapist_days, baseline_care_days`` (0 without a
contract, as in the engine), plus ``path``, ``children_treated``,
``rejected_<reason>`` for each rejection reason and ``param.<key>`` for each
uncertain parameter. Not covered: the money columns (outcome payments, costs,
SPV cash flows and metrics), and the per-quarter arrays.

Column meanings (as in the engine): ``entered_care_*`` count young people
treated who spend some of their tracking window in care; ``female``,
``prior_care`` and ``mean_age`` are over the young people who started
treatment; ``mean_wait_days`` is from acceptance to start;
``*_first_year`` count referrals arriving / treatments starting in the year
from the first team's start; ``treatment_days_median`` and
``share_under_threshold`` are over treatments started (NaN when none).
"""
from __future__ import annotations

import bisect
import heapq
import math
from collections import deque

import numpy as np
import pandas as pd
from scipy import special, stats

from simulator.schema import DAYS_PER_MONTH, DAYS_PER_YEAR, Scenario, iter_params

Y = DAYS_PER_YEAR
M = DAYS_PER_MONTH
INF = math.inf

COLUMNS = ["referrals", "accepted", "rejected", "started", "completed", "noncompleted",
           "lost_wait", "lost_care", "lost_service_end", "disrupted", "child_days",
           "care_days_treated", "care_days_counterfactual", "entered_care_treated",
           "entered_care_counterfactual", "leavers", "vacancy_days", "referrals_first_year",
           "started_first_year", "treatment_days_median", "share_under_threshold",
           "mean_wait_days", "female", "prior_care", "mean_age", "therapist_days",
           "baseline_care_days"]


# --------------------------------------------------------------------------- draws
def draw_parameters(scenario: Scenario, rng: np.random.Generator) -> dict:
    """One value per parameter for one path (None for unset optional parameters)."""
    values = {}
    for name, dist in iter_params(scenario):
        u = rng.uniform()
        if dist is None:
            values[name] = None
        elif dist.is_fixed:
            values[name] = float(dist.value)
        else:
            values[name] = float(np.asarray(dist.ppf(np.array([u])))[0])
    return values


def truncated_normal(rng, mean, sd, lo, hi):
    """Normal(mean, sd) conditioned on [lo, hi]: by rejection when that is cheap."""
    flo, fhi = special.ndtr((lo - mean) / sd), special.ndtr((hi - mean) / sd)
    if fhi - flo > 0.25:
        while True:
            x = rng.normal(mean, sd)
            if lo <= x <= hi:
                return x
    # otherwise scipy's truncated normal, whose inverse CDF keeps its precision far in
    # either tail (a range many sd above the mean)
    x = stats.truncnorm.ppf(rng.uniform(), (lo - mean) / sd, (hi - mean) / sd, loc=mean, scale=sd)
    return min(max(float(x), lo), hi)


def truncated_lognormal(rng, median, sigma, lo, hi):
    mu = math.log(median)
    flo, fhi = special.ndtr((math.log(lo) - mu) / sigma), special.ndtr((math.log(hi) - mu) / sigma)
    if fhi - flo > 0.25:
        while True:
            x = rng.lognormal(mu, sigma)
            if lo <= x <= hi:
                return x
    z = stats.truncnorm.ppf(rng.uniform(), (math.log(lo) - mu) / sigma, (math.log(hi) - mu) / sigma)
    return min(max(math.exp(mu + sigma * float(z)), lo), hi)


class Draws:
    """A young person's unit-exponential care draws, extended on demand and shared by walks."""

    def __init__(self, rng):
        self.rng = rng
        self.x = list(rng.standard_exponential(8))

    def __getitem__(self, i):
        while i >= len(self.x):
            self.x.extend(self.rng.standard_exponential(8))
        return self.x[i]


# --------------------------------------------------------------------------- hazard
class CumulativeHazard:
    """Piecewise-linear cumulative hazard H on [T[0], T[-1]] with H(T[0]) = 0."""

    def __init__(self, T, rates):
        self.T = T
        self.rates = rates
        H = [0.0]
        for i, r in enumerate(rates):
            H.append(H[-1] + r * (T[i + 1] - T[i]))
        self.H = H

    def at(self, t):
        i = min(max(bisect.bisect_right(self.T, t) - 1, 0), len(self.rates) - 1)
        return self.H[i] + self.rates[i] * (t - self.T[i])

    def time_at(self, h):
        """Time at which H reaches h; +inf if it does not before the end."""
        if not self.rates or h >= self.H[-1]:
            return INF
        i = bisect.bisect_right(self.H, h) - 1
        return self.T[i] + (h - self.H[i]) / self.rates[i]


def hazard(r, end, age0, base_rate, age_hr, ref_age, treatment=None):
    """Care-entry hazard from referral ``r`` to ``end`` (before re-entry ratios).

    ``treatment`` is None (untreated) or (s, e, log_hr_during, log_hr_after,
    half_life or None), the log hazard ratios already scaled by kappa.
    """
    if end <= r:
        return CumulativeHazard([r], [])
    points = {r, end}
    k = math.floor(age0) + 1
    while True:  # birthdays
        b = r + (k - age0) * Y
        if b >= end:
            break
        points.add(b)
        k += 1
    if treatment is not None:
        s, e, _, _, half_life = treatment
        for x in (s, e):
            if r < x < end:
                points.add(x)
        if half_life is not None:
            b = 1
            while e + b * M < end:
                points.add(e + b * M)
                b += 1
    T = sorted(points)
    rates = []
    for i in range(len(T) - 1):
        mid = 0.5 * (T[i] + T[i + 1])
        age = age0 + (mid - r) / Y
        rate = base_rate * age_hr ** (math.floor(age) - ref_age)
        if treatment is not None:
            s, e, lhr_d, lhr_a, half_life = treatment
            if s <= mid < e:
                rate *= math.exp(lhr_d)
            elif mid >= e:
                w = 1.0
                if half_life is not None:
                    b = math.floor((mid - e) / M)
                    w = 2.0 ** (-(b + 0.5) * M / half_life)
                rate *= math.exp(lhr_a * w)
        rates.append(rate)
    return CumulativeHazard(T, rates)


def walk(H, draws, horizon, exit_rate, reentry_hr, a, b):
    """Care spells from referral (at home) to ``horizon``; care days inside [a, b)."""
    t, h, n, days = H.T[0], 0.0, 0, 0.0
    while t < horizon:
        t_in = H.time_at(h + draws[2 * n] / (1.0 if n == 0 else reentry_hr))
        if t_in >= horizon:
            break
        t_out = t_in + draws[2 * n + 1] / exit_rate if exit_rate > 0 else INF
        t_out = min(t_out, horizon)
        days += max(0.0, min(t_out, b) - max(t_in, a))
        t = t_out
        if t >= horizon:
            break
        h = H.at(t)
        n += 1
    return days


# --------------------------------------------------------------------------- workforce
def workforce(rng, p, team_start, team_size, n_waiting, service_end):
    """All teams' posts over time; returns per-team events [(t, 'leave'|'fill', post)]."""
    rate = p["workforce.leaving_rate_per_year"] / Y
    vac_mean = p["workforce.vacancy_mean_days"]
    vac_shape = p["workforce.vacancy_shape"]
    post_team = [k for k, n in enumerate(team_size) for _ in range(n)]
    n_posts = len(post_team)
    staffed_from = [None] * n_posts
    vacant_from = [None] * n_posts
    reserve = n_waiting
    events = {k: [] for k in range(len(team_size))}
    heap, seq = [], 0

    def push(t, prio, kind, post):
        nonlocal seq
        heapq.heappush(heap, (t, prio, seq, kind, post))
        seq += 1

    def fill(t, post):
        staffed_from[post] = t
        vacant_from[post] = None
        events[post_team[post]].append((t, "fill", post))
        if rate > 0:
            push(t + rng.exponential(1.0 / rate), 1, "leave", post)

    for post, k in enumerate(post_team):
        push(team_start[k], 0, "start", post)
    therapist_days = vacancy_days = 0.0
    leavers = 0
    while heap:
        t, _, _, kind, post = heapq.heappop(heap)
        if t >= service_end:
            break
        if kind == "start":
            fill(t, post)
        elif kind == "leave":
            leavers += 1
            therapist_days += t - staffed_from[post]
            staffed_from[post] = None
            events[post_team[post]].append((t, "leave", post))
            v = rng.gamma(vac_shape, vac_mean / vac_shape) if vac_mean > 0 else 0.0
            push(t + v, 2, "recruited", -1)
            if reserve > 0:
                reserve -= 1
                fill(t, post)
            else:
                vacant_from[post] = t
        else:  # a recruitment completes
            vacant = [q for q in range(n_posts) if vacant_from[q] is not None]
            if vacant:
                q = min(vacant, key=lambda q: vacant_from[q])
                vacancy_days += t - vacant_from[q]
                fill(t, q)
            else:
                reserve += 1
    for q in range(n_posts):
        if staffed_from[q] is not None and staffed_from[q] < service_end:
            therapist_days += service_end - staffed_from[q]
        if vacant_from[q] is not None:
            vacancy_days += service_end - vacant_from[q]
    return events, post_team, leavers, therapist_days, vacancy_days


# --------------------------------------------------------------------------- people
class Person:
    __slots__ = ("team", "r", "accept", "age", "female", "prior", "rate", "draws", "t18",
                 "d_wait", "d_care", "status", "start", "end", "length", "noncompleted",
                 "disrupted", "post")


def referrals(rng, p, team_start, team_weight, referrals_end):
    """Referral arrival times per team (sorted), from monthly counts."""
    out = []
    rate = p["referrals.per_team_per_month"]
    k_nb = p["referrals.dispersion"]
    ramp_m, s0 = p["referrals.ramp_up_months"], p["referrals.ramp_start_share"]
    trend = p["referrals.annual_trend"]
    for k, start in enumerate(team_start):
        times = []
        j = 0
        while start + j * M < referrals_end:
            a = start + j * M
            width = min(M, referrals_end - a)
            ramp = s0 + (1 - s0) * j / ramp_m if j < ramp_m else 1.0
            mean = rate * team_weight[k] * ramp * (1 + trend) ** (j * M / Y) * width / M
            lam = rng.gamma(k_nb, mean / k_nb) if k_nb is not None else mean
            n = rng.poisson(lam)
            times.extend(a + width * rng.uniform(size=n))
            j += 1
        out.append(sorted(times))
    return out


def run_team(k, people, team_events, post_team, limit, service_end, p, sc, rng):
    """FIFO waiting list and caseloads of team ``k``; sets status/start/end/disrupted."""
    posts = [q for q, kk in enumerate(post_team) if kk == k]
    staffed = {q: False for q in posts}
    cases = {q: set() for q in posts}
    queue = deque()
    heap, seq = [], 0

    def push(t, prio, kind, x):
        nonlocal seq
        heapq.heappush(heap, (t, prio, seq, kind, x))
        seq += 1

    for t, kind, post in team_events:
        push(t, 1, kind, post)
    for i, person in enumerate(people):
        push(person.accept, 2, "accept", i)
    push(service_end, 3, "service_end", None)
    median = p["treatment.median_days"]
    sigma = (math.log(p["treatment.short_threshold_days"]) - math.log(median)) / \
        special.ndtri(p["treatment.share_under_threshold"])
    tr = sc.treatment

    def lose(person):
        person.status = "lost_care" if person.d_care < person.d_wait else "lost_wait"

    def least_loaded(room):
        best = None
        for q in posts:
            if staffed[q] and len(cases[q]) < room and (best is None
                                                       or len(cases[q]) < len(cases[best])):
                best = q
        return best

    while heap:
        t, _, _, kind, x = heapq.heappop(heap)
        if kind == "end":
            cases[people[x].post].discard(x)
        elif kind == "leave":
            staffed[x] = False
            for i in sorted(cases[x]):
                people[i].disrupted = True
                q = least_loaded(INF)
                if q is not None:
                    cases[x].discard(i)
                    cases[q].add(i)
                    people[i].post = q
        elif kind == "fill":
            staffed[x] = True
        elif kind == "accept":
            if t >= service_end:  # accepted after the service ended
                person = people[x]
                person.status = "lost_care" if person.d_care < t else "lost_service_end"
                continue
            queue.append(x)
        elif kind == "service_end":
            for i in queue:
                person = people[i]
                if min(person.d_wait, person.d_care) < service_end:
                    lose(person)
                else:
                    person.status = "lost_service_end"
            queue.clear()
            continue
        # whoever's deadline has passed is no longer waiting
        if any(min(people[i].d_wait, people[i].d_care) < t for i in queue):
            keep = deque()
            for i in queue:
                if min(people[i].d_wait, people[i].d_care) < t:
                    lose(people[i])
                else:
                    keep.append(i)
            queue = keep
        while queue and t < service_end:
            q = least_loaded(limit)
            if q is None:
                break
            i = queue.popleft()
            person = people[i]
            person.status = "started"
            person.start = t
            person.length = truncated_lognormal(rng, median, sigma, tr.min_days, tr.max_days)
            person.end = t + person.length
            person.post = q
            cases[q].add(i)
            push(person.end, 0, "end", i)


def simulate_path(scenario: Scenario, rng: np.random.Generator) -> dict:
    sc = scenario
    p = draw_parameters(sc, rng)
    cal = sc.calendar
    origin = cal.contract_start
    referrals_end = (cal.referrals_end - origin).days + 1.0
    service_end = (cal.service_end - origin).days + 1.0
    teams = sc.workforce.teams
    delay = p["calendar.start_delay_months"] * M
    team_start = [(t.start_date - origin).days + delay for t in teams]
    team_size = [t.therapists for t in teams]
    team_weight = [t.referral_weight for t in teams]
    first_year = (min(team_start), min(team_start) + Y)
    row = dict.fromkeys(COLUMNS, 0.0)

    events, post_team, leavers, therapist_days, vacancy_days = workforce(
        rng, p, team_start, team_size, sc.workforce.therapists_in_waiting, service_end)
    row.update(leavers=leavers, therapist_days=therapist_days, vacancy_days=vacancy_days)

    reasons = list(sc.referrals.rejection_reasons)
    shares = np.array(list(sc.referrals.rejection_reasons.values()), dtype=float)
    rejected = dict.fromkeys(reasons, 0)
    yp = sc.young_people
    care = sc.care
    entry = p["care.entry_rate_per_year"] / Y * p["counterfactual.hazard_multiplier"]
    max_wait = p["workforce.max_wait_days"]
    by_team = []
    arrivals = referrals(rng, p, team_start, team_weight, referrals_end)
    for k, times in enumerate(arrivals):
        people = []
        for r in times:
            row["referrals"] += 1
            if first_year[0] <= r < first_year[1]:
                row["referrals_first_year"] += 1
            if rng.uniform() >= p["referrals.acceptance_share"]:
                row["rejected"] += 1
                if reasons:
                    rejected[reasons[rng.choice(len(reasons), p=shares / shares.sum())]] += 1
                continue
            row["accepted"] += 1
            x = Person()
            x.team, x.r = k, r
            x.accept = r + p["referrals.screening_days"]
            x.age = truncated_normal(rng, p["young_people.age_mean_years"],
                                     p["young_people.age_sd_years"], yp.age_min_years,
                                     yp.age_max_years)
            x.female = rng.uniform() < p["young_people.female_share"]
            x.prior = rng.uniform() < p["young_people.prior_care_share"]
            x.noncompleted = rng.uniform() < p["treatment.noncompletion_share"]
            x.rate = entry * (p["care.prior_care_hazard_ratio"] if x.prior else 1.0) * \
                (1 + p["counterfactual.annual_hazard_trend"]) ** (r / Y)
            x.draws = Draws(rng)
            x.t18 = r + (care.leaves_care_at_age - x.age) * Y
            x.d_wait = x.accept + max_wait
            # the untreated first entry (care ends at the 18th birthday)
            untreated = hazard(r, x.t18, x.age, x.rate, p["care.age_hazard_ratio_per_year"],
                               care.reference_age_years)
            x.d_care = untreated.time_at(x.draws[0])
            x.status, x.disrupted, x.start = None, False, None
            x.post = None
            people.append((x, untreated))
        by_team.append(people)
        run_team(k, [x for x, _ in people], events[k], post_team, sc.workforce.caseload_limit,
                 service_end, p, sc, rng)
    for name in reasons:
        row[f"rejected_{name}"] = float(rejected[name])

    # outcomes of those who started
    track_days = cal.tracking_months * M
    baseline = None
    if sc.contract is not None:
        baseline = np.atleast_1d(np.asarray(sc.contract.baseline_care_proportion, float))
    exit_rate = p["care.exit_rate_per_year"] / Y
    reentry = p["care.reentry_hazard_ratio"]
    lhr_d = math.log(p["treatment.hazard_ratio_during"])
    lhr_a = math.log(p["treatment.hazard_ratio_after"])
    half_life = p["treatment.effect_half_life_days"]
    lengths, waits, ages = [], [], []
    for people in by_team:
        for x, untreated in people:
            if x.status != "started":
                row[x.status] += 1
                continue
            row["started"] += 1
            lengths.append(x.length)
            waits.append(x.start - x.accept)
            ages.append(x.age)
            row["female"] += x.female
            row["prior_care"] += x.prior
            if first_year[0] <= x.start < first_year[1]:
                row["started_first_year"] += 1
            kappa = 1.0
            if x.noncompleted:
                row["noncompleted"] += 1
                kappa *= p["treatment.noncompleted_effect_retention"]
            else:
                row["completed"] += 1
            if x.disrupted:
                row["disrupted"] += 1
                kappa *= p["treatment.disrupted_effect_retention"]
            a = {"referral": x.r, "treatment_start": x.start,
                 "treatment_end": x.end}[cal.tracking_from]
            b = min(a + track_days, x.t18)
            if b <= a:
                continue
            row["child_days"] += b - a
            if baseline is not None:
                for j in range(len(baseline)):
                    lo, hi = a + j * 3 * M, (a + (j + 1) * 3 * M if len(baseline) > 1 else b)
                    row["baseline_care_days"] += baseline[j] * max(0.0, min(hi, b) - lo)
            cf = walk(untreated, x.draws, b, exit_rate, reentry, a, b)
            treated = hazard(x.r, b, x.age, x.rate, p["care.age_hazard_ratio_per_year"],
                             care.reference_age_years,
                             (x.start, x.end, kappa * lhr_d, kappa * lhr_a, half_life))
            tr = walk(treated, x.draws, b, exit_rate, reentry, a, b)
            row["care_days_counterfactual"] += cf
            row["care_days_treated"] += tr
            row["entered_care_counterfactual"] += cf > 0
            row["entered_care_treated"] += tr > 0
    row["children_treated"] = row["started"]
    if lengths:
        row["treatment_days_median"] = float(np.median(lengths))
        row["share_under_threshold"] = float(np.mean(np.array(lengths)
                                                     < p["treatment.short_threshold_days"]))
        row["mean_wait_days"] = float(np.mean(waits))
        row["mean_age"] = float(np.mean(ages))
    else:
        for c in ("treatment_days_median", "share_under_threshold", "mean_wait_days", "mean_age"):
            row[c] = math.nan
    for name, dist in iter_params(sc):
        if dist is not None and not dist.is_fixed:
            row[f"param.{name}"] = p[name]
    return {c: float(v) for c, v in row.items()}


def simulate_reference(scenario: Scenario, paths: int, seed: int) -> pd.DataFrame:
    """Simulate ``paths`` paths of the service model; one row per path (see the module doc)."""
    children = np.random.SeedSequence(seed).spawn(paths)
    rows = [simulate_path(scenario, np.random.default_rng(s)) for s in children]
    frame = pd.DataFrame(rows)
    frame.insert(0, "path", np.arange(paths, dtype=np.int64))
    return frame
