"""The layout of every array the kernels share with plain Python, declared once.

Index constants of the per-path parameter matrix (P_), the fixed configuration (C_),
the per-path outputs (O_), the outputs by quarter since tracking start (Q_) and by
calendar quarter (K_), the care days by tracking cohort (CO_), the reconciliation totals
(T_), the random streams (S_) and the draw numbers of a referral's stream (R_), and
the rules of a path's IRR. Plain Python, without numba: the engine's wrapper, the
metrics and the reports read the arrays through it without loading the kernels.
Also the two bundles of arrays the engine hands the kernels: a scenario's arrays
(:class:`ScenarioArrays`) and the outputs they fill (:class:`Outputs`).
"""
from typing import NamedTuple

import numpy as np

# Per-path parameter vector (columns of the params matrix). engine.PARAM_COLUMNS
# maps scenario keys onto these; a test checks the two agree.
P_START_DELAY_MONTHS = 0
P_REFERRAL_RATE = 1
P_REFERRAL_DISPERSION = 2      # 0 means Poisson
P_RAMP_UP_MONTHS = 3
P_RAMP_START_SHARE = 4
P_REFERRAL_TREND = 5
P_ACCEPTANCE_SHARE = 6
P_SCREENING_DAYS = 7
P_MAX_WAIT_DAYS = 8
P_LEAVING_RATE = 9
P_VACANCY_MEAN_DAYS = 10
P_VACANCY_SHAPE = 11
P_TREATMENT_MEDIAN_DAYS = 12
P_SHORT_THRESHOLD_DAYS = 13
P_SHARE_UNDER_THRESHOLD = 14
P_NONCOMPLETION_SHARE = 15
P_HR_DURING = 16
P_HR_AFTER = 17
P_EFFECT_HALF_LIFE_DAYS = 18   # 0 means no waning
P_DISRUPTED_RETENTION = 19
P_NONCOMPLETED_RETENTION = 20
P_AGE_MEAN = 21
P_AGE_SD = 22
P_FEMALE_SHARE = 23
P_PRIOR_CARE_SHARE = 24
P_ENTRY_RATE = 25
P_AGE_HR = 26
P_PRIOR_CARE_HR = 27
P_EXIT_RATE = 28
P_REENTRY_HR = 29
P_DRIFT_MULTIPLIER = 30
P_DRIFT_TREND = 31
P_CARE_COST_PER_DAY = 32
P_COST_TEAM_QUARTER = 33
P_COST_PER_CASE = 34
P_COST_FLEX_FUND = 35
P_COST_SET_UP = 36
P_COST_LICENCE_YEAR = 37
P_COST_MANAGEMENT_QUARTER = 38
P_COST_INFLATION = 39
N_PARAMS = 40

# Fixed configuration (same for every path).
C_REFERRALS_END = 0
C_SERVICE_END = 1
C_TRACKING_DAYS = 2
C_MIN_TREATMENT_DAYS = 3
C_MAX_TREATMENT_DAYS = 4
C_AGE_MIN = 5
C_AGE_MAX = 6
C_REFERENCE_AGE = 7
C_CARE_END_AGE = 8
C_TRACK_FROM = 9               # window opens at 0: referral, 1: treatment start, 2: treatment end
C_CASELOAD_LIMIT = 10
C_THERAPISTS_IN_WAITING = 11
C_HAS_CONTRACT = 12            # 1: outcome payments are computed
C_PRICE_PER_DAY = 13
C_PAYMENT_LAG = 14
C_CLAWBACK = 15
C_CAP = 16                     # < 0: no cap
C_LAST_PAYMENT_Q = 17          # calendar quarter index of the last payment
C_HAS_FINANCE = 18             # 1: the SPV waterfall is computed
C_COMMITMENT = 19
C_RESERVE = 20
C_TRANCHE = 21                 # 0: exact calls
C_DISTRIBUTION_FROM_Q = 22
C_INVESTOR_SHARE = 23
C_DISCOUNT_RATE = 24
C_COHORT_QUARTERS = 25         # calendar quarters a tracking cohort's days can fall in (band)
C_COHORTS = 26                 # tracking cohorts: the quarters from the first up to the last
                               # in which a tracking window can open
C_WIND_UP_Q = 27               # the SPV's last quarter: the later of the last payment's and
                               # the service end's (its reserve is released then)
C_DISCOUNT_RATE_QUARTER = 28   # the discount rate a quarter (the modified IRR's finance rate)
N_CONFIG = 29

# Per-path scalar outputs.
O_REFERRALS = 0
O_ACCEPTED = 1
O_REJECTED = 2
O_STARTED = 3
O_COMPLETED = 4
O_NONCOMPLETED = 5
O_LOST_WAIT = 6
O_LOST_CARE = 7
O_LOST_SERVICE_END = 8
O_DISRUPTED = 9
O_CHILD_DAYS = 10
O_CARE_DAYS_TREATED = 11
O_CARE_DAYS_COUNTERFACTUAL = 12
O_ENTERED_CARE_TREATED = 13
O_ENTERED_CARE_COUNTERFACTUAL = 14
O_LEAVERS = 15
O_VACANCY_DAYS = 16
O_REFERRALS_FIRST_YEAR = 17
O_STARTED_FIRST_YEAR = 18
O_TREATMENT_DAYS_MEDIAN = 19
O_SHARE_UNDER_THRESHOLD = 20
O_MEAN_WAIT_DAYS = 21
O_FEMALE = 22
O_PRIOR_CARE = 23
O_MEAN_AGE = 24
O_THERAPIST_DAYS = 25
O_BASELINE_CARE_DAYS = 26
O_OUTCOME_PAYMENTS = 27
O_CAP_REACHED = 28
O_SERVICE_COSTS = 29
O_COSTS_UNFUNDED = 30
O_CAPITAL_DRAWN = 31
O_DISTRIBUTIONS_INVESTORS = 32
O_DISTRIBUTIONS_PROVIDER = 33
O_MULTIPLE = 34                # (distributions + undrawn commitment) / commitment
O_MOIC_DRAWN = 35
O_IRR = 36
O_PEAK_CAPITAL_AT_RISK = 37
O_LOSS = 38
O_CARE_COSTS_AVOIDED = 39
O_NET_SAVING = 40
O_NO_EFFECT_PAYMENTS = 41      # what the contract pays on the counterfactual's care days
O_PAYMENTS_PV = 42
O_DEADWEIGHT_SHARE = 43        # min(no-effect payments, payments) / payments (0: none paid)
O_IRR_RULE = 44                # irr.IRR_* code: how the path's IRR was found
O_UNDRAWN_COMMITMENT = 45
O_IDLE_CASH = 46               # mean SPV cash balance over the quarters before wind-up
N_OUT = 47

# Per quarter-since-tracking-start outputs.
Q_CHILD_DAYS = 0
Q_CARE_TREATED = 1
Q_CARE_COUNTERFACTUAL = 2
N_Q = 3

# Per calendar-quarter outputs.
K_CHILD_DAYS = 0
K_CARE_TREATED = 1
K_CARE_COUNTERFACTUAL = 2
K_REFERRALS = 3
K_ACCEPTED = 4
K_STARTED = 5
K_VACANCY_DAYS = 6
K_THERAPIST_DAYS = 7
K_BASELINE_CARE_DAYS = 8
K_TEAM_DAYS = 9
K_OUTCOME_PAYMENTS = 10
K_SERVICE_COSTS = 11
K_COSTS_PAID = 12
K_COSTS_UNFUNDED = 13
K_CAPITAL_CALLS = 14
K_DISTRIBUTIONS_INVESTORS = 15
K_DISTRIBUTIONS_PROVIDER = 16
K_SPV_BALANCE = 17
K_OUTCOME_EVENTS = 18
K_CASELOAD_DAYS = 19            # open-case days (treatment start to end)
K_WAITING_DAYS = 20             # days on a waiting list (acceptance to start or loss)
K_NO_EFFECT_PAYMENTS = 21       # outcome payments had the service had no effect
N_K = 22

# Care days by tracking cohort under a contract (the first axis of cohort_days).
CO_BASELINE = 0
CO_TREATED = 1
CO_COUNTERFACTUAL = 2
N_CO = 3

# Random streams: one per random process.
S_PARAMS = 1
S_REFERRAL_COUNT = 2
S_REFERRAL = 3
S_CARE = 4
S_THERAPIST = 5

# Draw numbers within one referral's stream (fixed, so each attribute keeps its
# draw whatever else changes).
R_ARRIVAL = 0
R_SCREEN = 1
R_AGE = 2
R_FEMALE = 3
R_PRIOR_CARE = 4
R_LENGTH = 5
R_NONCOMPLETION = 6
R_REASON = 7

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12.0

EV_LEAVE = 0
EV_FILL = 1

ST_WAITING = 0
ST_STARTED = 1
ST_LOST_WAIT = 2
ST_LOST_CARE = 3
ST_LOST_SERVICE_END = 4
ST_REJECTED = 5

# Per-path totals the reconciliation checks compare (kernels.path_totals).
T_CHILD_DAYS = 0          # child days summed over calendar quarters
T_CARE_TREATED = 1        # treated care days summed over calendar quarters
T_CARE_COUNTERFACTUAL = 2 # counterfactual care days summed over calendar quarters
T_QSR_CHILD_DAYS = 3      # child days summed over tracking quarters
T_CASH_IMBALANCE = 4      # largest |cash in - cash out - change in balance| of a quarter
T_CARE_OVER_CHILD = 5     # largest care days - child days of a tracking quarter
N_T = 6

# How a path's IRR was found (the O_IRR_RULE output; simulator.irr).
IRR_UNIQUE = 0        # the NPV has exactly one root on the searched range: that root
IRR_NEAREST = 1       # several roots: the one nearest the rate implied by the multiple
IRR_NOTHING_BACK = 2  # capital drawn, nothing returned: -100%
IRR_MODIFIED = 3      # no root on the searched range: the modified IRR
IRR_NO_CAPITAL = 4    # nothing drawn: undefined
IRR_RULES = ("unique", "nearest_root", "nothing_back", "modified", "no_capital")


# What each invariant's excess measures (pounds above zero are a breach), in the order
# of the kernel's columns.
INVARIANTS = (
    "capital called in or after the wind-up quarter",
    "outcome payments after wind-up",
    "costs charged after wind-up",
    "cash distributed after wind-up",
    "cash left in the SPV at wind-up",
    "a negative call or distribution",
    "cash distributed beyond the cash in hand",
    "costs paid beyond the costs due",
    "cash distributed before the distribution start",
    "the reserve distributed before wind-up",
    "capital drawn beyond the commitment",
    "a call beyond what the quarter's rule allows",
    "distributions = capital drawn + outcome payments - costs paid, over the bond",
)


class ScenarioArrays(NamedTuple):
    """The arrays every path of a scenario reads (engine.layout makes them)."""
    config: np.ndarray          # (N_CONFIG,) the C_* values
    team_start: np.ndarray      # (teams,) the day each team starts, before any start delay
    team_size: np.ndarray       # (teams,) therapist posts (int64)
    team_weight: np.ndarray     # (teams,) each team's multiple of the referral rate
    reason_cdf: np.ndarray      # cumulative shares of the rejection reasons (empty: none)
    calendar_edges: np.ndarray  # (calendar quarters + 1,) whole days from the contract start
    day_quarter: np.ndarray     # the calendar quarter of each whole day (int16)
    baseline: np.ndarray        # the baseline care proportion by tracking quarter
    event_months: np.ndarray    # outcome events: months after referral they are assessed
    event_prices: np.ndarray    # ... and what the contract pays for each
    call_schedule: np.ndarray   # (calendar quarters,) capital the drawdown schedule draws


class Outputs(NamedTuple):
    """What the kernels write, a row a path (one path's rows: the same, a row each)."""
    out: np.ndarray             # (paths, N_OUT) per-path figures, O_*
    qsr: np.ndarray             # (paths, quarters since tracking start, N_Q)
    cal: np.ndarray             # (paths, calendar quarters, N_K), a quarter's rows
                                # together in memory (engine.new_outputs)
    reasons: np.ndarray         # (paths, rejection reasons) rejected referrals by reason
    totals: np.ndarray          # (paths, N_T) the reconciliation checks' totals
    kept: np.ndarray            # (paths, kept width) the contract's inputs, kept to run the
                                # contract alone under other terms (width 0: not kept)


# The configuration and parameters that only the contract and the waterfall read
# (kernels/contract.py, and the invariants that check it): scenarios that differ in
# these alone have the same service and care, path by path (recontract).
CONTRACT_ONLY_CONFIG = (C_PRICE_PER_DAY, C_PAYMENT_LAG, C_CLAWBACK, C_CAP, C_LAST_PAYMENT_Q,
                        C_HAS_FINANCE, C_COMMITMENT, C_RESERVE, C_TRANCHE,
                        C_DISTRIBUTION_FROM_Q, C_INVESTOR_SHARE, C_DISCOUNT_RATE,
                        C_WIND_UP_Q, C_DISCOUNT_RATE_QUARTER)
CONTRACT_ONLY_PARAMS = (P_CARE_COST_PER_DAY, P_COST_TEAM_QUARTER, P_COST_PER_CASE,
                        P_COST_FLEX_FUND, P_COST_SET_UP, P_COST_LICENCE_YEAR,
                        P_COST_MANAGEMENT_QUARTER, P_COST_INFLATION)


def kept_width(arrays: ScenarioArrays) -> int:
    """Elements a path keeps of the contract's inputs (Outputs.kept): its care days by
    tracking cohort (N_CO, band, cohorts), outcome events (2, calendar quarters, events)
    and team starts (teams), in that order; 0 without a contract."""
    cfg = arrays.config
    if cfg[C_HAS_CONTRACT] < 0.5:
        return 0
    n_cal = arrays.calendar_edges.shape[0] - 1
    band = min(int(cfg[C_COHORT_QUARTERS]), n_cal)
    return (N_CO * band * int(cfg[C_COHORTS]) + 2 * n_cal * arrays.event_months.shape[0]
            + arrays.team_start.shape[0])


def _names(prefix: str) -> list[str]:
    """Column names from the index constants, e.g. O_CARE_DAYS_TREATED ->
    care_days_treated."""
    pairs = [(v, k[len(prefix):].lower()) for k, v in globals().items()
             if k.startswith(prefix) and not k.startswith("N_") and isinstance(v, int)]
    pairs.sort()
    assert [v for v, _ in pairs] == list(range(len(pairs))), prefix
    return [n for _, n in pairs]


# The column names of the output arrays, in order (O_CARE_DAYS_TREATED -> care_days_treated).
OUTPUT_COLUMNS = _names("O_")
QUARTER_SINCE_TRACKING_COLUMNS = _names("Q_")
CALENDAR_QUARTER_COLUMNS = _names("K_")
