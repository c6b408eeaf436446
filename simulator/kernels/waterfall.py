"""The outcomes contract and the SPV cash-flow waterfall: numba kernels per path.

Quarterly, in calendar quarters (index k):

* ``cohort_payments``: each cohort (young people whose tracking starts in the
  same calendar quarter) accumulates care days saved against the contract's
  baseline; at each quarter-end assessment the cohort is owed
  ``price * cumulative days saved`` (cumulative true-up), less what it has
  been paid; without claw-back what it has been paid never goes down. Binary
  outcome events add ``price * count``. The quarter's total is paid
  ``lag`` quarters later, never after the last payment quarter, and never
  beyond the cap on total payments.
* ``spv_cash_flows``: the SPV receives payments and pays service costs; when
  cash would fall below the reserve target it calls capital (exactly, or in
  whole tranches), and on a drawdown schedule draws each dated amount whether
  or not it is short, always within the commitment; a cost it still cannot pay
  is a shortfall. From the distribution start it distributes cash above the
  reserve in quarters that called nothing (investors' drawn capital first, then
  the surplus split between investors and provider) and calls capital only to
  pay costs, no longer to restore the reserve. The wind-up quarter (the
  later of the last payment's and the service end's) releases the reserve and
  distributes everything; from it on nothing is called, so the quarter before
  it holds at least what the wind-up quarter's costs exceed its payments by.

The investors' internal rate of return is :mod:`simulator.irr`'s.

Every line is in pounds; the conservation identity
``calls + payments = costs paid + distributions + change in balance`` holds by
construction each quarter and is checked in :mod:`simulator.engine`.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .cache import FASTMATH, INNER, path_kernel


class PaymentTerms(NamedTuple):
    """The outcomes contract's terms of payment."""
    price: float          # pounds a care day saved
    lag: int              # quarters from an assessment to its payment
    clawback: bool        # whether a cohort's fall in days saved is paid back
    cap: float            # on total payments (< 0: no cap)
    last_q: int           # the calendar quarter of the last payment


class FinanceTerms(NamedTuple):
    """The SPV's terms of finance."""
    commitment: float     # the investors' commitment
    reserve: float        # the cash the SPV keeps
    tranche: float        # > 0: capital is called in whole tranches
    dist_from_q: int      # the first quarter that distributes
    wind_up_q: int        # the SPV's last quarter: nothing is called from it on
    investor_share: float  # of the surplus once drawn capital is returned


class CostRates(NamedTuple):
    """What the service costs, in pounds at the contract start."""
    team_quarter: float   # a team, a quarter
    per_case: float       # a case started
    flex_fund: float      # flexible fund a case started
    set_up: float         # in the first quarter
    licence_year: float   # the programme licence, a team a year
    management_quarter: float  # the SPV's management fee, a quarter

# Lines of the SPV cash-flow table (columns of ``lines``).
L_PAYMENTS = 0
L_COSTS_DUE = 1
L_COSTS_PAID = 2
L_SHORTFALL = 3
L_CAPITAL_CALLS = 4
L_DIST_INVESTORS = 5
L_DIST_PROVIDER = 6
L_BALANCE = 7
N_LINES = 8


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def cohort_payments(baseline_days, care_days, event_counts, event_prices, terms, payments):
    """Outcome payments by calendar quarter; returns True if the cap was reached.

    baseline_days, care_days: (band, cohorts) days of cohort c in calendar quarter
    c + j at [j, c] (a cohort's days fall in the ``band`` quarters from its own);
    event_counts: (quarters, events) outcome events assessed in each quarter, paid
    event_prices each; ``terms``: PaymentTerms; ``payments`` (quarters,) is overwritten.
    """
    band, n_c = baseline_days.shape
    work = np.empty(payment_work_size(band, n_c, payments.shape[0]))
    return cohort_payments_into(baseline_days, care_days, event_counts, event_prices, terms,
                                payments, work)


@path_kernel
def payment_work_size(band, n_cohorts, n_quarters):
    """The length of cohort_payments_into's work array."""
    return (band + 2) * n_cohorts + n_quarters


@path_kernel
def cohort_payments_into(baseline_days, care_days, event_counts, event_prices, terms, payments,
                         work):
    """cohort_payments with the caller's work array (payment_work_size long, overwritten):
    a path's kernels allocate nothing."""
    price, lag, clawback, cap, last_q = terms
    n_q = payments.shape[0]
    band, n_c = baseline_days.shape
    # Each cohort's true-up at its quarters' assessments, an offset j at a time over all
    # the cohorts (a loop that vectorises): cumulative days saved, what is due, and what
    # that adds to what the cohort is owed in quarter c + j.
    work[:] = 0.0
    cum_saved = work[:n_c]
    paid = work[n_c:2 * n_c]
    added = work[2 * n_c:(band + 2) * n_c].reshape((band, n_c))
    for j in range(band):
        for c in range(min(n_c, n_q - j)):
            cum_saved[c] += baseline_days[j, c] - care_days[j, c]
            due = price * cum_saved[c]
            if not clawback:
                due = max(due, paid[c])
            added[j, c] = due - paid[c]
            paid[c] = due
    owed = work[(band + 2) * n_c:]
    for j in range(band - 1, -1, -1):   # each quarter's cohorts added in cohort order
        for c in range(min(n_c, n_q - j)):
            owed[c + j] += added[j, c]
    total_paid = 0.0
    cap_reached = False
    payments[:] = 0.0
    for k in range(n_q):
        for e in range(event_prices.shape[0]):
            owed[k] += event_prices[e] * event_counts[k, e]
        q = k + lag
        if q >= n_q or q > last_q:
            continue
        o = owed[k]
        if cap >= 0.0 and total_paid + o >= cap:
            o = cap - total_paid
            cap_reached = True
        payments[q] += o
        total_paid += o
    return cap_reached


@path_kernel
def reserve_target(payments, costs, reserve, k, wind_up_q):
    """The cash the SPV keeps at the end of quarter k: the reserve, and in the quarter
    before wind-up at least what the wind-up quarter's costs exceed its payments by
    (nothing can be called then); nothing from wind-up on, when the reserve is released."""
    if k >= wind_up_q:
        return 0.0
    if k == wind_up_q - 1 and wind_up_q < payments.shape[0]:
        return max(reserve, costs[wind_up_q] - payments[wind_up_q])
    return reserve


@path_kernel
def spv_cash_flows(payments, costs, scheduled, terms, lines):
    """Fill ``lines`` (quarters, N_LINES); returns capital drawn.

    ``scheduled[k]``: capital the drawdown schedule draws in quarter k (zeros without
    one); ``terms``: FinanceTerms. Nothing is called from the wind-up quarter on.
    """
    commitment, reserve, tranche, dist_from_q, wind_up_q, investor_share = terms
    n_q = payments.shape[0]
    balance = 0.0
    drawn = 0.0
    returned = 0.0
    for k in range(n_q):
        cash = balance + payments[k] - costs[k]
        target = reserve_target(payments, costs, reserve, k, wind_up_q)
        call = 0.0
        if k < wind_up_q and drawn < commitment:
            # from the distribution start capital is called only to pay costs: a reserve
            # topped up by the investors being paid back would hand their money to and fro
            floor = target if k < dist_from_q else reserve_target(payments, costs, 0.0, k,
                                                                   wind_up_q)
            need = max(floor - cash, 0.0)
            if tranche > 0.0 and need > 0.0:
                need = math.ceil(need / tranche - 1e-12) * tranche
            call = min(max(need, scheduled[k]), commitment - drawn)
            drawn += call
            cash += call
        shortfall = 0.0
        if cash < 0.0:
            shortfall = -cash
            cash = 0.0
        to_investors = 0.0
        to_provider = 0.0
        # cash above the target goes out from the distribution start (not in a quarter
        # that called capital: what it called, it needed), and all of it at wind-up
        if (k >= dist_from_q and call == 0.0) or k >= wind_up_q:
            available = max(cash - target, 0.0)
            back = min(available, drawn - returned)
            returned += back
            surplus = available - back
            to_investors = back + investor_share * surplus
            to_provider = surplus - investor_share * surplus
            cash -= available
        balance = cash
        lines[k, L_PAYMENTS] = payments[k]
        lines[k, L_COSTS_DUE] = costs[k]
        lines[k, L_COSTS_PAID] = costs[k] - shortfall
        lines[k, L_SHORTFALL] = shortfall
        lines[k, L_CAPITAL_CALLS] = call
        lines[k, L_DIST_INVESTORS] = to_investors
        lines[k, L_DIST_PROVIDER] = to_provider
        lines[k, L_BALANCE] = balance
    return drawn


QUARTER_DAYS = 365.25 / 4.0


@path_kernel
def quarterly_costs(team_days, starts, rates, inflated, final_q, costs):
    """Service costs by calendar quarter (pounds, inflated from the contract start).

    team_days[k]: days of team activity in quarter k, summed over teams (pro rata
    team and licence costs); starts[k]: cases started (per-case cost and flexible
    fund); set-up in the first quarter; the management fee every quarter to final_q, the
    SPV's last (the later of the last payment's and the service end's); inflated[k]: the
    price level in quarter k (1 at the contract start); ``rates``: CostRates.
    """
    per_team_quarter, per_case, flex_fund, set_up, licence_year, management_quarter = rates
    for k in range(costs.shape[0]):
        c = (per_team_quarter * team_days[k] / QUARTER_DAYS
             + licence_year * team_days[k] / 365.25
             + (per_case + flex_fund) * starts[k])
        if k <= final_q:
            c += management_quarter
        if k == 0:
            c += set_up
        costs[k] = c * inflated[k]
