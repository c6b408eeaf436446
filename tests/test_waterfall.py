"""The outcomes contract and SPV waterfall kernels against hand-worked examples."""
import numpy as np
import pytest
from scipy.optimize import brentq

from simulator import waterfall as W


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
    capped = W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0), 100.0, 1,
                               False, 9000.0, 11, payments)
    expected = [0, 1000, 5000, 1500, 500, 500, 500, 0, 0, 0, 0, 0]
    assert payments.tolist() == pytest.approx(expected, abs=0.005)
    assert capped
    # A band just wide enough for every cohort's days (6 quarters) pays the same, to the
    # penny and bit for bit: the cohorts outside a quarter's band owe nothing new in it.
    narrow = np.empty(12)
    W.cohort_payments(baseline[:6].copy(), care[:6].copy(), np.zeros((12, 0)),
                      np.zeros(0), 100.0, 1, False, 9000.0, 11, narrow)
    assert narrow.tolist() == payments.tolist()
    # A lower cap (£7,000) truncates the q3 payment to £1,000 and stops later ones.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0), 100.0, 1, False,
                      7000.0, 11, payments)
    assert payments.tolist() == pytest.approx([0, 1000, 5000, 1000, 0, 0, 0, 0, 0, 0, 0, 0], abs=0.005)
    # With claw-back every fall is paid back: owed at k=2 is A -15, B +10, C +5 = 0;
    # at k=3 A +5, B -50, C +5 = -40 -> -£4,000; at k=4 B +40, C +5 -> £4,500; k=5 C £500.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0), 100.0, 1, True,
                      -1.0, 11, payments)
    assert payments[:7].tolist() == pytest.approx([0, 1000, 5000, 0, -4000, 4500, 500], abs=0.005)
    # The last payment quarter cuts off later payments.
    W.cohort_payments(baseline, care, np.zeros((12, 0)), np.zeros(0), 100.0, 1, False,
                      -1.0, 3, payments)
    assert payments.tolist() == pytest.approx([0, 1000, 5000, 1500] + [0] * 8, abs=0.005)


def test_outcome_events_are_paid_per_young_person_with_the_lag():
    events = np.zeros((6, 2))
    events[1, 0] = 3      # three young people out of care at the first checkpoint
    events[2, 1] = 2
    zero = np.zeros((6, 1))
    payments = np.empty(6)
    W.cohort_payments(zero, zero, events, np.array([1000.0, 2500.0]), 0.0, 2, False, -1.0, 5,
                      payments)
    assert payments.tolist() == [0, 0, 0, 3000, 5000, 0]


def test_spv_waterfall_worked_example():
    # Quarter:        0       1       2       3       4       5 (final)
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
    # q5 (final): 50+200 = 250, all surplus: 200 investors, 50 provider. balance 0.
    payments = np.array([0, 100, 300, 600, 600, 200.0])
    costs = np.array([400, 300, 300, 100, 0, 0.0])
    lines = np.zeros((6, W.N_LINES))
    drawn = W.spv_cash_flows(payments, costs, 1000.0, 50.0, 0.0, 3, 5, 0.8, lines)
    assert drawn == 650
    assert lines[:, W.L_CAPITAL_CALLS].tolist() == [450, 200, 0, 0, 0, 0]
    assert lines[:, W.L_DIST_INVESTORS].tolist() == pytest.approx([0, 0, 0, 500, 510, 200])
    assert lines[:, W.L_DIST_PROVIDER].tolist() == pytest.approx([0, 0, 0, 0, 90, 50])
    assert lines[:, W.L_BALANCE].tolist() == pytest.approx([50, 50, 50, 50, 50, 0])
    # tranches of 300: q0 needs 450 -> 600; q1: 200+100-300 = 0 < 50 -> 300 (drawn 900)
    drawn = W.spv_cash_flows(payments, costs, 1000.0, 50.0, 300.0, 3, 5, 0.8, lines)
    assert lines[:2, W.L_CAPITAL_CALLS].tolist() == [600, 300] and drawn == 900
    # a commitment too small: the unpaid cost is a shortfall, never an over-draw
    drawn = W.spv_cash_flows(payments, costs, 500.0, 50.0, 0.0, 3, 5, 0.8, lines)
    assert drawn == 500
    # q1: -150 needs 200 but only 50 is left to call: 100 of costs go unpaid
    assert lines[1, W.L_SHORTFALL] == pytest.approx(100.0)
    _assert_conserved(lines)


def _assert_conserved(lines):
    prev = np.concatenate([[0.0], lines[:-1, W.L_BALANCE]])
    lhs = lines[:, W.L_CAPITAL_CALLS] + lines[:, W.L_PAYMENTS]
    rhs = (lines[:, W.L_COSTS_PAID] + lines[:, W.L_DIST_INVESTORS] + lines[:, W.L_DIST_PROVIDER]
           + lines[:, W.L_BALANCE] - prev)
    assert np.allclose(lhs, rhs, atol=0.01)


def test_random_waterfalls_conserve_cash():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = rng.integers(4, 40)
        payments = rng.gamma(1.0, 100.0, n) * (rng.random(n) < 0.7)
        costs = rng.gamma(1.0, 120.0, n)
        lines = np.zeros((n, W.N_LINES))
        commitment = rng.uniform(100, 3000)
        drawn = W.spv_cash_flows(payments, costs, commitment, rng.uniform(0, 100),
                                 rng.choice([0.0, 250.0]), int(rng.integers(0, n)), n - 1,
                                 rng.uniform(0, 1), lines)
        assert drawn <= commitment + 1e-9
        _assert_conserved(lines)
        assert np.all(lines[:, W.L_BALANCE] >= -1e-9)


def test_irr_agrees_with_brentq_on_random_flows():
    rng = np.random.default_rng(2)
    checked = 0
    for _ in range(1000):
        n = int(rng.integers(3, 30))
        flows = np.zeros(n)
        flows[: rng.integers(1, n)] -= rng.gamma(2.0, 100.0, 1)
        flows[rng.integers(1, n):] += rng.gamma(2.0, 80.0, 1) * rng.random()
        ours = W.irr(flows)
        npv = lambda r: sum(f / (1 + r) ** k for k, f in enumerate(flows))  # noqa: E731
        if np.isnan(ours):
            assert not (np.any(flows < 0) and np.any(flows > 0)) or npv(-0.99) * npv(10) > 0
            continue
        ref = brentq(npv, -0.99, 10.0, xtol=1e-14, rtol=1e-14)
        assert abs(ours - ref) < 1e-8
        checked += 1
    assert checked > 500
    assert np.isnan(W.irr(np.array([100.0, 50.0])))      # no investment: undefined
    assert W.irr(np.array([-100.0, 0.0, 0.0, 0.0, 110.0])) == pytest.approx(1.1 ** 0.25 - 1)
