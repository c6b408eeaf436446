"""The investor's internal rate of return of one path, defined on every path.

``path_irr(flows, finance_rate)`` takes a path's quarterly investor cash flows
(distributions less capital calls; index k is calendar quarter k, trailing zeros
allowed) and returns ``(quarterly rate, rule code)``. The rule, by code:

* ``IRR_NO_CAPITAL`` (4, "no_capital"): no flow is negative (nothing was drawn,
  including a path of zeros): the rate is undefined, NaN.
* ``IRR_NOTHING_BACK`` (2, "nothing_back"): capital drawn and no flow positive:
  -100% (-1.0).
* ``IRR_UNIQUE`` (0, "unique"): the NPV has exactly one root with a quarterly rate
  in (-0.99, 10]: that root. When the non-zero flows change sign once, Descartes'
  rule of signs gives exactly one root in the discount factor x = 1 / (1 + r) > 0:
  it is found on that range directly.
* ``IRR_NEAREST`` (1, "nearest_root"): the flows change sign more than once and the
  NPV has several roots on the range: the root nearest, in log(1 + r), to the rate
  implied by the multiple and duration (``implied_rate``).
* ``IRR_MODIFIED`` (3, "modified"): the NPV has no root on the range: the modified
  IRR (``modified_irr``) with distributions reinvested, and calls discounted, at
  the quarterly ``finance_rate``.

Roots are found by Newton steps kept inside a bracket (a bisection step whenever
Newton would leave it or stall), to a step below 1e-14. With one sign change the
bracket is the whole range; with more, the NPV is scanned on 128 points uniform in
log(1 + r) from log(0.01) to log(11) and every adjacent pair of opposite signs (or a
point where the NPV is exactly zero) brackets a root. Two roots closer than one grid
step (log(1100) / 127, about 0.055 in log(1 + r), 5.7% in 1 + r) can cancel and go
unseen.

``implied_rate``: with M the multiple (positive flows over the absolute negative
flows) and D the duration in quarters (cash-weighted mean quarter of the positive
flows less that of the negative flows), M ** (1 / D) - 1 when D > 0 and M > 0, else 0.
The nearest-root rule measures from log(1 + implied rate) = log(M) / D, computed so:
M ** (1 / D) - 1 rounds to -1, or overflows, when D is tiny.

``modified_irr``: with N the quarter of the last non-zero flow,
FV = sum of positive f_k (1 + finance_rate) ** (N - k),
PV = sum of |negative f_k| / (1 + finance_rate) ** k, the rate is
(FV / PV) ** (1 / N) - 1 (-1 when FV is 0, NaN when PV is 0).

All are numba kernels that allocate nothing: callable from nopython loops over paths.
The NPV at r = -0.99 grows as 100 ** k: flows of millions over more than about 140
quarters would overflow it.
"""
import math

import numpy as np

from ..layout import (  # noqa: F401 (re-exported)
    IRR_MODIFIED,
    IRR_NEAREST,
    IRR_NO_CAPITAL,
    IRR_NOTHING_BACK,
    IRR_RULES,
    IRR_UNIQUE,
)
from .cache import path_kernel

R_LO = -0.99   # the searched range of quarterly rates, (R_LO, R_HI]
R_HI = 10.0
GRID_POINTS = 128
_LOG_LO = math.log(0.01)
_LOG_HI = math.log(11.0)
_LOG_STEP = (_LOG_HI - _LOG_LO) / (GRID_POINTS - 1)


@path_kernel
def _signs(flows):
    """(length to the last non-zero flow, any negative, any positive, sign changes)."""
    n = 0
    neg = False
    pos = False
    changes = 0
    last = 0   # sign of the last non-zero flow seen
    for k in range(flows.shape[0]):
        f = flows[k]
        if f > 0.0:
            s = 1
            pos = True
        elif f < 0.0:
            s = -1
            neg = True
        else:
            continue
        if last != 0 and s != last:
            changes += 1
        last = s
        n = k + 1
    return n, neg, pos, changes


@path_kernel
def _npv(flows, n, rate):
    """(NPV of flows[:n] at ``rate``, its derivative in the rate): Horner's rule in the
    discount factor x = 1 / (1 + rate), so one division however many quarters."""
    x = 1.0 / (1.0 + rate)
    v = flows[n - 1]
    dv = 0.0   # d v / d x
    for k in range(n - 2, -1, -1):
        dv = dv * x + v
        v = v * x + flows[k]
    return v, -dv * x * x


@path_kernel
def _root_in(flows, n, lo, hi, f_lo, f_hi):
    """The root of the NPV of flows[:n] in [lo, hi], given f_lo, f_hi of opposite signs
    (or one zero): Newton steps kept inside the bracket, to a step below 1e-14."""
    if f_lo == 0.0:
        return lo
    if f_hi == 0.0:
        return hi
    if f_lo > 0.0:  # orient the bracket so that the NPV is negative at lo
        lo, hi = hi, lo
    r = 0.0 if min(lo, hi) < 0.0 < max(lo, hi) else 0.5 * (lo + hi)
    step_before = abs(hi - lo)
    step = step_before
    f, df = _npv(flows, n, r)
    for _ in range(200):
        newton_leaves = ((r - hi) * df - f) * ((r - lo) * df - f) > 0.0
        if newton_leaves or abs(2.0 * f) > abs(step_before * df):
            step_before = step   # bisect: Newton would leave the bracket or not halve the step
            step = 0.5 * (hi - lo)
            r = lo + step
        else:
            step_before = step
            step = f / df
            r -= step
        if abs(step) < 1e-14:
            return r
        f, df = _npv(flows, n, r)
        if f == 0.0:
            return r
        if f < 0.0:
            lo = r
        else:
            hi = r
    return r


@path_kernel
def _opposite(f_a, f_b):
    """Whether two non-zero NPVs differ in sign (no product: it could over- or underflow)."""
    return f_a != 0.0 and f_b != 0.0 and (f_a < 0.0) != (f_b < 0.0)


@path_kernel
def _grid_root(flows, n, target):
    """(the root nearest ``target`` in log(1 + r), how many roots) of the NPV of flows[:n]
    found on the grid; the best root is kept as the scan goes, so nothing is stored."""
    best = np.nan
    best_d = np.inf
    count = 0
    r_prev = R_LO
    f_prev = _npv(flows, n, r_prev)[0]
    for i in range(GRID_POINTS):
        if i == 0:
            r = r_prev
            f = f_prev
        else:   # the last point is R_HI itself, not exp's rounding of it
            r = R_HI if i == GRID_POINTS - 1 else math.exp(_LOG_LO + i * _LOG_STEP) - 1.0
            f = _npv(flows, n, r)[0]
        if f == 0.0:
            root = r
        elif i > 0 and _opposite(f_prev, f):
            root = _root_in(flows, n, r_prev, r, f_prev, f)
        else:
            root = np.nan
        if not math.isnan(root):
            count += 1
            d = abs(math.log(1.0 + root) - target)
            if d < best_d:
                best = root
                best_d = d
        r_prev = r
        f_prev = f
    return best, count


@path_kernel
def _multiple_duration(flows):
    """(M, D): positive flows over |negative flows|, and the cash-weighted mean quarter of
    the positive flows less that of the negative ones; (0, 0) without both signs."""
    pos = 0.0
    neg = 0.0
    pos_k = 0.0   # cash-weighted sums of quarter indices
    neg_k = 0.0
    for k in range(flows.shape[0]):
        f = flows[k]
        if f > 0.0:
            pos += f
            pos_k += k * f
        elif f < 0.0:
            neg -= f
            neg_k -= k * f
    if pos == 0.0 or neg == 0.0:
        return 0.0, 0.0
    return pos / neg, pos_k / pos - neg_k / neg


@path_kernel
def implied_rate(flows):
    """Quarterly rate implied by the multiple M and the duration D in quarters:
    M ** (1 / D) - 1 when D > 0 and M > 0, else 0.0 (see the module)."""
    m, d = _multiple_duration(flows)
    if d > 0.0 and m > 0.0:
        return m ** (1.0 / d) - 1.0
    return 0.0


@path_kernel
def _implied_log(flows):
    """log(1 + implied_rate) as log(M) / D: M ** (1 / D) under- or overflows when D is tiny.
    Clamped to a unit beyond the grid: the nearest root stays the same, and an infinite
    target (D denormal) would tie every root."""
    m, d = _multiple_duration(flows)
    if not (d > 0.0 and m > 0.0):
        return 0.0
    return min(max(math.log(m) / d, _LOG_LO - 1.0), _LOG_HI + 1.0)


@path_kernel
def modified_irr(flows, finance_rate):
    """Quarterly modified IRR: distributions compounded to the last non-zero quarter N and
    calls discounted to quarter 0 at ``finance_rate``; -1 when nothing comes back, NaN
    when nothing is drawn."""
    n = _signs(flows)[0] - 1
    g = 1.0 + finance_rate
    fv = 0.0
    pv = 0.0
    for k in range(n + 1):
        f = flows[k]
        if f > 0.0:
            fv += f * g ** float(n - k)   # float powers: pow(), as in plain Python
        elif f < 0.0:
            pv -= f / g ** float(k)
    if pv == 0.0:
        return np.nan
    if fv == 0.0:
        return -1.0
    return (fv / pv) ** (1.0 / n) - 1.0


@path_kernel
def path_irr(flows, finance_rate):
    """(quarterly IRR of ``flows``, the IRR_* code of the rule that gave it): see the module."""
    n, neg, pos, changes = _signs(flows)
    if not neg:
        return np.nan, IRR_NO_CAPITAL
    if not pos:
        return -1.0, IRR_NOTHING_BACK
    if changes == 1:   # one root in x > 0 (Descartes): bracket it on the whole range
        f_lo = _npv(flows, n, R_LO)[0]
        f_hi = _npv(flows, n, R_HI)[0]
        if f_lo == 0.0 or f_hi == 0.0 or _opposite(f_lo, f_hi):
            return _root_in(flows, n, R_LO, R_HI, f_lo, f_hi), IRR_UNIQUE
        return modified_irr(flows, finance_rate), IRR_MODIFIED
    root, count = _grid_root(flows, n, _implied_log(flows))
    if count == 0:
        return modified_irr(flows, finance_rate), IRR_MODIFIED
    return root, IRR_UNIQUE if count == 1 else IRR_NEAREST


@path_kernel
def annualise(quarterly_rate):
    """Annual rate of a quarterly one: (1 + q) ** 4 - 1 (so -1 stays -1, NaN stays NaN)."""
    return (1.0 + quarterly_rate) ** 4 - 1.0
