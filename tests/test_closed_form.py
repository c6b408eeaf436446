"""Degenerate scenarios with closed-form answers; every bound is 4 standard errors."""
import datetime as dt
import math

import numpy as np
import pytest
from scipy import stats

from simulator import engine
from simulator.kernels import rng
from simulator.kernels.calls import from_python
from simulator.kernels.rng import stream_key, truncated_std_normal, uniform
from simulator.schema import DAYS_PER_MONTH, DAYS_PER_YEAR

from helpers import CONTRACT_START, deep_update, make_scenario, small_scenario_dict

norm_ppf, truncation = from_python(rng.norm_ppf), from_python(rng.truncation)
T_DAYS = 30 * DAYS_PER_MONTH


def no_queue_no_turnover(changes: dict):
    """Unlimited capacity, no turnover, everyone accepted and started on referral."""
    base = {
        "referrals": {"acceptance_share": 1.0, "screening_days": 0, "dispersion": None,
                      "ramp_up_months": 0, "per_team_per_month": 8.0},
        "workforce": {"teams": [{"name": "t", "start_date": CONTRACT_START, "therapists": 20}],
                      "caseload_limit": 50, "leaving_rate_per_year": 0.0,
                      "therapists_in_waiting": 0},
        "young_people": {"age_min_years": 11.0, "age_max_years": 11.5, "prior_care_share": 0.0},
        "care": {"exit_rate_per_year": 0.0, "reentry_hazard_ratio": 1.0,
                 "age_hazard_ratio_per_year": 1.3},
        "treatment": {"hazard_ratio_during": 1.0, "hazard_ratio_after": 1.0,
                      "noncompletion_share": 0.0, "disrupted_effect_retention": 1.0},
    }
    return make_scenario(changes, base=deep_update(small_scenario_dict(), base))


def per_person_mean(frame, column):
    x = frame[column] / frame["started"]
    return x.mean(), x.std(ddof=1) / math.sqrt(len(x))


def expected_care_days(entry, exit_, T):
    """Two-state Markov chain from 'home': expected days in care over [0, T]."""
    k = entry + exit_
    return entry / k * (T - (1 - math.exp(-k * T)) / k)


@pytest.mark.parametrize("entry_per_year, exit_per_year", [(0.8, 0.0), (0.4, 0.0), (0.8, 1.5)])
def test_mean_care_days_match_markov_closed_form(entry_per_year, exit_per_year):
    # Ages 11-11.5 plus 30 months stay under the reference age 14, but the age ratio
    # (1.3/yr) must then apply by whole year of age: give it a neutral ratio instead.
    sc = no_queue_no_turnover({"care": {"entry_rate_per_year": entry_per_year,
                                        "exit_rate_per_year": exit_per_year,
                                        "age_hazard_ratio_per_year": 1.0}})
    res = engine.simulate(sc, paths=400, seed=3)
    f = res.paths
    assert (f.lost_wait + f.lost_care + f.lost_service_end).sum() == 0
    # HR = 1: the treated walk equals the counterfactual (up to rounding at treatment start/end)
    assert np.allclose(f.care_days_treated, f.care_days_counterfactual, rtol=1e-9, atol=1e-6)
    mean, se = per_person_mean(f, "care_days_counterfactual")
    lam, mu = entry_per_year / DAYS_PER_YEAR, exit_per_year / DAYS_PER_YEAR
    expected = expected_care_days(lam, mu, T_DAYS)
    if exit_per_year == 0:
        assert expected == pytest.approx(T_DAYS - (1 - math.exp(-lam * T_DAYS)) / lam)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    child, _ = per_person_mean(f, "child_days")
    assert child == pytest.approx(T_DAYS)


def test_constant_treatment_effect_scales_the_hazard():
    hr = 0.3
    sc = no_queue_no_turnover({"care": {"entry_rate_per_year": 0.8,
                                        "age_hazard_ratio_per_year": 1.0},
                               "treatment": {"hazard_ratio_during": hr, "hazard_ratio_after": hr}})
    f = engine.simulate(sc, paths=400, seed=4).paths
    lam = 0.8 / DAYS_PER_YEAR
    mean, se = per_person_mean(f, "care_days_treated")
    assert abs(mean - expected_care_days(lam * hr, 0.0, T_DAYS)) < 4 * se
    mean, se = per_person_mean(f, "care_days_counterfactual")
    assert abs(mean - expected_care_days(lam, 0.0, T_DAYS)) < 4 * se
    assert np.all(f.care_days_treated <= f.care_days_counterfactual + 1e-9)  # coupled draws


def test_age_hazard_ratio_applies_by_whole_year():
    # Everyone is referred aged exactly 15.0 (a 1e-9-wide age range) and the
    # reference age is 14: the hazard is lam*r in year 15 and lam*r^2 in year 16.
    r, lam_y = 1.5, 0.3
    sc = no_queue_no_turnover({"care": {"entry_rate_per_year": lam_y,
                                        "age_hazard_ratio_per_year": r},
                               "young_people": {"age_min_years": 15.0,
                                                "age_max_years": 15.000000001,
                                                "age_mean_years": 15.0}})
    f = engine.simulate(sc, paths=400, seed=5).paths
    lam = lam_y / DAYS_PER_YEAR
    Y = DAYS_PER_YEAR
    a, b = lam * r, lam * r * r
    # P(no entry by t): exp(-a t) for t < Y, exp(-a Y - b (t - Y)) after; E[care] = int_0^T (1 - S)
    survival_integral = (1 - math.exp(-a * Y)) / a + \
        math.exp(-a * Y) * (1 - math.exp(-b * (T_DAYS - Y))) / b
    mean, se = per_person_mean(f, "care_days_counterfactual")
    assert abs(mean - (T_DAYS - survival_integral)) < 4 * se


def expected_referrals(sc):
    """Sum of monthly means, computed from the model specification."""
    r = sc.referrals
    origin = sc.calendar.contract_start
    end = (sc.calendar.referrals_end - origin).days + 1.0
    total = 0.0
    for team in sc.workforce.teams:
        start = (team.start_date - origin).days
        j = 0
        while start + j * DAYS_PER_MONTH < end:
            a = start + j * DAYS_PER_MONTH
            share = min(1.0, (end - a) / DAYS_PER_MONTH)
            ramp_m, s0 = r.ramp_up_months.value, r.ramp_start_share.value
            ramp = s0 + (1 - s0) * j / ramp_m if j < ramp_m else 1.0
            trend = (1 + r.annual_trend.value) ** (j * DAYS_PER_MONTH / DAYS_PER_YEAR)
            mu = r.per_team_per_month.value * team.referral_weight * ramp * trend * share
            total += mu
            yield mu
            j += 1


@pytest.mark.parametrize("dispersion, per_month", [
    (3.0, 4.0),     # gamma shape >= 1: the batched first attempt
    (0.5, 4.0),     # gamma shape < 1: the scalar draw
    (None, 40.0),   # Poisson with a mean of 30 or more: PTRS rather than inversion
])
def test_referrals_and_acceptances_match_configured_means(dispersion, per_month):
    sc = make_scenario({"referrals": {"annual_trend": 0.2, "dispersion": dispersion,
                                      "per_team_per_month": per_month},
                        "workforce": {"caseload_limit": 50}})
    months = np.array(list(expected_referrals(sc)))
    f = engine.simulate(sc, paths=3000, seed=8).paths
    n = len(f)
    mu = months.sum()
    se = f.referrals.std(ddof=1) / math.sqrt(n)
    assert abs(f.referrals.mean() - mu) < 4 * se
    # negative binomial: Var = sum(mu + mu^2/k); SE of a sample variance from the 4th moment
    var = (months + (0.0 if dispersion is None else months**2 / dispersion)).sum()
    x = f.referrals - f.referrals.mean()
    se_var = math.sqrt(max(((x**4).mean() - x.var() ** 2) / n, 1e-12))
    assert abs(x.var() - var) < 4 * se_var
    p = sc.referrals.acceptance_share.value
    d = f.accepted - p * f.referrals  # mean zero given the counts
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(n)
    d = f.rejected_a - 0.25 * f.rejected
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(n)


def test_treatment_length_quantiles_match_truncated_lognormal():
    median, thr, share, lo, hi = 142.0, 90.0, 0.14, 10.0, 361.0
    mu = math.log(median)
    sigma = (math.log(thr) - mu) / stats.norm.ppf(share)
    flo = stats.norm.cdf((math.log(lo) - mu) / sigma)
    fhi = stats.norm.cdf((math.log(hi) - mu) / sigma)
    key = stream_key(np.uint64(1), 99, 0)
    how = truncation((math.log(lo) - mu) / sigma, (math.log(hi) - mu) / sigma)
    lengths = np.array([math.exp(mu + sigma * truncated_std_normal(uniform(key, i), how))
                        for i in range(20000)])
    dist = stats.lognorm(s=sigma, scale=median)
    for q in (0.05, 0.14, 0.25, 0.5, 0.75, 0.95):
        # expected quantile of the truncated law; SE of a sample quantile via the density
        x = dist.ppf(flo + q * (fhi - flo))
        dens = dist.pdf(x) / (fhi - flo)
        se = math.sqrt(q * (1 - q) / len(lengths)) / dens
        assert abs(np.quantile(lengths, q) - x) < 4 * se, q
    assert lengths.min() >= lo and lengths.max() <= hi
    # and through the engine: the share under 90 days per path averages to the truncated CDF
    sc = make_scenario({"workforce": {"caseload_limit": 50}})
    f = engine.simulate(sc, paths=2000, seed=9).paths
    expected = (dist.cdf(thr) - dist.cdf(lo)) / (dist.cdf(hi) - dist.cdf(lo))
    s = f.share_under_threshold
    assert abs(s.mean() - expected) < 4 * s.std(ddof=1) / math.sqrt(len(s))


@pytest.mark.parametrize("za, zb", [(-2.0, 1.5), (3.0, 14.0), (12.0, 26.0), (-26.0, -12.0)])
def test_truncated_normal_draws_keep_their_precision_far_in_either_tail(za, zb):
    # a range wholly above the mean used to be drawn from Phi's values near 1, which
    # have no precision there: every draw came out at the upper bound
    how = truncation(za, zb)
    key = np.uint64(stream_key(np.uint64(3), 98, 0))   # (a Python int may type as int64)
    z = np.array([truncated_std_normal(uniform(key, i), how) for i in range(20000)])
    law = stats.truncnorm(za, zb)
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        x = law.ppf(q)
        se = math.sqrt(q * (1 - q) / len(z)) / law.pdf(x)
        assert abs(np.quantile(z, q) - x) < 4 * se, q
    assert za <= z.min() and z.max() <= zb


def test_ages_truncated_far_above_their_mean_sit_just_above_the_lower_bound():
    # mean 5 years, sd 0.5, ages 11 to 18: 12 sd below the range; the truncated law's
    # mean is 11.041 years (scipy), where the engine used to give every young person 18
    sc = make_scenario({"young_people": {"age_mean_years": 5.0, "age_sd_years": 0.5}})
    ages = engine.simulate(sc, paths=200, seed=3).paths.mean_age
    expected = stats.truncnorm((11 - 5.0) / 0.5, (18 - 5.0) / 0.5, loc=5.0, scale=0.5).mean()
    assert abs(ages.mean() - expected) < 4 * ages.std(ddof=1) / math.sqrt(len(ages)) + 1e-3
    # beyond about 37 sd no mass is left to draw from: every age is the nearest bound
    sc = make_scenario({"young_people": {"age_mean_years": 2.0, "age_sd_years": 0.1}})
    assert (engine.simulate(sc, paths=20, seed=3).paths.mean_age == 11.0).all()


def test_norm_ppf_is_accurate():
    p = np.concatenate([np.linspace(1e-12, 1e-3, 50), np.linspace(1e-3, 1 - 1e-3, 500)])
    ours = np.array([norm_ppf(x) for x in p])
    assert np.max(np.abs(ours - stats.norm.ppf(p))) < 1e-8


@pytest.mark.parametrize("shape", [1.0])
def test_vacancy_days_match_the_alternating_markov_formula(shape):
    # One team of 6 posts for 20 years; tenure exp(rate r), vacancy exp(mean v):
    # each post is a two-state chain started staffed, so the expected vacant time is
    # n * p * (H - (1 - exp(-(r+s) H)) / (r+s)) with s = 1/v and p = r / (r + s).
    n_posts, r_year, v = 6, 0.5, 120.0
    sc = make_scenario({
        "calendar": {"referrals_end": dt.date(2021, 12, 31), "service_end": dt.date(2039, 12, 31)},
        "workforce": {"leaving_rate_per_year": r_year, "vacancy_mean_days": v,
                      "vacancy_shape": shape, "therapists_in_waiting": 0,
                      "teams": [{"name": "t", "start_date": CONTRACT_START,
                                 "therapists": n_posts}]}})
    H = float((sc.calendar.service_end - CONTRACT_START).days + 1)  # 20 years
    f = engine.simulate(sc, paths=400, seed=10).paths
    r, s = r_year / DAYS_PER_YEAR, 1.0 / v
    expected = n_posts * r / (r + s) * (H - (1 - math.exp(-(r + s) * H)) / (r + s))
    se = f.vacancy_days.std(ddof=1) / math.sqrt(len(f))
    assert abs(f.vacancy_days.mean() - expected) < 4 * se
    # staffed + vacant = posts x service days, path by path; leavers arrive at rate r while staffed
    assert np.allclose(f.therapist_days + f.vacancy_days, n_posts * H)
    d = f.leavers - r * f.therapist_days
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d))
