"""TODO docstring."""
import math

import numpy as np
from numba import njit

from ..layout import (
    C_CAP,
    C_CLAWBACK,
    C_COMMITMENT,
    C_DISCOUNT_RATE,
    C_DISCOUNT_RATE_QUARTER,
    C_DISTRIBUTION_FROM_Q,
    C_HAS_FINANCE,
    C_INVESTOR_SHARE,
    C_LAST_PAYMENT_Q,
    C_PAYMENT_LAG,
    C_PRICE_PER_DAY,
    C_RESERVE,
    C_SERVICE_END,
    C_TRANCHE,
    C_WIND_UP_Q,
    CO_BASELINE,
    CO_COUNTERFACTUAL,
    CO_TREATED,
    DAYS_PER_YEAR,
    K_BASELINE_CARE_DAYS,
    K_CAPITAL_CALLS,
    K_CARE_COUNTERFACTUAL,
    K_CARE_TREATED,
    K_COSTS_PAID,
    K_COSTS_UNFUNDED,
    K_DISTRIBUTIONS_INVESTORS,
    K_DISTRIBUTIONS_PROVIDER,
    K_NO_EFFECT_PAYMENTS,
    K_OUTCOME_EVENTS,
    K_OUTCOME_PAYMENTS,
    K_SERVICE_COSTS,
    K_SPV_BALANCE,
    K_STARTED,
    K_TEAM_DAYS,
    O_BASELINE_CARE_DAYS,
    O_CAP_REACHED,
    O_CAPITAL_DRAWN,
    O_CARE_COSTS_AVOIDED,
    O_COSTS_UNFUNDED,
    O_DEADWEIGHT_SHARE,
    O_DISTRIBUTIONS_INVESTORS,
    O_DISTRIBUTIONS_PROVIDER,
    O_IDLE_CASH,
    O_IRR,
    O_IRR_RULE,
    O_LOSS,
    O_MOIC_DRAWN,
    O_MULTIPLE,
    O_NET_SAVING,
    O_NO_EFFECT_PAYMENTS,
    O_OUTCOME_PAYMENTS,
    O_PAYMENTS_PV,
    O_PEAK_CAPITAL_AT_RISK,
    O_SERVICE_COSTS,
    O_UNDRAWN_COMMITMENT,
    P_CARE_COST_PER_DAY,
    P_COST_FLEX_FUND,
    P_COST_INFLATION,
    P_COST_LICENCE_YEAR,
    P_COST_MANAGEMENT_QUARTER,
    P_COST_PER_CASE,
    P_COST_SET_UP,
    P_COST_TEAM_QUARTER,
)
from . import irr
from . import waterfall as W
from .binning import add_interval, cohort_totals
from .cache import FASTMATH
from .vector import batch_exp


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def compounded(rate, edges, out):
    """(1 + rate) ** (years from the contract start to the middle of quarter k), for each
    quarter k (from 1 before the start): batch_exp of a multiple of log1p(rate), in a loop
    that vectorises, rather than a pow call a quarter for the costs and another for the
    present value."""
    growth = math.log1p(rate)
    for k in range(out.shape[0]):
        mid = 0.5 * (edges[k] + edges[k + 1])
        out[k] = batch_exp(growth * (max(mid, 0.0) / DAYS_PER_YEAR))


# Rows of contract_and_finance's work array by_quarter (one a calendar quarter each).
BQ_TREATED = 0
BQ_BASELINE = 1
BQ_COUNTERFACTUAL = 2
BQ_PAYMENTS = 3
BQ_NO_EFFECT_PAYMENTS = 4
BQ_COSTS = 5
BQ_GROWTH = 6
BQ_FLOWS = 7
N_BQ = 8


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def contract_and_finance(prm, cfg, team_start, edges, cohort_days, event_counts,
                          event_prices, call_schedule, out, cal_out, by_quarter, lines,
                          payment_work):
    """Outcome payments (and what they would have been had the service had no effect),
    service costs and the SPV waterfall for one path. Work arrays (the caller's):
    by_quarter (N_BQ, quarters), lines (quarters, W.N_LINES), payment_work
    (W.payment_work_size)."""
    n_cal = edges.shape[0] - 1
    by_quarter[:] = 0.0
    cohort_totals(cohort_days[CO_TREATED], by_quarter[BQ_TREATED])
    cohort_totals(cohort_days[CO_BASELINE], by_quarter[BQ_BASELINE])
    cohort_totals(cohort_days[CO_COUNTERFACTUAL], by_quarter[BQ_COUNTERFACTUAL])
    n_events = event_counts.shape[2]
    for k in range(n_cal):
        cal_out[k, K_CARE_TREATED] = by_quarter[BQ_TREATED, k]
        cal_out[k, K_BASELINE_CARE_DAYS] = by_quarter[BQ_BASELINE, k]
        cal_out[k, K_CARE_COUNTERFACTUAL] = by_quarter[BQ_COUNTERFACTUAL, k]
        events = 0.0
        for e in range(n_events):   # (a loop: numba's sum of a row is a call)
            events += event_counts[0, k, e]
        cal_out[k, K_OUTCOME_EVENTS] = events
    treated = cal_out[:, K_CARE_TREATED].sum()
    baseline = cal_out[:, K_BASELINE_CARE_DAYS].sum()
    counterfactual = cal_out[:, K_CARE_COUNTERFACTUAL].sum()
    out[O_BASELINE_CARE_DAYS] = baseline
    payments = by_quarter[BQ_PAYMENTS]
    capped = _payments(cfg, cohort_days[CO_BASELINE], cohort_days[CO_TREATED], event_counts[0],
                       event_prices, payments, payment_work)
    no_effect = by_quarter[BQ_NO_EFFECT_PAYMENTS]
    _payments(cfg, cohort_days[CO_BASELINE], cohort_days[CO_COUNTERFACTUAL], event_counts[1],
              event_prices, no_effect, payment_work)
    service_end = cfg[C_SERVICE_END]
    for k in range(team_start.shape[0]):
        add_interval(team_start[k], service_end, edges, cal_out, K_TEAM_DAYS, 1.0)
    costs = by_quarter[BQ_COSTS]
    growth = by_quarter[BQ_GROWTH]
    compounded(prm[P_COST_INFLATION], edges, growth)
    W.quarterly_costs(cal_out[:, K_TEAM_DAYS], cal_out[:, K_STARTED],
                      prm[P_COST_TEAM_QUARTER], prm[P_COST_PER_CASE], prm[P_COST_FLEX_FUND],
                      prm[P_COST_SET_UP], prm[P_COST_LICENCE_YEAR],
                      prm[P_COST_MANAGEMENT_QUARTER], growth, int(cfg[C_WIND_UP_Q]), costs)
    compounded(cfg[C_DISCOUNT_RATE], edges, growth)
    total_paid = 0.0
    total_no_effect = 0.0
    pv = 0.0
    for k in range(n_cal):
        cal_out[k, K_OUTCOME_PAYMENTS] = payments[k]
        cal_out[k, K_NO_EFFECT_PAYMENTS] = no_effect[k]
        cal_out[k, K_SERVICE_COSTS] = costs[k]
        total_paid += payments[k]
        total_no_effect += no_effect[k]
        pv += payments[k] / growth[k]
    out[O_OUTCOME_PAYMENTS] = total_paid
    out[O_NO_EFFECT_PAYMENTS] = total_no_effect
    out[O_DEADWEIGHT_SHARE] = (min(max(total_no_effect, 0.0), total_paid) / total_paid
                               if total_paid > 0.0 else 0.0)
    out[O_PAYMENTS_PV] = pv
    out[O_CAP_REACHED] = 1.0 if capped else 0.0
    out[O_SERVICE_COSTS] = costs.sum()
    avoided = (counterfactual - treated) * prm[P_CARE_COST_PER_DAY]
    out[O_CARE_COSTS_AVOIDED] = avoided
    out[O_NET_SAVING] = avoided - total_paid
    if cfg[C_HAS_FINANCE] < 0.5:
        for o in (O_COSTS_UNFUNDED, O_CAPITAL_DRAWN, O_DISTRIBUTIONS_INVESTORS,
                  O_DISTRIBUTIONS_PROVIDER, O_MULTIPLE, O_MOIC_DRAWN, O_IRR, O_IRR_RULE,
                  O_PEAK_CAPITAL_AT_RISK, O_LOSS, O_UNDRAWN_COMMITMENT, O_IDLE_CASH):
            out[o] = np.nan
        return
    _finance(cfg, payments, costs, call_schedule, out, cal_out, lines, by_quarter[BQ_FLOWS])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _payments(cfg, baseline_cq, care_cq, event_counts, event_prices, payments, work):
    """The contract's payments by quarter on these care days; True if the cap was reached."""
    return W.cohort_payments_into(baseline_cq, care_cq, event_counts, event_prices,
                                  cfg[C_PRICE_PER_DAY], int(cfg[C_PAYMENT_LAG]),
                                  cfg[C_CLAWBACK] > 0.5, cfg[C_CAP], int(cfg[C_LAST_PAYMENT_Q]),
                                  payments, work)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _finance(cfg, payments, costs, call_schedule, out, cal_out, lines, flows):
    """The SPV waterfall and the investors' figures for one path (flows: a work row)."""
    n_cal = payments.shape[0]
    wind_up = int(cfg[C_WIND_UP_Q])
    lines[:] = 0.0
    commitment = cfg[C_COMMITMENT]
    drawn = W.spv_cash_flows(payments, costs, call_schedule, commitment, cfg[C_RESERVE],
                             cfg[C_TRANCHE], int(cfg[C_DISTRIBUTION_FROM_Q]), wind_up,
                             cfg[C_INVESTOR_SHARE], lines)
    at_risk = 0.0
    peak = 0.0
    idle = 0.0
    for k in range(n_cal):
        cal_out[k, K_COSTS_PAID] = lines[k, W.L_COSTS_PAID]
        cal_out[k, K_COSTS_UNFUNDED] = lines[k, W.L_SHORTFALL]
        cal_out[k, K_CAPITAL_CALLS] = lines[k, W.L_CAPITAL_CALLS]
        cal_out[k, K_DISTRIBUTIONS_INVESTORS] = lines[k, W.L_DIST_INVESTORS]
        cal_out[k, K_DISTRIBUTIONS_PROVIDER] = lines[k, W.L_DIST_PROVIDER]
        cal_out[k, K_SPV_BALANCE] = lines[k, W.L_BALANCE]
        flows[k] = lines[k, W.L_DIST_INVESTORS] - lines[k, W.L_CAPITAL_CALLS]
        at_risk -= flows[k]
        peak = max(peak, at_risk)
        if k < wind_up:
            idle += lines[k, W.L_BALANCE]
    to_investors = lines[:, W.L_DIST_INVESTORS].sum()
    out[O_COSTS_UNFUNDED] = lines[:, W.L_SHORTFALL].sum()
    out[O_CAPITAL_DRAWN] = drawn
    out[O_UNDRAWN_COMMITMENT] = commitment - drawn
    out[O_IDLE_CASH] = idle / wind_up if wind_up > 0 else 0.0
    out[O_DISTRIBUTIONS_INVESTORS] = to_investors
    out[O_DISTRIBUTIONS_PROVIDER] = lines[:, W.L_DIST_PROVIDER].sum()
    # what the commitment became: distributions plus the commitment never drawn (kept by
    # the investors), so capital drawn and handed back unused is no gain
    out[O_MULTIPLE] = (to_investors + commitment - drawn) / commitment
    out[O_MOIC_DRAWN] = to_investors / drawn if drawn > 0.0 else np.nan
    q, rule = irr.path_irr(flows, cfg[C_DISCOUNT_RATE_QUARTER])
    out[O_IRR] = irr.annualise(q)
    out[O_IRR_RULE] = rule
    out[O_PEAK_CAPITAL_AT_RISK] = peak
    out[O_LOSS] = 1.0 if to_investors < drawn - 0.005 else 0.0
