"""The contract of one path: outcome payments, no-effect payments, service costs and
the contract's figures, then the SPV waterfall and the investors' figures."""
import math

import numpy as np

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
from .cache import path_helper, path_kernel
from .vector import batch_exp
from .waterfall import PaymentTerms


@path_kernel
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


@path_kernel
def contract_and_finance(prm, scenario, team_start, binning, money, rows):
    """Outcome payments (and what they would have been had the service had no effect),
    service costs and the SPV waterfall for one path, from its care days by tracking
    cohort and outcome events (binning, settled); ``money``: the work arrays."""
    cfg = scenario.config
    by_quarter = money.by_quarter
    by_quarter[:] = 0.0
    _care_days_by_quarter(binning, by_quarter, rows)
    payments = by_quarter[BQ_PAYMENTS]
    no_effect = by_quarter[BQ_NO_EFFECT_PAYMENTS]
    terms = PaymentTerms(cfg[C_PRICE_PER_DAY], int(cfg[C_PAYMENT_LAG]), cfg[C_CLAWBACK] > 0.5,
                         cfg[C_CAP], int(cfg[C_LAST_PAYMENT_Q]))
    days, events, prices = binning.cohort_days, binning.event_counts, scenario.event_prices
    capped = W.cohort_payments_into(days[CO_BASELINE], days[CO_TREATED], events[0], prices,
                                    terms, payments, money.payment_work)
    W.cohort_payments_into(days[CO_BASELINE], days[CO_COUNTERFACTUAL], events[1], prices,
                           terms, no_effect, money.payment_work)
    costs = by_quarter[BQ_COSTS]
    _costs(prm, scenario, team_start, rows.cal, by_quarter)
    _contract_figures(prm, cfg, by_quarter, capped, rows)
    if cfg[C_HAS_FINANCE] < 0.5:
        for o in (O_COSTS_UNFUNDED, O_CAPITAL_DRAWN, O_DISTRIBUTIONS_INVESTORS,
                  O_DISTRIBUTIONS_PROVIDER, O_MULTIPLE, O_MOIC_DRAWN, O_IRR, O_IRR_RULE,
                  O_PEAK_CAPITAL_AT_RISK, O_LOSS, O_UNDRAWN_COMMITMENT, O_IDLE_CASH):
            rows.out[o] = np.nan
        return
    _finance(cfg, payments, costs, scenario.call_schedule, rows, money.lines,
             by_quarter[BQ_FLOWS])


@path_helper
def _care_days_by_quarter(binning, by_quarter, rows):
    """Treated, baseline and counterfactual care days and outcome events by calendar
    quarter, summed over the cohorts, into by_quarter and the path's calendar rows."""
    cal_out = rows.cal
    days = binning.cohort_days
    cohort_totals(days[CO_TREATED], by_quarter[BQ_TREATED])
    cohort_totals(days[CO_BASELINE], by_quarter[BQ_BASELINE])
    cohort_totals(days[CO_COUNTERFACTUAL], by_quarter[BQ_COUNTERFACTUAL])
    event_counts = binning.event_counts
    for k in range(cal_out.shape[0]):
        cal_out[k, K_CARE_TREATED] = by_quarter[BQ_TREATED, k]
        cal_out[k, K_BASELINE_CARE_DAYS] = by_quarter[BQ_BASELINE, k]
        cal_out[k, K_CARE_COUNTERFACTUAL] = by_quarter[BQ_COUNTERFACTUAL, k]
        events = 0.0
        for e in range(event_counts.shape[2]):   # (a loop: numba's sum of a row is a call)
            events += event_counts[0, k, e]
        cal_out[k, K_OUTCOME_EVENTS] = events


@path_helper
def _costs(prm, scenario, team_start, cal_out, by_quarter):
    """Team days by calendar quarter (into the path's rows) and the service's costs
    (into by_quarter's costs row; its growth row left at the discount factors)."""
    cfg = scenario.config
    edges = scenario.calendar_edges
    service_end = cfg[C_SERVICE_END]
    for k in range(team_start.shape[0]):
        add_interval(team_start[k], service_end, edges, cal_out, np.int64(K_TEAM_DAYS), 1.0)
    growth = by_quarter[BQ_GROWTH]
    compounded(prm[P_COST_INFLATION], edges, growth)
    rates = W.CostRates(prm[P_COST_TEAM_QUARTER], prm[P_COST_PER_CASE], prm[P_COST_FLEX_FUND],
                        prm[P_COST_SET_UP], prm[P_COST_LICENCE_YEAR],
                        prm[P_COST_MANAGEMENT_QUARTER])
    W.quarterly_costs(cal_out[:, K_TEAM_DAYS], cal_out[:, K_STARTED], rates, growth,
                      int(cfg[C_WIND_UP_Q]), by_quarter[BQ_COSTS])
    compounded(cfg[C_DISCOUNT_RATE], edges, growth)


@path_helper
def _contract_figures(prm, cfg, by_quarter, capped, rows):
    """The path's payments, no-effect payments and costs by quarter, and the contract's
    figures: totals, the deadweight share, present value, cap, net saving."""
    cal_out, out = rows.cal, rows.out
    payments = by_quarter[BQ_PAYMENTS]
    no_effect = by_quarter[BQ_NO_EFFECT_PAYMENTS]
    costs = by_quarter[BQ_COSTS]
    growth = by_quarter[BQ_GROWTH]
    treated = cal_out[:, K_CARE_TREATED].sum()
    baseline = cal_out[:, K_BASELINE_CARE_DAYS].sum()
    counterfactual = cal_out[:, K_CARE_COUNTERFACTUAL].sum()
    out[O_BASELINE_CARE_DAYS] = baseline
    total_paid = 0.0
    total_no_effect = 0.0
    pv = 0.0
    for k in range(cal_out.shape[0]):
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


@path_kernel
def _finance(cfg, payments, costs, call_schedule, rows, lines, flows):
    """The SPV waterfall and the investors' figures for one path (flows: a work row)."""
    out, cal_out = rows.out, rows.cal
    n_cal = payments.shape[0]
    wind_up = int(cfg[C_WIND_UP_Q])
    lines[:] = 0.0
    commitment = cfg[C_COMMITMENT]
    terms = W.FinanceTerms(commitment, cfg[C_RESERVE], cfg[C_TRANCHE],
                           int(cfg[C_DISTRIBUTION_FROM_Q]), wind_up, cfg[C_INVESTOR_SHARE])
    drawn = W.spv_cash_flows(payments, costs, call_schedule, terms, lines)
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
