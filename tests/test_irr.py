"""The path IRR kernels (simulator.kernels.irr) against plain-Python references: scipy's brentq for
one sign change, every root of the NPV polynomial (numpy.roots) for several."""
import math

import numpy as np
import pytest
from numba import njit
from scipy.optimize import brentq

from simulator.kernels import irr
from simulator.kernels.calls import kernels_from_python

IRR = kernels_from_python(irr)   # the kernels, callable from here

R_LO, R_HI = -0.99, 10.0
GRID_STEP = (math.log(11.0) - math.log(0.01)) / 127   # in log(1 + r)


# -- plain-Python references -------------------------------------------------------

def npv_ref(flows, r):
    return sum(f / (1 + r) ** k for k, f in enumerate(flows))


def mirr_ref(flows, finance_rate):
    n = int(np.flatnonzero(flows)[-1])
    fv = sum(f * (1 + finance_rate) ** (n - k) for k, f in enumerate(flows) if f > 0)
    pv = sum(-f / (1 + finance_rate) ** k for k, f in enumerate(flows) if f < 0)
    return -1.0 if fv == 0 else (fv / pv) ** (1 / n) - 1


def implied_log_ref(flows):
    """log(1 + implied rate) = log(M) / D (M ** (1 / D) itself overflows when D is tiny)."""
    pos = [(k, f) for k, f in enumerate(flows) if f > 0]
    neg = [(k, -f) for k, f in enumerate(flows) if f < 0]
    m = sum(f for _, f in pos) / sum(f for _, f in neg)
    d = (sum(k * f for k, f in pos) / sum(f for _, f in pos)
         - sum(k * f for k, f in neg) / sum(f for _, f in neg))
    return math.log(m) / d if d > 0 and m > 0 else 0.0


def roots_ref(flows):
    """(every real root r in (-0.99, 10] of the NPV, sorted; whether a root is too close
    to the real axis or to another to call): roots of sum f_k x**k, x = 1 / (1 + r)."""
    xs = np.roots(np.trim_zeros(flows, "b")[::-1])   # highest power first
    real, unclear = [], False
    for x in xs:
        if x.real <= 0 or not R_LO < 1 / x.real - 1 <= R_HI:
            continue
        if abs(x.imag) <= 1e-10 * abs(x):
            real.append(1 / x.real - 1)
        elif abs(x.imag) < 1e-6 * abs(x):   # a double root split by rounding, or nearly one
            unclear = True
    real.sort()
    logs = np.log1p(real)
    return real, unclear or bool(np.any(np.diff(logs) < GRID_STEP))


def trailing_zeros(rng, flows):
    return np.concatenate([flows, np.zeros(int(rng.integers(0, 20)))])


# -- generators ----------------------------------------------------------------------

def single_change_flows(rng):
    """Calls in the first quarters, distributions from a later one (as the waterfall test),
    the distributions scaled over six decades so some roots fall off the range."""
    n = int(rng.integers(3, 30))
    flows = np.zeros(n)
    flows[: rng.integers(1, n)] -= rng.gamma(2.0, 100.0, 1)
    scale = rng.random() * 10 ** rng.uniform(-4, 2)
    flows[rng.integers(1, n):] += rng.gamma(2.0, 80.0, 1) * scale
    return flows


def quadratic_flows(rng):
    """The classic -1, +a, -b (two sign changes: no root or two), spread over quarters,
    scaled, sometimes negated (+, -, +)."""
    k1 = int(rng.integers(1, 4))
    k2 = k1 + int(rng.integers(1, 4))
    a = rng.uniform(1.5, 3.0)
    flows = np.zeros(k2 + 1)
    flows[0], flows[k1], flows[k2] = -1.0, a, -a * a / 4 * rng.uniform(0.6, 1.4)
    flows *= rng.gamma(2.0, 100.0) * (1 if rng.random() < 0.8 else -1)
    return trailing_zeros(rng, flows)


def alternating_flows(rng):
    """Blocks of calls and distributions, alternating, with gaps: 2-4 sign changes."""
    blocks = int(rng.integers(3, 6))
    parts = []
    for b in range(blocks):
        length = int(rng.integers(1, 4))
        if b % 2 == 0:
            block = -rng.gamma(2.0, 100.0, length)
        else:
            block = rng.gamma(2.0, 80.0, length) * 10 ** rng.uniform(-1, 1)
        parts += [block, np.zeros(int(rng.integers(0, 3)))]
    return trailing_zeros(rng, np.concatenate(parts))


def chosen_roots_flows(rng):
    """Flows whose NPV has 2-4 chosen roots, each more than a grid step from the next:
    the coefficients of prod (x - x_i), which alternate in sign."""
    m = int(rng.integers(2, 5))
    logs = rng.uniform(math.log(0.6), math.log(1.1)) + np.concatenate(
        [[0.0], np.cumsum(rng.uniform(1.5 * GRID_STEP, 0.4, m - 1))])
    flows = np.poly(np.exp(-logs))[::-1] * rng.gamma(2.0, 100.0)   # x_i = 1 / (1 + r_i)
    return trailing_zeros(rng, -np.sign(flows[0]) * flows)


# -- tests -----------------------------------------------------------------------------

def test_one_sign_change_agrees_with_brentq_or_falls_back_to_the_modified_irr():
    rng = np.random.default_rng(2)
    unique = modified = 0
    for _ in range(1000):
        flows = single_change_flows(rng)
        finance = rng.uniform(0.0, 0.05)
        rate, rule = IRR.path_irr(flows, finance)
        f = lambda r, flows=flows: npv_ref(flows, r)  # noqa: E731
        if f(R_LO) * f(R_HI) > 0:   # brentq's bracket holds no sign change
            assert rule == IRR.IRR_MODIFIED
            assert rate == pytest.approx(mirr_ref(flows, finance), rel=1e-12, abs=1e-14)
            modified += 1
            continue
        assert rule == IRR.IRR_UNIQUE
        assert abs(rate - brentq(f, R_LO, R_HI, xtol=1e-14, rtol=1e-14)) < 1e-8
        unique += 1
    assert unique > 700 and modified > 50, (unique, modified)


def check_multi_root_cases(make, seed, cases=1500):
    """Check ``cases`` flows from ``make`` against the reference roots: (cases by rule,
    cases skipped for two roots within a grid step)."""
    rng = np.random.default_rng(seed)
    outcomes = {IRR.IRR_MODIFIED: 0, IRR.IRR_UNIQUE: 0, IRR.IRR_NEAREST: 0}
    skipped = 0
    for _ in range(cases):
        flows = make(rng)
        signs = np.sign(flows[flows != 0])
        assert 2 <= np.count_nonzero(np.diff(signs)) <= 4, flows
        finance = rng.uniform(0.0, 0.05)
        roots, unclear = roots_ref(flows)
        if unclear:   # two roots within a grid step: the scan may see neither
            skipped += 1
            continue
        rate, rule = IRR.path_irr(flows, finance)
        target = implied_log_ref(flows)
        implied = IRR.implied_rate(flows)
        if target > math.log(np.finfo(float).max):   # M ** (1 / D) overflows
            assert implied == math.inf
        else:   # (D from a difference: the relative error grows with |log(M) / D|)
            assert 1 + implied == pytest.approx(
                math.exp(target), rel=1e-8 * max(1.0, abs(target)), abs=1e-15)
        if not roots:
            assert rule == IRR.IRR_MODIFIED, (flows, rate, rule)
            assert rate == pytest.approx(mirr_ref(flows, finance), rel=1e-12, abs=1e-14)
        elif len(roots) == 1:
            assert rule == IRR.IRR_UNIQUE, (flows, roots, rate, rule)
            assert abs(rate - roots[0]) < 1e-7, (flows, roots, rate)
        else:
            assert rule == IRR.IRR_NEAREST, (flows, roots, rate, rule)
            nearest = min(roots, key=lambda r: abs(math.log1p(r) - target))
            assert abs(rate - nearest) < 1e-7, (flows, roots, rate, nearest)
        outcomes[rule] += 1
    return outcomes, skipped


def test_several_sign_changes_match_every_root_of_the_npv_polynomial():
    total = {IRR.IRR_MODIFIED: 0, IRR.IRR_UNIQUE: 0, IRR.IRR_NEAREST: 0}
    for make, seed in [(quadratic_flows, 3), (alternating_flows, 4), (chosen_roots_flows, 7)]:
        outcomes, skipped = check_multi_root_cases(make, seed)
        assert skipped < 20, (make.__name__, skipped)
        for rule, count in outcomes.items():
            total[rule] += count
    assert min(total.values()) > 50, total


def test_degenerate_paths():
    assert IRR.path_irr(np.array([-100.0, 0.0, -20.0, 0.0]), 0.02) == (-1.0, IRR.IRR_NOTHING_BACK)
    assert IRR.annualise(-1.0) == -1.0
    for flows in (np.zeros(5), np.zeros(0), np.array([100.0, 50.0])):
        rate, rule = IRR.path_irr(flows, 0.02)
        assert math.isnan(rate) and rule == IRR.IRR_NO_CAPITAL
    assert IRR.IRR_RULES[IRR.IRR_NO_CAPITAL] == "no_capital"
    assert IRR.IRR_RULES[IRR.IRR_NEAREST] == "nearest_root"
    assert math.isnan(IRR.annualise(np.nan))


def test_hand_cases():
    rate, rule = IRR.path_irr(np.array([-100.0, 0.0, 0.0, 0.0, 110.0]), 0.02)
    assert rule == IRR.IRR_UNIQUE and abs(rate - (1.1 ** 0.25 - 1)) < 1e-12
    assert IRR.annualise(rate) == pytest.approx(0.1, abs=1e-12)
    # -1, +2.3, -1.32: roots at 10% and 20%; the implied rate is 0 (M < 1, D < 0): 10%
    rate, rule = IRR.path_irr(np.array([-1.0, 2.3, -1.32]), 0.02)
    assert rule == IRR.IRR_NEAREST and abs(rate - 0.1) < 1e-12
    # returns 1.21 after a year: implied 1.21 ** (1/4) - 1; even spread with M = 1: 0
    assert IRR.implied_rate(np.array([-100.0, 0, 0, 0, 121])) == pytest.approx(1.21 ** 0.25 - 1)
    assert IRR.implied_rate(np.array([-100.0, 0, 50, 0, 50])) == 0.0
    # MIRR: N = 3, FV = 50 * 1.02 ** 2 + 150, PV = 100 + 50 / 1.02 ** 2
    flows = np.array([-100.0, 50.0, -50.0, 150.0])
    assert IRR.modified_irr(flows, 0.02) == pytest.approx(
        (202.02 / (100 + 50 / 1.0404)) ** (1 / 3) - 1, rel=1e-13)
    # -1, +2.3, -1.4 has no real root: MIRR, N = 2, FV = 2.3 * 1.02, PV = 1 + 1.4 / 1.02 ** 2
    rate, rule = IRR.path_irr(np.array([-1.0, 2.3, -1.4]), 0.02)
    assert rule == IRR.IRR_MODIFIED
    assert rate == pytest.approx((2.346 / (1 + 1.4 / 1.0404)) ** 0.5 - 1, rel=1e-13)
    # one sign change with the root off the range (11 and -0.995 a quarter): MIRR
    assert IRR.path_irr(np.array([-1.0, 12.0]), 0.02) == (pytest.approx(11.0), IRR.IRR_MODIFIED)
    assert IRR.path_irr(np.array([-100.0, 0.5]), 0.02) == (pytest.approx(-0.995), IRR.IRR_MODIFIED)
    assert IRR.modified_irr(np.array([-100.0, 0.0, -5.0]), 0.02) == -1.0
    assert math.isnan(IRR.modified_irr(np.array([0.0, 100.0]), 0.02))


def test_nearest_root_when_the_implied_rate_overflows():
    # -1, +2.3, -c with c just below 1: D = 1 - 2c / (1 + c) ~ 5e-13, M = 1.15, so
    # M ** (1 / D) overflows: the nearest root is the highest, 1 / x - 1 for the smaller x
    c = 1 - 1e-12
    flows = np.array([-1.0, 2.3, -c])
    assert IRR.implied_rate(flows) == math.inf
    x = (2.3 - math.sqrt(2.3 ** 2 - 4 * c)) / (2 * c)
    rate, rule = IRR.path_irr(flows, 0.02)
    assert rule == IRR.IRR_NEAREST and rate == pytest.approx(1 / x - 1, abs=1e-12)


def test_trailing_zeros_leave_the_result_unchanged():
    rng = np.random.default_rng(5)
    makers = (single_change_flows, quadratic_flows, alternating_flows, chosen_roots_flows)
    for i in range(400):
        flows = makers[i % 4](rng)
        padded = np.concatenate([flows, np.zeros(int(rng.integers(1, 40)))])
        ours, padded_ours = IRR.path_irr(flows, 0.015), IRR.path_irr(padded, 0.015)
        assert padded_ours[1] == ours[1]
        assert padded_ours[0] == ours[0] or (math.isnan(ours[0]) and math.isnan(padded_ours[0]))


@njit(_nrt=False)
def _irr_of_rows(flows, finance_rate, rates, rules):
    for p in range(flows.shape[0]):
        rates[p], rules[p] = irr.path_irr(flows[p], finance_rate)


def test_callable_from_a_nopython_loop_without_the_runtime():
    rng = np.random.default_rng(6)
    flows = np.zeros((200, 40))
    for p in range(200):
        row = (single_change_flows, alternating_flows)[p % 2](rng)[:40]
        flows[p, :row.shape[0]] = row
    rates, rules = np.empty(200), np.empty(200, np.int64)
    _irr_of_rows(flows, 0.02, rates, rules)
    for p in range(200):
        rate, rule = IRR.path_irr(flows[p], 0.02)
        assert rules[p] == rule and (rates[p] == rate or math.isnan(rate))
