"""The accepted young people's draws: age, prior care, care-entry rate, treatment length."""
import math

from ..layout import (
    C_AGE_MAX,
    C_AGE_MIN,
    C_MAX_TREATMENT_DAYS,
    C_MIN_TREATMENT_DAYS,
    DAYS_PER_YEAR,
    P_AGE_MEAN,
    P_AGE_SD,
    P_DRIFT_MULTIPLIER,
    P_DRIFT_TREND,
    P_ENTRY_RATE,
    P_FEMALE_SHARE,
    P_NONCOMPLETION_SHARE,
    P_PRIOR_CARE_HR,
    P_PRIOR_CARE_SHARE,
    P_SHARE_UNDER_THRESHOLD,
    P_SHORT_THRESHOLD_DAYS,
    P_TREATMENT_MEDIAN_DAYS,
    R_AGE,
    R_FEMALE,
    R_LENGTH,
    R_NONCOMPLETION,
    R_PRIOR_CARE,
    S_CARE,
)
from .cache import path_kernel
from .rng import norm_ppf, subkey, truncated_std_normal, truncation, uniform
from .vector import batch_exp, batch_log, pick


@path_kernel
def draw_young_people(prm, cfg, people):
    """Each accepted young person's age, prior care, care-entry rate, care stream key,
    first two care-entry targets and spell-length draws (care draws 0 to 3; a walk
    that needs more makes them), treatment length (if treated), and whether they
    would not complete a treatment and whether female; all in accepted order.

    In passes: the uniforms (hashes), then their transformation by log, exp and the
    normal quantile in place, in a loop of arithmetic only; both compile to vector
    instructions (the arrays are contiguous, in the order of the young people)."""
    n_acc = people.key.shape[0]
    acc_key, acc_time, age0, prior, rate0 = (people.key, people.ref_time, people.age0,
                                             people.prior, people.rate0)
    care_key, care_e0, care_x1, care_e2, care_x3 = (people.care_key, people.care_e0,
                                                    people.care_x1, people.care_e2,
                                                    people.care_x3)
    length, noncompleted, female = people.length, people.noncompleted, people.female
    entry_base = prm[P_ENTRY_RATE] / DAYS_PER_YEAR * prm[P_DRIFT_MULTIPLIER]
    age_mean = prm[P_AGE_MEAN]
    age_sd = prm[P_AGE_SD]
    age_lo = cfg[C_AGE_MIN]
    age_hi = cfg[C_AGE_MAX]
    age_law = truncation((age_lo - age_mean) / age_sd, (age_hi - age_mean) / age_sd)
    drift_trend = prm[P_DRIFT_TREND]
    prior_share = prm[P_PRIOR_CARE_SHARE]
    prior_hr = prm[P_PRIOR_CARE_HR]
    length_mu = math.log(prm[P_TREATMENT_MEDIAN_DAYS])
    length_sigma = ((math.log(prm[P_SHORT_THRESHOLD_DAYS]) - length_mu)
                    / norm_ppf(prm[P_SHARE_UNDER_THRESHOLD]))
    length_law = truncation(
        (math.log(cfg[C_MIN_TREATMENT_DAYS]) - length_mu) / length_sigma,
        (math.log(cfg[C_MAX_TREATMENT_DAYS]) - length_mu) / length_sigma)
    noncompletion = prm[P_NONCOMPLETION_SHARE]
    female_share = prm[P_FEMALE_SHARE]
    for c in range(n_acc):  # the hashes (rejected young people are never simulated further)
        key = acc_key[c]
        prior[c] = uniform(key, R_PRIOR_CARE) < prior_share
        ck = subkey(key, S_CARE)
        care_key[c] = ck
        age0[c] = uniform(key, R_AGE)
        care_e0[c] = uniform(ck, 0)
        care_x1[c] = uniform(ck, 1)
        care_e2[c] = uniform(ck, 2)
        care_x3[c] = uniform(ck, 3)
        length[c] = uniform(key, R_LENGTH)
        noncompleted[c] = uniform(key, R_NONCOMPLETION) < noncompletion
        female[c] = uniform(key, R_FEMALE) < female_share
    for c in range(n_acc):  # inverse CDFs: age truncated normal, length truncated lognormal
        age = age_mean + age_sd * truncated_std_normal(age0[c], age_law)
        age0[c] = min(max(age, age_lo), age_hi)
        care_e0[c] = -batch_log(care_e0[c])
        care_x1[c] = -batch_log(care_x1[c])
        care_e2[c] = -batch_log(care_e2[c])
        care_x3[c] = -batch_log(care_x3[c])
        length[c] = batch_exp(length_mu + length_sigma
                              * truncated_std_normal(length[c], length_law))
        rate0[c] = entry_base * pick(prior[c], prior_hr, 1.0)
    if drift_trend != 0.0:
        for c in range(n_acc):
            rate0[c] *= (1.0 + drift_trend) ** (acc_time[c] / DAYS_PER_YEAR)
