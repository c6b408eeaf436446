"""The outcomes contract and SPV waterfall kernels against hand-worked examples, and the
waterfall's financial invariants over random contracts (hypothesis)."""
import datetime as dt
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import invariants
from simulator import layout as L
from simulator.kernels import waterfall
from simulator.kernels.calls import kernels_from_python

W = kernels_from_python(waterfall)


def _band(by_quarter):
    """(quarters, cohorts) -> the kernels' band layout: [j, c] is cohort c in quarter c + j."""
    n_q, n_c = by_quarter.shape
    band = np.zeros((n_q, n_c))
    for c in range(n_c):
        band[:n_q - c, c] = by_quarter[c:, c]
    return band


def test_worked_example_three_cohorts_twelve_quarters():
    # Price £100 per care day saved, payment lag 1 quarter, cumulative true-up per
    # cohort without claw-back, cap £9,000. Days saved (baseline - care) per quarter:
    #
    #   quarter k      0     1     2     3     4     5    6..11
    #   cohort A      10    20   -15     5     0     0     0
    #   cohort B       -    30    10   -50    40     0     0
    #   cohort C       -     -     5     5     5     5     0
    #
    # Cohort A cumulative: 10, 30, 15, 20, 20 ...  paid-to max: 10, 30, 30, 30, 30
    #   owed per quarter (x £100): 10, 20, 0, 0, 0
    # Cohort B cumulative: 0, 30, 40, -10, 30 ... running max: 0, 30, 40, 40, 40
    #   owed: 0, 30, 10, 0, 0
    # Cohort C cumulative: 0, 0, 5, 10, 15, 20 -> owed 0, 0, 5, 5, 5, 5
    # Total owed at assessment k (x £100): 10, 50, 15, 5, 5, 5, 0 ...
    #   = £1,000, £5,000, £1,500, £500, £500, £500
    # Paid one quarter later, cumulative: q1 1,000; q2 6,000; q3 7,500; q4 8,000;
    # q5 8,500; q6 9,000 = cap (reached exactly at q6, so the last £500 is paid).
    saved = np.zeros((12, 3))
    saved[:6, 0] = [10, 20, -15, 5, 0, 0]
    saved[:6, 1] = [0, 30, 10, -50, 40, 0]
    saved[:6, 2] = [0, 0, 5, 5, 5, 5]
    baseline = _band(np.full((12, 3), 100.0))
    care = baseline - _band(saved)
    payments = np.empty(12)
    capped = W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0),
                      W.PaymentTerms(100.0, 1, False, 9000.0, 11), payments)
    expected = [0, 1000, 5000, 1500, 500, 500, 500, 0, 0, 0, 0, 0]
    assert payments.tolist() == pytest.approx(expected, abs=0.005)
    assert capped
    # A band just wide enough for every cohort's days (6 quarters) pays the same, to the
    # penny and bit for bit: the cohorts outside a quarter's band owe nothing new in it.
    narrow = np.empty(12)
    W.cohort_payments(baseline[:6].copy(), care[:6].copy(), np.zeros((12, 0)), np.zeros(0),
                      W.PaymentTerms(100.0, 1, False, 9000.0, 11), narrow)
    assert narrow.tolist() == payments.tolist()
    # A lower cap (£7,000) truncates the q3 payment to £1,000 and stops later ones.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0),
                      W.PaymentTerms(100.0, 1, False, 7000.0, 11), payments)
    assert payments.tolist() == pytest.approx([0, 1000, 5000, 1000, 0, 0, 0, 0, 0, 0, 0, 0],
                                              abs=0.005)
    # With claw-back every fall is paid back: owed at k=2 is A -15, B +10, C +5 = 0;
    # at k=3 A +5, B -50, C +5 = -40 -> -£4,000; at k=4 B +40, C +5 -> £4,500; k=5 C £500.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0),
                      W.PaymentTerms(100.0, 1, True, -1.0, 11), payments)
    assert payments[:7].tolist() == pytest.approx([0, 1000, 5000, 0, -4000, 4500, 500], abs=0.005)
    # The last payment quarter cuts off later payments.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0),
                      W.PaymentTerms(100.0, 1, False, -1.0, 3), payments)
    assert payments.tolist() == pytest.approx([0, 1000, 5000, 1500] + [0] * 8, abs=0.005)


def test_outcome_events_are_paid_per_young_person_with_the_lag():
    events = np.zeros((6, 2))
    events[1, 0] = 3      # three young people out of care at the first checkpoint
    events[2, 1] = 2
    zero = np.zeros((6, 1))
    payments = np.empty(6)
    W.cohort_payments(zero, zero, events, np.array([1000.0, 2500.0]),
                      W.PaymentTerms(0.0, 2, False, -1.0, 5), payments)
    assert payments.tolist() == [0, 0, 0, 3000, 5000, 0]


def _waterfall(payments, costs, commitment, reserve, *, tranche=0.0, schedule=None,
               dist_from=None, wind_up=None, share=1.0):
    """spv_cash_flows on these flows; returns (lines, capital drawn)."""
    n = len(payments)
    schedule = np.zeros(n) if schedule is None else np.asarray(schedule, dtype=float)
    wind_up = n - 1 if wind_up is None else wind_up
    dist_from = wind_up if dist_from is None else dist_from
    lines = np.zeros((n, W.N_LINES))
    terms = W.FinanceTerms(commitment, reserve, tranche, dist_from, wind_up, share)
    drawn = W.spv_cash_flows(np.asarray(payments, float), np.asarray(costs, float), schedule,
                             terms, lines)
    return lines, drawn


def test_spv_waterfall_worked_example():
    # Quarter:        0       1       2       3       4       5 (wind-up)
    # payments        0     100     300     600     600     200
    # costs         400     300     300     100       0       0
    # Reserve 50, commitment 1,000, exact calls, distributions from quarter 3,
    # surplus split 80/20 after capital is returned.
    # q0: cash 0+0-400 = -400 < 50 -> call 450 -> cash 50. balance 50.
    # q1: 50+100-300 = -150 -> call 200 -> 50. drawn 650.
    # q2: 50+300-300 = 50, no call. balance 50.
    # q3: 50+600-100 = 550; distribute above 50: 500 capital back. balance 50.
    # q4: 50+600 = 650; 600 available: 150 capital (650 drawn), 450 surplus:
    #     360 investors, 90 provider -> investors 510. balance 50.
    # q5 (wind-up): 50+200 = 250, all surplus: 200 investors, 50 provider. balance 0.
    payments = [0, 100, 300, 600, 600, 200.0]
    costs = [400, 300, 300, 100, 0, 0.0]
    lines, drawn = _waterfall(payments, costs, 1000.0, 50.0, dist_from=3, share=0.8)
    assert drawn == 650
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [450, 200, 0, 0, 0, 0]
    assert lines[:, W.L_DIST_INVESTORS].tolist() == pytest.approx([0, 0, 0, 500, 510, 200])
    assert lines[:, W.L_DIST_PROVIDER].tolist() == pytest.approx([0, 0, 0, 0, 90, 50])
    assert lines[:, W.L_BALANCE].tolist() == pytest.approx([50, 50, 50, 50, 50, 0])
    # tranches of 300: q0 needs 450 -> 600; q1: 200+100-300 = 0 < 50 -> 300 (drawn 900)
    lines, drawn = _waterfall(payments, costs, 1000.0, 50.0, tranche=300.0, dist_from=3)
    assert lines[:2, W.L_CAPITAL_CALLS].tolist() == [600, 300] and drawn == 900
    # distributing from q0, the 150 that q0's tranche leaves above the reserve stays: what a
    # quarter called, it does not pay back
    lines, drawn = _waterfall(payments, costs, 1000.0, 50.0, tranche=300.0, dist_from=0)
    assert lines[0, W.L_CAPITAL_CALLS] == 600 and lines[0, W.L_DIST_INVESTORS] == 0
    # a commitment too small: the unpaid cost is a shortfall, never an over-draw
    lines, drawn = _waterfall(payments, costs, 500.0, 50.0, dist_from=3, share=0.8)
    assert drawn == 500
    # q1: -150 needs 200 but only 50 is left to call: 100 of costs go unpaid
    assert lines[1, W.L_SHORTFALL] == pytest.approx(100.0)
    _assert_conserved(lines)


def test_nothing_is_called_from_wind_up_on_and_the_reserve_is_released():
    # Payments stop at quarter 2, the wind-up; the calendar runs on four more quarters.
    # The waterfall once topped the reserve up from the investors after wind-up and paid
    # it straight back, quarter after quarter, until the commitment was drawn.
    payments = [0, 500, 500, 0, 0, 0, 0.0]
    costs = [300, 100, 50, 0, 0, 0, 0.0]
    lines, drawn = _waterfall(payments, costs, 10_000.0, 100.0, wind_up=2)
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [400, 0, 0, 0, 0, 0, 0]
    assert drawn == 400
    assert lines[:, W.L_BALANCE].tolist() == pytest.approx([100, 500, 0, 0, 0, 0, 0])
    assert lines[2, W.L_DIST_INVESTORS] == pytest.approx(950)   # 400 back, 550 surplus
    assert not lines[3:].any()


def test_the_quarter_before_wind_up_draws_what_the_wind_up_quarter_will_need():
    # No reserve; costs of 100 a quarter and no payments; wind-up in quarter 3, when
    # nothing can be called: quarter 2 draws its own 100 and quarter 3's.
    lines, drawn = _waterfall([0, 0, 0, 0.0], [100, 100, 100, 100.0], 1000.0, 0.0)
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [100, 100, 200, 0]
    assert lines[:, W.L_SHORTFALL].tolist() == [0, 0, 0, 0] and drawn == 400


def test_a_drawdown_schedule_draws_on_its_dates_and_any_shortfall_early():
    costs = [100, 100, 100, 100, 0, 0.0]
    # draws of 200 in quarters 0 and 2 whether or not the SPV is short that quarter
    lines, drawn = _waterfall([0.0] * 6, costs, 500.0, 0.0, schedule=[200, 0, 200, 0, 0, 0])
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [200, 0, 200, 0, 0, 0] and drawn == 400
    assert lines[:, W.L_BALANCE].tolist() == [100, 0, 100, 0, 0, 0]
    # a schedule too small for the costs: each shortfall is drawn early, and the later
    # scheduled draws are cut to what is left of the commitment
    lines, drawn = _waterfall([0.0] * 6, costs, 350.0, 0.0, schedule=[50, 0, 300, 0, 0, 0])
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [100, 100, 150, 0, 0, 0] and drawn == 350
    assert lines[3, W.L_SHORTFALL] == pytest.approx(50)
    # a draw scheduled in or after the wind-up quarter is never made
    lines, drawn = _waterfall([0.0] * 6, costs, 900.0, 0.0, schedule=[400, 0, 0, 0, 0, 500])
    assert lines[5, W.L_CAPITAL_CALLS] == 0 and drawn == 400


def _assert_conserved(lines):
    prev = np.concatenate([[0.0], lines[:-1, W.L_BALANCE]])
    lhs = lines[:, W.L_CAPITAL_CALLS] + lines[:, W.L_PAYMENTS]
    rhs = (lines[:, W.L_COSTS_PAID] + lines[:, W.L_DIST_INVESTORS] + lines[:, W.L_DIST_PROVIDER]
           + lines[:, W.L_BALANCE] - prev)
    assert np.allclose(lhs, rhs, atol=0.01)


# ---------------------------------------------------------------- invariants, at random
def _as_run(lines, commitment, reserve, tranche, schedule, dist_from, wind_up):
    """One path's lines as the calendar-quarter outputs and layout check_waterfall reads."""
    n = lines.shape[0]
    cal = np.zeros((1, n, L.N_K))
    for k_col, line in ((L.K_OUTCOME_PAYMENTS, W.L_PAYMENTS), (L.K_SERVICE_COSTS, W.L_COSTS_DUE),
                        (L.K_COSTS_PAID, W.L_COSTS_PAID), (L.K_COSTS_UNFUNDED, W.L_SHORTFALL),
                        (L.K_CAPITAL_CALLS, W.L_CAPITAL_CALLS),
                        (L.K_DISTRIBUTIONS_INVESTORS, W.L_DIST_INVESTORS),
                        (L.K_DISTRIBUTIONS_PROVIDER, W.L_DIST_PROVIDER),
                        (L.K_SPV_BALANCE, W.L_BALANCE)):
        cal[0, :, k_col] = lines[:, line]
    cfg = np.zeros(L.N_CONFIG)
    cfg[L.C_HAS_FINANCE] = 1.0
    cfg[L.C_COMMITMENT] = commitment
    cfg[L.C_RESERVE] = reserve
    cfg[L.C_TRANCHE] = tranche
    cfg[L.C_DISTRIBUTION_FROM_Q] = dist_from
    cfg[L.C_WIND_UP_Q] = wind_up
    quarters = [dt.date(2020 + k // 4, 3 * (k % 4) + 1, 1) for k in range(n)]
    return cal, SimpleNamespace(config=cfg, call_schedule=np.asarray(schedule, float),
                                calendar_quarters=quarters)


@st.composite
def contracts(draw):
    """A random SPV: quarters, payments (some clawed back), costs, commitment, reserve,
    call rule, distribution start and wind-up; nothing is paid or charged after wind-up,
    as the engine's contract and costs guarantee."""
    n = draw(st.integers(2, 30))
    wind_up = draw(st.integers(0, n - 1))
    money = st.floats(0, 1000, allow_nan=False, allow_infinity=False)
    payments = np.array(draw(st.lists(money, min_size=n, max_size=n)))
    payments *= np.array(draw(st.lists(st.sampled_from([0.0, 1.0, 1.0, -0.3]), min_size=n,
                                       max_size=n)))
    costs = np.array(draw(st.lists(money, min_size=n, max_size=n)))
    payments[wind_up + 1:] = 0.0
    costs[wind_up + 1:] = 0.0
    rule = draw(st.sampled_from(["exact", "tranche", "schedule"]))
    commitment = draw(st.floats(1, 20_000))
    schedule = np.zeros(n)
    if rule == "schedule":
        shares = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)))
        schedule = commitment * shares / max(shares.sum(), 1.0)
    return dict(payments=payments, costs=costs, commitment=commitment,
                reserve=draw(st.sampled_from([0.0, draw(st.floats(0, 2000))])),
                tranche=draw(st.floats(10, 3000)) if rule == "tranche" else 0.0,
                schedule=schedule, dist_from=draw(st.integers(0, n)), wind_up=wind_up,
                share=draw(st.sampled_from([1.0, draw(st.floats(0, 1))])))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contracts())
def test_random_waterfalls_keep_every_financial_invariant(c):
    lines, drawn = _waterfall(c["payments"], c["costs"], c["commitment"], c["reserve"],
                              tranche=c["tranche"], schedule=c["schedule"],
                              dist_from=c["dist_from"], wind_up=c["wind_up"], share=c["share"])
    invariants.check_waterfall(*_as_run(lines, c["commitment"], c["reserve"], c["tranche"],
                                        c["schedule"], c["dist_from"], c["wind_up"]))
    _assert_conserved(lines)
    w = c["wind_up"]
    calls = lines[:, W.L_CAPITAL_CALLS]
    assert not calls[w:].any()                       # nothing called from wind-up on
    assert not lines[w + 1:].any()                   # nothing moves after it
    assert lines[w, W.L_BALANCE] == 0.0              # the reserve is released
    assert drawn == pytest.approx(calls.sum()) and drawn <= c["commitment"] * (1 + 1e-12)
    out = lines[:, W.L_DIST_INVESTORS] + lines[:, W.L_DIST_PROVIDER]
    assert out.sum() == pytest.approx(drawn + c["payments"].sum()
                                      - lines[:, W.L_COSTS_PAID].sum(), abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(contracts())
def test_exact_calls_draw_the_peak_funding_need_plus_the_reserve_and_no_more(c):
    # Distributing only at wind-up, exact calls draw the running peak of the cumulative
    # need (costs less payments) plus the cash the SPV must hold, within the commitment.
    w = c["wind_up"]
    lines, drawn = _waterfall(c["payments"], c["costs"], c["commitment"], c["reserve"],
                              dist_from=w, wind_up=w)
    need = np.cumsum(c["costs"] - c["payments"])
    hold = np.full(len(need), c["reserve"])
    if w >= 1:   # the quarter before wind-up holds what the wind-up quarter will need
        hold[w - 1] = max(c["reserve"], need[w] - need[w - 1])
    peak = max(0.0, float(np.max((need + hold)[:w], initial=0.0)))
    assert drawn == pytest.approx(min(peak, c["commitment"]), rel=1e-9, abs=1e-6)
    assert drawn <= float(np.max(need[:w + 1], initial=0.0)) + c["reserve"] + 1e-6


@settings(max_examples=300, deadline=None)
@given(contracts(), st.floats(0, 3000))
def test_a_larger_reserve_never_raises_the_multiple_on_committed_capital(c, more):
    # All distributions to investors: what the commitment becomes, (distributions +
    # undrawn) / commitment, is 1 + (payments - costs paid) / commitment, and a reserve
    # (idle cash) can only help pay costs, never add to it.
    def multiple(reserve):
        lines, drawn = _waterfall(c["payments"], c["costs"], c["commitment"], reserve,
                                  dist_from=c["dist_from"], wind_up=c["wind_up"])
        return (lines[:, W.L_DIST_INVESTORS].sum() + c["commitment"] - drawn) / c["commitment"]
    assert multiple(c["reserve"] + more) <= multiple(c["reserve"]) + 1e-9


@pytest.mark.parametrize("defect, message", [
    ("call after wind-up", "capital called in or after the wind-up quarter"),
    ("distribute the reserve early", "the reserve distributed before wind-up"),
    ("over-call", "a call beyond what the quarter's rule allows"),
    ("keep cash at wind-up", "cash left in the SPV at wind-up"),
])
def test_a_broken_waterfall_trips_the_invariants(defect, message):
    payments = np.array([0, 500, 500, 0, 0, 0.0])
    costs = np.array([300, 100, 50, 0, 0, 0.0])
    lines, _ = _waterfall(payments, costs, 5000.0, 100.0, wind_up=2, dist_from=1)
    invariants.check_waterfall(*_as_run(lines, 5000.0, 100.0, 0.0, np.zeros(6), 1, 2))
    broken = lines.copy()
    if defect == "call after wind-up":   # the old waterfall: call the reserve, pay it back
        broken[3, W.L_CAPITAL_CALLS] = broken[3, W.L_DIST_INVESTORS] = 100.0
    elif defect == "distribute the reserve early":
        broken[1, W.L_DIST_INVESTORS] += 60.0
        broken[1, W.L_BALANCE] -= 60.0
        broken[2, W.L_DIST_INVESTORS] -= 60.0
    elif defect == "over-call":
        broken[0, W.L_CAPITAL_CALLS] += 1000.0
        broken[0, W.L_BALANCE] += 1000.0
        broken[1, W.L_DIST_INVESTORS] += 1000.0
    else:
        broken[2, W.L_DIST_INVESTORS] -= 10.0
        broken[2:, W.L_BALANCE] += 10.0
    with pytest.raises(invariants.FinancialInvariantError, match=message) as err:
        invariants.check_waterfall(*_as_run(broken, 5000.0, 100.0, 0.0, np.zeros(6), 1, 2))
    assert "path 0, quarter from 20" in str(err.value)
