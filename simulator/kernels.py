"""The Monte Carlo engine: numba kernels over flat arrays, nothing else.

One path at a time, in continuous time (days since the contract start):
workforce (therapist leavers, vacancies, therapists in waiting) -> referrals
(negative binomial per team-month, screening) -> capacity (caseload limit,
FIFO waiting list, losses) -> treatment (length, non-completion, therapist
changes) -> care (entry/exit hazards for the treated path and the untreated
counterfactual on the same draws) -> days per quarter since tracking start and
per calendar quarter.

Randomness is counter-based (SplitMix64): every draw is a pure function of
(seed, stream, path, entity, draw number), so results do not depend on thread
count or chunking, and each random process (stream) is keyed by its own
entities, which gives common random numbers across scenarios that differ in one
parameter. The Python around these kernels lives in :mod:`simulator.engine`;
the layout of the arrays they share is defined here, once.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import jit_cache  # noqa: F401  (before any kernel: see the module)
from .jit_cache import FASTMATH
from . import irr
from . import waterfall as W

from .layout import *  # noqa: F403  (the index constants of every shared array)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0
_INF = np.inf


# --------------------------------------------------------------------------- RNG
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def subkey(key, x):
    """Key of entity ``x`` inside the stream identified by ``key``."""
    return _mix64(key ^ _mix64(np.uint64(x) + _GOLDEN))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def stream_key(seed, stream, path):
    return subkey(_mix64(np.uint64(seed) + _GOLDEN * np.uint64(stream)), path)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def uniform(key, n):
    """The n-th uniform of a stream, strictly inside (0, 1): ((z >> 11) + 0.5) / 2^53."""
    z = _mix64(key + _GOLDEN * np.uint64(n + 1))
    return (_u53_float(z) + 0.5) * _INV53


_EXP52_BITS = 0x4330000000000000   # the bits of 2^52: a mantissa there is an integer
_TWO52 = 4503599627370496.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _u53_float(z):
    """float(z >> 11), exactly, in integer and float operations that vectorise on any x86-64.

    The top 53 bits m of z as a float: its low 52 bits as the mantissa of 2^52 give
    2^52 + (m mod 2^52), from which 2^52 is taken unless m's top bit is set. A plain
    conversion of an unsigned 64-bit integer has a vector instruction on AVX-512 only;
    on AVX2 the compiler converted lane by lane (a seventh of the young people's draws
    on an AVX2 machine)."""
    low = np.int64((z >> _S11) & np.uint64(0xFFFFFFFFFFFFF)) | _EXP52_BITS
    return _bits_float(low) - pick(z >> np.uint64(63) != np.uint64(0), 0.0, _TWO52)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def exponential(key, n):
    """The n-th unit exponential of a stream. By batch_log (defined below; within an ulp
    of libm's): a call to libm in a care walk makes the compiler save and restore the
    walk's registers around it."""
    return -batch_log(uniform(key, n))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def norm_ppf(p):
    """Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9)."""
    a1, a2, a3 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a4, a5, a6 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b1, b2, b3 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b4, b5 = 6.680131188771972e01, -1.328068155288572e01
    c1, c2, c3 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c4, c5, c6 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d1, d2, d3, d4 = 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / \
            ((((d1 * q + d2) * q + d3) * q + d4) * q + 1.0)
    elif p <= 1.0 - plow:
        q = p - 0.5
        r = q * q
        x = (((((a1 * r + a2) * r + a3) * r + a4) * r + a5) * r + a6) * q / \
            (((((b1 * r + b2) * r + b3) * r + b4) * r + b5) * r + 1.0)
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((c1 * q + c2) * q + c3) * q + c4) * q + c5) * q + c6) / \
            ((((d1 * q + d2) * q + d3) * q + d4) * q + 1.0)
    return x


# --------------------------------------------------------------------------- batch math
# log, exp and the normal quantile written out in arithmetic and bit operations,
# with no calls and no branches, so that a loop over many draws compiles to
# vector instructions (libm's scalar calls cannot be vectorised without SVML,
# which the PyPI llvmlite lacks). Same algorithms as fdlibm's log and exp (within
# one ulp of libm) and the same Acklam quantile as norm_ppf. For finite inputs:
# batch_log clamps x up to the smallest normal number, batch_exp to [-708, 709].
@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float64, as an int64 (a reinterpretation, not a conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, b):
    """The float64 whose bits are the int64 b."""
    if b != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD   # sqrt(2) / 2
_ONE_BITS = 0x3FF0000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def batch_log(x):
    """log(x) for x > 0: x = 2^k m with m in [sqrt(2)/2, sqrt(2)), then
    log(m) = 2 atanh(f / (2 + f)), f = m - 1, by fdlibm's polynomial. An x below the
    smallest normal number (never a uniform of ours, which are 2^-54 or more) is
    taken as that number: about -708, not -inf."""
    x = max(x, 2.2250738585072014e-308)
    b = _float_bits(x) + (_ONE_BITS - _SQRT_HALF_BITS)
    k = float((b >> 52) - 1023)
    f = _bits_float((b & _MANTISSA) + _SQRT_HALF_BITS) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                                              + w * 1.531383769920937332e-01))
    t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                                              + w * (1.818357216161805012e-01
                                                     + w * 1.479819860511658591e-01)))
    half_f2 = 0.5 * f * f
    return k * _LN2_HI - ((half_f2 - (s * (half_f2 + t1 + t2) + k * _LN2_LO)) - f)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def batch_exp(x):
    """exp(x): x = k ln2 + r, |r| <= ln2 / 2, fdlibm's rational form of exp(r),
    scaled by 2^k in the exponent bits."""
    x = min(max(x, -708.0), 709.0)
    k = math.floor(x * _INV_LN2 + 0.5)
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03 + t * (
        6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06
                                          + t * 4.13813679705723846039e-08))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    return _bits_float(_float_bits(y) + (np.int64(k) << 52))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def batch_norm_ppf(p):
    """norm_ppf without branches: both the central and the tail formula, then a select."""
    q = p - 0.5
    r = q * q
    central = (((((-3.969683028665376e01 * r + 2.209460984245205e02) * r
                  - 2.759285104469687e02) * r + 1.383577518672690e02) * r
                - 3.066479806614716e01) * r + 2.506628277459239e00) * q / \
        (((((-5.447609879822406e01 * r + 1.615858368580409e02) * r
            - 1.556989798598866e02) * r + 6.680131188771972e01) * r
          - 1.328068155288572e01) * r + 1.0)
    upper = p > 0.5
    qt = math.sqrt(-2.0 * batch_log(pick(upper, 1.0 - p, p)))
    tail = (((((-7.784894002430293e-03 * qt - 3.223964580411365e-01) * qt
               - 2.400758277161838e00) * qt - 2.549732539343734e00) * qt
             + 4.374664141464968e00) * qt + 2.938163982698783e00) / \
        ((((7.784695709041462e-03 * qt + 3.224671290700398e-01) * qt
           + 2.445134137142996e00) * qt + 3.754408661907416e00) * qt + 1.0)
    tail = pick(upper, -tail, tail)
    return pick((p >= 0.02425) & (p <= 1.0 - 0.02425), central, tail)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def truncation(za, zb):
    """How to draw a standard normal truncated to [za, zb] by inverse CDF without losing
    precision: (sign, plo, phi, flip, no_mass, z_near) for truncated_std_normal.

    Phi near 1 has no precision left (1 - Phi(9) is below the step of a double at 1),
    so a range wholly above the mean is drawn as the mirror image of the one below it,
    where Phi's small values keep theirs. Beyond about 37 standard deviations even
    those are 0: the kept mass is nil, and every draw is the bound nearest the mean
    (the limit of the truncated law)."""
    flip = za > 0.0
    plo = norm_cdf(-zb) if flip else norm_cdf(za)
    phi = norm_cdf(-za) if flip else norm_cdf(zb)
    return (-1.0 if flip else 1.0), plo, phi, flip, phi <= plo, (za if flip else zb)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def truncated_std_normal(u, sign, plo, phi, flip, no_mass, z_near):
    """The standard normal truncated as ``truncation`` says, at uniform u (increasing in
    u; branch-free, so that a loop of draws vectorises)."""
    z = sign * batch_norm_ppf(plo + pick(flip, 1.0 - u, u) * (phi - plo))
    return pick(no_mass, z_near, z)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def gamma_draw(key, n, shape, scale):
    """Marsaglia-Tsang gamma; returns (value, next draw number)."""
    boost = 1.0
    if shape < 1.0:
        boost = uniform(key, n) ** (1.0 / shape)
        n += 1
        shape += 1.0
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = norm_ppf(uniform(key, n))
        n += 1
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(key, n)
        n += 1
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:  # the squeeze: implies the test below, without logs
            return d * v * scale * boost, n
        # (batch_log, as count_referrals' vector loop makes the same test)
        if batch_log(u) < 0.5 * x2 + d - d * v + d * batch_log(v):
            return d * v * scale * boost, n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _poisson_inversion(u, lam, p0):
    """The Poisson(lam) count at uniform u, summing the CDF from p0 = exp(-lam)."""
    p = p0
    cdf = p
    k = 0
    while u > cdf and p > 0.0:
        k += 1
        p *= lam / k
        cdf += p
    return k


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def poisson_draw(key, n, lam):
    """Poisson by multiplication (small mean) or PTRS (Hormann 1993); returns (k, next n)."""
    if lam <= 0.0:
        return 0, n
    if lam < 30.0:  # inversion: one uniform, the CDF summed term by term
        return _poisson_inversion(uniform(key, n), lam, math.exp(-lam)), n + 1
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        uu = uniform(key, n) - 0.5
        v = uniform(key, n + 1)
        n += 2
        us = 0.5 - abs(uu)
        k = math.floor((2.0 * a / us + b) * uu + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return int(k), n
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)) <= \
                (-lam + k * loglam - math.lgamma(k + 1.0)):
            return int(k), n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
def param_uniforms(seed, n_params, path_start, n_paths):
    """One uniform per path and parameter, keyed by (parameter, path)."""
    out = np.empty((n_paths, n_params))
    for i in prange(n_paths):
        base = stream_key(seed, S_PARAMS, path_start + i)
        for j in range(n_params):
            out[i, j] = uniform(subkey(base, j), 0)
    return out


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def pick(c, a, b):
    """a if c else b, as a call the compiler turns into a select. Written inline, the
    branch it makes can stop numba pruning reference counts of arrays in the caller's
    loop (an atomic incref and decref per array per iteration)."""
    return a if c else b


# --------------------------------------------------------------------------- binning
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def bin_of(t, edges):
    """searchsorted(edges, t, side="right") - 1: the bin holding t (-1 below, nb above).

    Calendar quarters are nearly equal in length, so a proportional guess lands on
    or next to the right bin; stepping from it is exact for any sorted edges.
    """
    nb = edges.shape[0] - 1
    if not t >= edges[0]:
        return -1
    if t >= edges[nb]:
        return nb
    i = min(int((t - edges[0]) * nb / (edges[nb] - edges[0])), nb - 1)
    while edges[i] > t:
        i -= 1
    while edges[i + 1] <= t:
        i += 1
    return i


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def add_interval(a, b, edges, out, col, weight):
    """Add the overlap of [a, b) with each bin of ``edges`` (times weight) to out[:, col]."""
    if b <= a:
        return
    nb = edges.shape[0] - 1
    i = max(bin_of(a, edges), 0)
    while i < nb and edges[i] < b:
        lo = max(a, edges[i])
        hi = min(b, edges[i + 1])
        if hi > lo:
            out[i, col] += (hi - lo) * weight
        i += 1


# Indices known to be non-negative are cast to unsigned (np.uint64) in the hot
# helpers and loops: numba then leaves out the code that wraps negative indices
# around, a few instructions per access.
#
# Calendar quarters start on whole days, so a table from day to quarter gives
# the quarter of any time in one look-up. The hot paths bin intervals by their
# end points: where an interval of weight w opens, w joins the running slope
# of its quarter and w * (quarter end - time) its content; where it closes, the
# same with -w. settle() then adds slope-so-far * width to each quarter, once
# per path. An interval so costs two look-ups however many quarters it spans.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def day_quarters(edges):
    """Quarter index of each whole day from edges[0] to edges[-1] (edges must be whole days)."""
    for e in edges:
        if e != math.floor(e):
            raise ValueError("calendar edges must fall on whole days")
    d0 = edges[0]
    n = int(edges[-1] - d0)
    table = np.empty(n, np.int16)   # (small, so that it stays in the first-level cache)
    k = 0
    for d in range(n):
        while edges[k + 1] <= d0 + d:
            k += 1
        table[d] = k
    return table


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def quarter_of(t, edges, day_q):
    """bin_of for whole-day edges: -1 before the first quarter, nb after the last."""
    if not t >= edges[0]:
        return -1
    x = np.floor(t) - edges[0]   # (np.floor stays a float: no round trip via int)
    if not x < day_q.shape[0]:   # compared as a float: int(+inf) is undefined
        return edges.shape[0] - 1
    return day_q[np.uint64(int(x))]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def quarter_bounds(k, edges):
    """The times whose quarter_of is k: [edges[k], edges[k + 1]), open-ended for -1 (before
    the first quarter) and for the index after the last."""
    nb = edges.shape[0] - 1
    lo = edges[np.uint64(k)] if k >= 0 else -_INF
    hi = edges[np.uint64(k + 1)] if k < nb else _INF
    return lo, hi


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def count_at(t, edges, day_q, out, col, w):
    k = quarter_of(t, edges, day_q)
    if 0 <= k < edges.shape[0] - 1:
        out[k, col] += w


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def add_count(k, n, out, col):
    """Add the count n to quarter k of out[:, col] (nothing if k is -1 or past the last)."""
    if 0 <= k < out.shape[0]:
        out[k, col] += n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def quarter_room(t, edges, day_q):
    """(quarter of t, days from t to the quarter's end) for slope binning; quarter -1 after
    the last quarter (nothing to bin), and a time before the first counts from its start."""
    if t < edges[0]:
        return 0, edges[1] - edges[0]
    x = np.floor(t) - edges[0]   # (np.floor stays a float: no round trip via int)
    if not x < day_q.shape[0]:   # compared as a float: int(+inf) is undefined
        return -1, 0.0
    k = day_q[np.uint64(int(x))]
    return k, edges[np.uint64(k + 1)] - t


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def bump(k, room, w, slope, part, col):
    """Slope binning at a looked-up (quarter, room): several columns can share one look-up."""
    if k >= 0:
        uk = np.uint64(k)
        uc = np.uint64(col)
        slope[uk, uc] += w
        part[uk, uc] += w * room


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def slope_at(t, w, edges, day_q, slope, part, col):
    """An interval of weight w opens at t (w < 0: closes) in calendar quarters."""
    k, room = quarter_room(t, edges, day_q)
    bump(k, room, w, slope, part, col)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def span(a, b, w, edges, day_q, slope, part, col):
    """[a, b) with weight w, in calendar quarters."""
    if b > a:
        slope_at(a, w, edges, day_q, slope, part, col)
        slope_at(b, -w, edges, day_q, slope, part, col)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def slope_at_since(x, w, width, slope, part, col):
    """As slope_at for quarters of equal width since a young person's tracking start (x >= 0).

    The quarter is found by multiplying by 1 / width (a constant: no division on the
    hot path). Where x is a quarter boundary to rounding, either neighbour is right:
    the quarter before gets room 0 and the slope, which settle() turns into the same days.
    """
    k = int(x * (1.0 / width))
    if k < slope.shape[0]:
        uk = np.uint64(k)
        uc = np.uint64(col)
        slope[uk, uc] += w
        part[uk, uc] += w * ((k + 1) * width - x)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def settle(edges, width, slope, part):
    """Turn slope-binned contents into days per bin (edges, or equal ``width`` if edges is
    empty). ``slope`` is overwritten with its running sum down the bins: row after row,
    so the inner loop runs along a row and vectorises."""
    for k in range(1, slope.shape[0]):
        uk = np.uint64(k)
        w = (edges[uk + 1] - edges[uk]) if edges.shape[0] else width
        for col in range(slope.shape[1]):
            uc = np.uint64(col)
            part[uk, uc] += slope[uk - 1, uc] * w
            slope[uk, uc] += slope[uk - 1, uc]


# Days by tracking cohort (the calendar quarter a young person's tracking window
# opens in) are kept as a band: row j, column c is cohort c in calendar quarter c + j,
# for the C_COHORT_QUARTERS quarters a window can reach, rather than a square quarter-
# by-cohort matrix that is mostly zeros. A row
# holds every cohort at one offset, so the passes over the band (settling, totals by
# quarter, the contract's true-up) run along rows, over cohorts, and vectorise.
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def bump_cohort(k, room, w, cohort, slope, part):
    """bump() into the cohort band: quarter k (>= cohort) of this cohort's column."""
    if k >= 0:
        uc = np.uint64(cohort)
        uj = np.uint64(k - cohort)
        slope[uj, uc] += w
        part[uj, uc] += w * room


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def span_cohort(a, b, w, edges, day_q, cohort, slope, part):
    """span() into the cohort band."""
    if b > a:
        k, room = quarter_room(a, edges, day_q)
        bump_cohort(k, room, w, cohort, slope, part)
        k, room = quarter_room(b, edges, day_q)
        bump_cohort(k, room, -w, cohort, slope, part)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def settle_cohorts(edges, slope, part):
    """settle() for the cohort band: down each cohort's column to the last calendar quarter,
    a row (offset) at a time."""
    n_cal = edges.shape[0] - 1
    for j in range(1, slope.shape[0]):
        uj = np.uint64(j)
        for c in range(min(slope.shape[1], n_cal - j)):
            uc = np.uint64(c)
            part[uj, uc] += slope[uj - 1, uc] * (edges[uc + uj + 1] - edges[uc + uj])
            slope[uj, uc] += slope[uj - 1, uc]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def cohort_totals(band, totals):
    """Days in each calendar quarter summed over the cohorts into ``totals`` (quarters,),
    overwritten. Rows from the last offset to the first, so that each quarter adds its
    cohorts in cohort order."""
    n_cal = totals.shape[0]
    for k in range(n_cal):
        totals[k] = 0.0
    for j in range(band.shape[0] - 1, -1, -1):
        uj = np.uint64(j)
        for c in range(min(band.shape[1], n_cal - j)):
            uc = np.uint64(c)
            totals[uc + uj] += band[uj, uc]


# --------------------------------------------------------------------------- workforce
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _add_event(ev_t, ev_p, ev_k, n_ev, t, p, kind):
    """Append a staffing event; returns the new count, or -1 when the arrays are full."""
    if n_ev < 0 or n_ev >= ev_t.shape[0]:
        return -1
    ev_t[n_ev] = t
    ev_p[n_ev] = p
    ev_k[n_ev] = kind
    return n_ev + 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def simulate_workforce(seed, path, prm, team_start, team_size, n_in_waiting, service_end,
                       cal_edges, cal_out, out, posts, times, keys, ev_t, ev_p, ev_k):
    """Therapist posts over time: staffing events (time, post, kind) into ev_t, ev_p, ev_k in
    time order, and each post's team into posts[0]. Returns the number of events, or -1
    if they did not fit (the caller makes more room and simulates the path again).

    Each post starts staffed at its team's start. A leaver's post is filled at
    once by a therapist in waiting if one is free (the reserve is then
    re-recruited), otherwise it stays vacant until a recruitment completes.
    A completed recruitment fills the longest-vacant post, or joins the reserve.
    Work arrays (the caller's): posts (2, posts), times (4, posts + n_in_waiting + 1),
    keys (posts,).
    """
    n_teams = team_start.shape[0]
    n_posts = posts.shape[1]
    posts[:] = 0
    times[:] = _INF
    post_team = posts[0]
    post_draws = posts[1]
    leave_at = times[0, :n_posts]
    vacant_since = times[1, :n_posts]
    staffed_since = times[2, :n_posts]
    recruit_done = times[3]
    leave_rate = prm[P_LEAVING_RATE] / DAYS_PER_YEAR
    vac_mean = prm[P_VACANCY_MEAN_DAYS]
    vac_shape = prm[P_VACANCY_SHAPE]

    n_ev = 0
    base = stream_key(seed, S_THERAPIST, path)
    p = 0
    for k in range(n_teams):
        for j in range(team_size[k]):
            post_team[p] = k
            keys[p] = subkey(base, p)
            staffed_since[p] = team_start[k]
            leave_at[p] = _tenure_end(team_start[k], keys[p], post_draws, p, leave_rate)
            n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, team_start[k], p, EV_FILL)
            p += 1
    _sort_events(ev_t, ev_p, ev_k, n_ev)   # initial fills in time order (teams may be listed out of order)
    in_reserve = n_in_waiting
    leavers = 0
    while True:
        p_leave = np.argmin(leave_at)
        r_done = np.argmin(recruit_done)
        t = min(leave_at[p_leave], recruit_done[r_done])
        if t >= service_end:
            break
        if leave_at[p_leave] <= recruit_done[r_done]:
            p = p_leave
            leavers += 1
            _close_staffed(p, t, staffed_since, team_start, post_team, cal_edges, cal_out)
            n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_LEAVE)
            if vac_mean > 0.0:
                v, post_draws[p] = gamma_draw(keys[p], post_draws[p], vac_shape, vac_mean / vac_shape)
            else:
                v = 0.0
            recruit_done[np.argmax(recruit_done)] = t + v  # a free slot holds +inf
            if in_reserve > 0:
                in_reserve -= 1
                leave_at[p] = _tenure_end(t, keys[p], post_draws, p, leave_rate)
                staffed_since[p] = t
                n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_FILL)
            else:
                leave_at[p] = _INF
                vacant_since[p] = t
        else:
            recruit_done[r_done] = _INF
            p = np.argmin(vacant_since)
            if vacant_since[p] < _INF:
                _add_vacancy(vacant_since[p], t, cal_edges, cal_out, out)
                vacant_since[p] = _INF
                staffed_since[p] = t
                leave_at[p] = _tenure_end(t, keys[p], post_draws, p, leave_rate)
                n_ev = _add_event(ev_t, ev_p, ev_k, n_ev, t, p, EV_FILL)
            else:
                in_reserve += 1
    for p in range(n_posts):
        if vacant_since[p] < service_end:
            _add_vacancy(vacant_since[p], service_end, cal_edges, cal_out, out)
        if staffed_since[p] < service_end:
            _close_staffed(p, service_end, staffed_since, team_start, post_team, cal_edges, cal_out)
    out[O_LEAVERS] = leavers
    if n_ev < 0:
        return -1
    # events sorted by time; ties keep generation order (leave before its instant fill)
    _sort_events(ev_t, ev_p, ev_k, n_ev)
    return n_ev


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _sort_events(ev_t, ev_p, ev_k, n):
    """Stable insertion sort of the first n events by time. The event loop makes them in
    time order, but for the fills at the start of a team that starts after a leaver of
    another: nearly sorted, where this is linear (and needs no work arrays, unlike argsort)."""
    for i in range(1, n):
        t, p, k = ev_t[i], ev_p[i], ev_k[i]
        j = i
        while j > 0 and ev_t[j - 1] > t:
            ev_t[j], ev_p[j], ev_k[j] = ev_t[j - 1], ev_p[j - 1], ev_k[j - 1]
            j -= 1
        ev_t[j], ev_p[j], ev_k[j] = t, p, k


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _tenure_end(t, key, post_draws, p, leave_rate):
    if leave_rate <= 0.0:
        return _INF
    e = exponential(key, post_draws[p])
    post_draws[p] += 1
    return t + e / leave_rate


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _add_vacancy(a, b, cal_edges, cal_out, out):
    out[O_VACANCY_DAYS] += b - a
    add_interval(a, b, cal_edges, cal_out, K_VACANCY_DAYS, 1.0)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _close_staffed(p, t, staffed_since, team_start, post_team, cal_edges, cal_out):
    a = staffed_since[p]
    if a < t:
        add_interval(a, t, cal_edges, cal_out, K_THERAPIST_DAYS, 1.0)
    staffed_since[p] = _INF


# --------------------------------------------------------------------------- referrals
@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _month_mean(prm, j, weight):
    ramp_months = prm[P_RAMP_UP_MONTHS]
    start = prm[P_RAMP_START_SHARE]
    ramp = 1.0
    if ramp_months > 0.0 and j < ramp_months:
        ramp = start + (1.0 - start) * (j / ramp_months)
    trend = 1.0
    if prm[P_REFERRAL_TREND] != 0.0:  # pow is slow even for a base of 1
        trend = (1.0 + prm[P_REFERRAL_TREND]) ** (j * DAYS_PER_MONTH / DAYS_PER_YEAR)
    return prm[P_REFERRAL_RATE] * weight * ramp * trend


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def referral_months(team_start, delay, referrals_end):
    """Months of referrals of the team that takes them longest, its start (team_start)
    delayed by ``delay`` days (at least 1: the columns of count_referrals' counts)."""
    n_months = 1
    for k in range(team_start.shape[0]):
        start = team_start[k] + delay
        if referrals_end > start:
            n_months = max(n_months, int(math.ceil((referrals_end - start) / DAYS_PER_MONTH)))
    return n_months


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def count_referrals(seed, path, prm, team_start, team_weight, referrals_end, counts, work,
                    work_int, keys, accepted):
    """Referral counts per team-month (negative binomial as a gamma-Poisson mixture) into
    counts (teams, referral_months), overwritten.

    In three passes over the team-months: their means, keys and first uniforms; the
    first Marsaglia-Tsang attempt of each gamma draw and the Poisson's exp(-mean), in
    branch-free arithmetic that vectorises (for a gamma shape of 1 or more); then each
    count, by the scalar gamma_draw where the squeeze did not accept that first attempt
    (the same draws, so the same value), and by inversion of the Poisson.
    Work arrays (the caller's, for teams x months cells): work (5, cells), work_int
    (3, cells), keys and accepted (cells,).
    """
    n_teams = team_start.shape[0]
    n_months = counts.shape[1]
    counts[:] = 0
    cell = work_int[0]        # k * n_months + j
    mean = work[0]
    u0 = work[1]
    u1 = work[2]
    base = stream_key(seed, S_REFERRAL_COUNT, path)
    k_nb = prm[P_REFERRAL_DISPERSION]
    n = 0
    for k in range(n_teams):
        for j in range(n_months):
            a = team_start[k] + j * DAYS_PER_MONTH
            if a >= referrals_end:
                break
            share = min(1.0, (referrals_end - a) / DAYS_PER_MONTH)
            key = subkey(subkey(base, k), j)
            cell[n] = k * n_months + j
            keys[n] = key
            mean[n] = _month_mean(prm, j, team_weight[k]) * share
            u0[n] = uniform(key, 0)
            u1[n] = uniform(key, 1)
            n += 1
    first_try = k_nb >= 1.0   # gamma shape >= 1: the first attempt takes draws 0 and 1
    accepted[:n] = False
    lam = work[3, :n]
    for m in range(n):
        lam[m] = mean[m]
    if first_try:
        d = k_nb - 1.0 / 3.0
        c = 1.0 / math.sqrt(9.0 * d)
        for m in range(n):  # gamma_draw's first attempt, branch-free
            x = batch_norm_ppf(u0[m])
            v = 1.0 + c * x
            x2 = x * x
            v3 = v * v * v
            # the squeeze, or else the exact test (for a v <= 0, log's garbage is masked)
            squeeze = u1[m] < 1.0 - 0.0331 * x2 * x2
            exact = batch_log(u1[m]) < 0.5 * x2 + d - d * v3 + d * batch_log(v3)
            accepted[m] = (v > 0.0) & (squeeze | exact)
            lam[m] = d * v3 * (mean[m] / k_nb) * 1.0
    p0 = work[4, :n]
    for m in range(n):
        p0[m] = batch_exp(-lam[m])
    draws = work_int[1, :n]   # the draw number of each cell's Poisson uniform
    for m in range(n):
        key = keys[m]
        draw = 0
        if k_nb > 0.0:
            if accepted[m]:
                draw = 2
            else:
                lam[m], draw = gamma_draw(key, 0, k_nb, mean[m] / k_nb)
                p0[m] = math.exp(-lam[m])
        draws[m] = draw
        u0[m] = uniform(key, draw)
    found = work_int[2, :n]
    _poisson_inversions(u0, lam, p0, u1, found, n)
    for m in range(n):
        count = found[m]
        if not (0.0 < lam[m] < 30.0):
            count = poisson_draw(keys[m], draws[m], lam[m])[0]
        counts[cell[m] // n_months, cell[m] % n_months] = count


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _poisson_inversions(u, lam, p, cdf, k, n):
    """_poisson_inversion of the first n cells at once (those with 0 < lam < 30; the
    others get k = 0), p = exp(-lam) on entry (overwritten, as is the work array cdf).
    In lock-step: each step takes every cell still below its uniform one count further,
    with the same arithmetic, so the same counts; a loop without branches, which
    vectorises, where a loop per cell mispredicted its exit about once a cell."""
    for m in range(n):
        cdf[m] = p[m]
        k[m] = 0
    while True:
        going = 0
        for m in range(n):
            go = (u[m] > cdf[m]) & (p[m] > 0.0) & (lam[m] > 0.0) & (lam[m] < 30.0)
            k[m] += go
            p[m] = pick(go, p[m] * (lam[m] / k[m]), p[m])
            cdf[m] = pick(go, cdf[m] + p[m], cdf[m])
            going += go
        if going == 0:
            return


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _sort_arrivals(times, keys, a, b):
    """Stable insertion sort of one month's arrivals (a handful) by time, keys alongside.

    Branch-free: each arrival is carried down the sorted run before it, every later
    arrival moving up one place and every earlier one written back where it was.
    Where it stops is a coin toss, so the usual early exit would be mispredicted
    about once an arrival; this does more work but never waits on a wrong guess.
    """
    for i in range(a + 1, b):
        t = times[i]
        key = keys[i]
        for j in range(i - 1, a - 1, -1):
            x = times[j]
            kx = keys[j]
            up = x > t
            times[j + 1] = pick(up, x, t)
            keys[j + 1] = pick(up, kx, key)
            t = pick(up, t, x)
            key = pick(up, key, kx)
        times[a] = t
        keys[a] = key


SORT_RUN = 16      # a big month's arrivals are insertion-sorted in runs this long ...
SORT_MERGE_FROM = 32   # ... and the runs merged, from this many arrivals in a month


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _sort_month(times, keys, tmp_t, tmp_k, a, b):
    """Stable sort of one month's arrivals [a, b) by time, keys alongside: the branch-free
    insertion sort for a handful (Essex: about four); for a big month (a programme of
    hundreds of referrals a month), insertion-sorted runs merged pairwise through tmp_t
    and tmp_k, O(m log m) rather than O(m^2). Both are stable, so the order is the same."""
    m = b - a
    if m < SORT_MERGE_FROM:
        _sort_arrivals(times, keys, a, b)
        return
    for r in range(a, b, SORT_RUN):
        _sort_arrivals(times, keys, r, min(r + SORT_RUN, b))
    width = SORT_RUN
    in_tmp = False
    while width < m:
        if in_tmp:
            _merge_runs(tmp_t, tmp_k, times, keys, a, b, width)
        else:
            _merge_runs(times, keys, tmp_t, tmp_k, a, b, width)
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        for p in range(a, b):
            times[p] = tmp_t[p]
            keys[p] = tmp_k[p]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _merge_runs(src_t, src_k, dst_t, dst_k, a, b, width):
    """Merge the sorted runs of ``width`` in [a, b) pairwise from src into dst; on equal
    times the earlier run's arrival first (stable)."""
    for lo in range(a, b, 2 * width):
        mid = min(lo + width, b)
        hi = min(lo + 2 * width, b)
        i = lo
        j = mid
        o = lo
        while i < mid and j < hi:
            if src_t[j] < src_t[i]:
                dst_t[o] = src_t[j]
                dst_k[o] = src_k[j]
                j += 1
            else:
                dst_t[o] = src_t[i]
                dst_k[o] = src_k[i]
                i += 1
            o += 1
        while i < mid:
            dst_t[o] = src_t[i]
            dst_k[o] = src_k[i]
            i += 1
            o += 1
        while j < hi:
            dst_t[o] = src_t[j]
            dst_k[o] = src_k[j]
            j += 1
            o += 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _referrals(seed, path, prm, counts, team_start, referrals_end, first_year_a, first_year_b,
               cal_edges, day_q, reason_cdf, ref_team, ref_time, ref_key, acc_team, acc_time,
               acc_key, accept_t, rejected, slot, u, out, cal_out, reasons_out):
    """Each referral's team, arrival time (uniform in its month, in time order within the
    month) and key, then screening, and the reasons for rejection. Returns the number
    accepted; their team, referral time, key and acceptance time go to acc_team,
    acc_time, acc_key and accept_t, in order: team by team, and in time order within a
    team (every kernel after this one works on the accepted young people, in these
    arrays' order; _run_team takes each team's as a range)."""
    base = stream_key(seed, S_REFERRAL, path)
    # each referral's month (its key, start and width) and place in the month ...
    i = 0
    for k in range(counts.shape[0]):
        team_key = subkey(base, k)
        for j in range(counts.shape[1]):
            a = team_start[k] + j * DAYS_PER_MONTH
            width = min(DAYS_PER_MONTH, referrals_end - a)
            month_key = subkey(team_key, j)
            for m in range(counts[k, j]):
                ref_key[i] = month_key
                slot[i] = m
                ref_team[i] = k
                ref_time[i] = a
                u[i] = width
                i += 1
    # ... then the hashes, on contiguous arrays only: vector instructions
    for i in range(ref_time.shape[0]):
        key = subkey(ref_key[i], slot[i])
        ref_key[i] = key
        ref_time[i] = ref_time[i] + u[i] * uniform(key, R_ARRIVAL)
    first = 0
    for k in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            m = counts[k, j]
            if m < SORT_MERGE_FROM:   # (inline here: the call cost a per cent of a path)
                _sort_arrivals(ref_time, ref_key, first, first + m)
            else:   # a big month (acc_time and acc_key are written only later)
                _sort_month(ref_time, ref_key, acc_time, acc_key, first, first + m)
            first += m
    for i in range(ref_time.shape[0]):  # the screening draws (vector instructions again)
        u[i] = uniform(ref_key[i], R_SCREEN)
    accept_share = prm[P_ACCEPTANCE_SHARE]
    screening = prm[P_SCREENING_DAYS]
    n_acc = 0
    n_rej = 0
    first_year = 0
    # Referrals and acceptances are counted by calendar quarter in runs: a team's
    # referrals come in time order, so the quarter changes a few dozen times a path.
    # Adding 1 to a quarter's count in memory for each referral chained every
    # referral to the one before through that memory.
    # A run lasts while the time stays within its quarter's bounds: two comparisons a
    # referral, the quarter looked up only when a run ends.
    k_ref = -1
    run_ref = 0
    lo_ref, hi_ref = _INF, -_INF   # (empty bounds: the first referral starts a run)
    k_acc = -1
    run_acc = 0
    lo_acc, hi_acc = _INF, -_INF
    for i in range(ref_time.shape[0]):  # branch-free: acceptance is a coin toss
        t = ref_time[i]
        first_year += (first_year_a <= t) & (t < first_year_b)
        t_acc = t + screening
        acc = u[i] < accept_share
        acc_team[n_acc] = ref_team[i]   # (written whether accepted or not: kept if so)
        acc_time[n_acc] = t
        acc_key[n_acc] = ref_key[i]
        accept_t[n_acc] = t_acc
        rejected[n_rej] = i
        n_acc += acc
        n_rej += pick(acc, 0, 1)
        if not (lo_ref <= t < hi_ref):
            add_count(k_ref, run_ref, cal_out, K_REFERRALS)
            k_ref = quarter_of(t, cal_edges, day_q)
            lo_ref, hi_ref = quarter_bounds(k_ref, cal_edges)
            run_ref = 0
        run_ref += 1
        if not (lo_acc <= t_acc < hi_acc):
            add_count(k_acc, run_acc, cal_out, K_ACCEPTED)
            k_acc = quarter_of(t_acc, cal_edges, day_q)
            lo_acc, hi_acc = quarter_bounds(k_acc, cal_edges)
            run_acc = 0
        run_acc += acc
    add_count(k_ref, run_ref, cal_out, K_REFERRALS)
    add_count(k_acc, run_acc, cal_out, K_ACCEPTED)
    out[O_REFERRALS_FIRST_YEAR] += first_year
    if reason_cdf.shape[0] > 0:
        for c in range(n_rej):
            key = ref_key[np.uint64(rejected[c])]
            reasons_out[_categorical(uniform(key, R_REASON), reason_cdf)] += 1.0
    out[O_REFERRALS] = ref_time.shape[0]
    out[O_REJECTED] = n_rej
    return n_acc


# --------------------------------------------------------------------------- care
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _young_people(prm, cfg, n_acc, acc_key, acc_time, age0, prior, rate0, care_key, care_e0,
                  care_x1, care_e2, care_x3, length, noncompleted, female):
    """Each accepted young person's age, prior care, care-entry rate, care stream key,
    first two care-entry targets and spell-length draws (care draws 0 to 3; a walk
    that needs more makes them), treatment length (if treated), and whether they
    would not complete a treatment and whether female; all in accepted order.

    In passes: the uniforms (hashes), then their transformation by log, exp and the
    normal quantile in place, in a loop of arithmetic only; both compile to vector
    instructions (the arrays are contiguous, in the order of the young people)."""
    entry_base = prm[P_ENTRY_RATE] / DAYS_PER_YEAR * prm[P_DRIFT_MULTIPLIER]
    age_mean = prm[P_AGE_MEAN]
    age_sd = prm[P_AGE_SD]
    age_lo = cfg[C_AGE_MIN]
    age_hi = cfg[C_AGE_MAX]
    a_sign, a_plo, a_phi, a_flip, a_nil, a_near = truncation((age_lo - age_mean) / age_sd,
                                                             (age_hi - age_mean) / age_sd)
    drift_trend = prm[P_DRIFT_TREND]
    prior_share = prm[P_PRIOR_CARE_SHARE]
    prior_hr = prm[P_PRIOR_CARE_HR]
    length_mu = math.log(prm[P_TREATMENT_MEDIAN_DAYS])
    length_sigma = (math.log(prm[P_SHORT_THRESHOLD_DAYS]) - length_mu) / norm_ppf(prm[P_SHARE_UNDER_THRESHOLD])
    l_sign, l_plo, l_phi, l_flip, l_nil, l_near = truncation(
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
        age = age_mean + age_sd * truncated_std_normal(age0[c], a_sign, a_plo, a_phi, a_flip,
                                                       a_nil, a_near)
        age0[c] = min(max(age, age_lo), age_hi)
        care_e0[c] = -batch_log(care_e0[c])
        care_x1[c] = -batch_log(care_x1[c])
        care_e2[c] = -batch_log(care_e2[c])
        care_x3[c] = -batch_log(care_x3[c])
        length[c] = batch_exp(length_mu + length_sigma
                              * truncated_std_normal(length[c], l_sign, l_plo, l_phi, l_flip,
                                                     l_nil, l_near))
        rate0[c] = entry_base * pick(prior[c], prior_hr, 1.0)
    if drift_trend != 0.0:
        for c in range(n_acc):
            rate0[c] *= (1.0 + drift_trend) ** (acc_time[c] / DAYS_PER_YEAR)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _next_entry(t, target, horizon, t_ref, age0, rate0, age_hr, ref_age,
                treated, s, e, mult_during, mult_after, lhr_after, half_life):
    """Time at which the cumulative entry hazard from t reaches ``target``, or +inf.

    The hazard is piecewise constant: it changes at birthdays (if the age hazard
    ratio is not 1), at treatment start and end, and (if the effect wanes) on
    month-long steps after treatment end. Boundaries are stepped by counters,
    not recomputed from t, so rounding can never stall the walk.
    """
    by_age = age_hr != 1.0
    if not by_age and not treated:  # one constant hazard: the loop below in one step
        if rate0 * (horizon - t) >= target:
            return t + target / rate0
        return _INF
    next_bday = _INF
    age_mult = 1.0
    if by_age:
        whole = math.floor(age0 + (t - t_ref) / DAYS_PER_YEAR)
        next_bday = t_ref + (whole + 1.0 - age0) * DAYS_PER_YEAR
        if next_bday <= t:
            whole += 1.0
            next_bday += DAYS_PER_YEAR
        age_mult = age_hr ** (whole - ref_age)
    step = -1.0
    step_end = _INF
    while t < horizon:
        seg_end = min(horizon, next_bday)
        rate = rate0 * age_mult
        if treated:
            if t < s:
                seg_end = min(seg_end, s)
            elif t < e:
                seg_end = min(seg_end, e)
                rate *= mult_during
            elif half_life > 0.0:
                if step < 0.0:
                    step = math.floor((t - e) / DAYS_PER_MONTH)
                    step_end = e + (step + 1.0) * DAYS_PER_MONTH
                    if step_end <= t:
                        step += 1.0
                        step_end += DAYS_PER_MONTH
                seg_end = min(seg_end, step_end)
                rate *= math.exp(lhr_after * 2.0 ** (-(step + 0.5) * DAYS_PER_MONTH / half_life))
            else:
                rate *= mult_after
        room = rate * (seg_end - t)
        if room >= target:
            return t + target / rate
        target -= room
        t = seg_end
        if t >= next_bday:
            next_bday += DAYS_PER_YEAR
            age_mult *= age_hr
        if t >= step_end:
            step += 1.0
            step_end += DAYS_PER_MONTH
    return _INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _entry_in_pieces(t, target, horizon, rate, treated, s, e, mult_during, mult_after):
    """_next_entry when the hazard is constant but for the treatment (no age effect, no
    waning): at most three pieces, with the same arithmetic, so the same result."""
    if not treated:
        if rate * (horizon - t) >= target:
            return t + target / rate
        return _INF
    while t < horizon:
        seg_end = horizon
        r = rate
        if t < s:
            seg_end = min(seg_end, s)
        elif t < e:
            seg_end = min(seg_end, e)
            r = rate * mult_during
        else:
            r = rate * mult_after
        room = r * (seg_end - t)
        if room >= target:
            return t + target / r
        target -= room
        t = seg_end
    return _INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _spell_end(t_in, n, key, first_stay, second_stay, exit_rate, horizon):
    """End of a care spell entered at t_in (the horizon at the latest): its length is
    draw n + 1 of the young person's care stream (n: the walk's draw counter), made in
    advance for their first two spells."""
    if exit_rate > 0.0:
        stay = first_stay if n == 0 else (second_stay if n == 2 else exponential(key, n + 1))
        return min(t_in + stay / exit_rate, horizon)
    return horizon


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _treated_hazard(r, s, e, h, rate0, mult_during, mult_after):
    """Cumulative treated entry hazard over [r, h) with no age effect and no waning."""
    before = max(min(s, h) - r, 0.0)
    during = max(min(e, h) - s, 0.0)
    after = max(h - e, 0.0)
    return rate0 * (before + mult_during * during + mult_after * after)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def first_entry(e0, t_ref, horizon, age0, rate0, age_hr, ref_age):
    """First untreated care entry after referral, for target e0 (losses from the waiting list)."""
    return _next_entry(t_ref, e0, horizon, t_ref, age0, rate0, age_hr,
                       ref_age, False, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0)


# --------------------------------------------------------------------------- money
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _add_baseline_days(track_a, track_b, width, baseline_q, edges, day_q, slope, part, cohort):
    """Baseline care days: child days times the baseline proportion of their tracking quarter."""
    w = 0.0
    for j in range(baseline_q.shape[0]):
        a = track_a + j * width
        if a >= track_b:
            break
        k, room = quarter_room(a, edges, day_q)
        bump_cohort(k, room, baseline_q[j] - w, cohort, slope, part)
        w = baseline_q[j]
    end = track_b   # one proportion covers the window; a list, only its own quarters
    if baseline_q.shape[0] > 1:
        end = min(track_b, track_a + baseline_q.shape[0] * width)
    k, room = quarter_room(end, edges, day_q)
    bump_cohort(k, room, -w, cohort, slope, part)


# Rows of _contract_and_finance's work array by_quarter (one a calendar quarter each).
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
def _contract_and_finance(prm, cfg, team_start, edges, cohort_days, event_counts,
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


# --------------------------------------------------------------------------- outcomes
@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _untreated_entry(n, first, t, target, rate, horizon):
    """The next entry into care under one constant untreated hazard (the first, n = 0,
    worked out ahead), or never (inf) before the horizon."""
    t_in = pick(n == 0, first, t + target / rate)
    return t_in if rate * (horizon - t) >= target else _INF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin_spell(a, b, track_b, k_b, room_b, edges, day_q, cohort, slope, part):
    """A care spell [a, b) into a cohort band; (k_b, room_b) is the window end's look-up,
    where most spells end."""
    k_in, room_in = quarter_room(a, edges, day_q)
    bump_cohort(k_in, room_in, 1.0, cohort, slope, part)
    if b == track_b:
        bump_cohort(k_b, room_b, -1.0, cohort, slope, part)
    else:
        k_out, room_out = quarter_room(b, edges, day_q)
        bump_cohort(k_out, room_out, -1.0, cohort, slope, part)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin_calendar_spell(a, b, track_b, k_b, room_b, edges, day_q, slope, part, col):
    """A care spell [a, b) into calendar quarters, column col."""
    slope_at(a, 1.0, edges, day_q, slope, part, col)
    if b == track_b:
        bump(k_b, room_b, -1.0, slope, part, col)
    else:
        slope_at(b, -1.0, edges, day_q, slope, part, col)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _weaker(kappa, hr, log_hr):
    """The hazard ratio hr with its log scaled by kappa (hr itself when kappa is 1)."""
    return hr if kappa == 1.0 else math.exp(kappa * log_hr)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _outcomes(prm, cfg, n_acc, status, noncompleted_c, female_c, ref_time, accept_t,
              start_t, end_t,
              disrupted, age0, prior, rate0, care_key, care_e0, care_x1, care_e2, care_x3,
              first_entry_t, baseline_q,
              event_months, cal_edges, day_q, first_year_a, first_year_b, out, qsr_out, cal_out,
              k_slope, q_slope, cohort_days, cohort_slope, event_counts, checks, in_care,
              lengths):
    """The accepted young people's outcomes after the capacity model: counts, waiting and
    caseload days, child days and care days (treated and counterfactual) in their
    tracking window. Under a contract, the baseline, treated and counterfactual care days
    by tracking cohort (cohort_days[CO_*], slope-binned with cohort_slope) and the outcome
    events, treated and counterfactual (event_counts[0], [1]; in_care likewise).
    Returns (started, total wait, total age). Compiled without reference counting: it
    allocates nothing, and numba's refcount pruning gives up on loops this large."""
    care_end_age = cfg[C_CARE_END_AGE]
    track_days = cfg[C_TRACKING_DAYS]
    track_from = int(cfg[C_TRACK_FROM])
    qsr_width = 3.0 * DAYS_PER_MONTH
    hr_during0 = prm[P_HR_DURING]
    hr_after0 = prm[P_HR_AFTER]
    lhr_during0 = math.log(hr_during0)
    lhr_after0 = math.log(hr_after0)
    # A weaker effect (kappa < 1: non-completed, disrupted or both) scales the log hazard
    # ratios. Three kappas a path, so the hazard ratios are worked out here, once, and
    # picked per young person without a branch.
    kappa_nc = prm[P_NONCOMPLETED_RETENTION]
    kappa_dis = prm[P_DISRUPTED_RETENTION]
    kappa_both = kappa_nc * kappa_dis
    during_nc = _weaker(kappa_nc, hr_during0, lhr_during0)
    during_dis = _weaker(kappa_dis, hr_during0, lhr_during0)
    during_both = _weaker(kappa_both, hr_during0, lhr_during0)
    after_nc = _weaker(kappa_nc, hr_after0, lhr_after0)
    after_dis = _weaker(kappa_dis, hr_after0, lhr_after0)
    after_both = _weaker(kappa_both, hr_after0, lhr_after0)
    half_life = prm[P_EFFECT_HALF_LIFE_DAYS]
    exit_rate = prm[P_EXIT_RATE] / DAYS_PER_YEAR
    age_hr = prm[P_AGE_HR]
    reentry_hr = prm[P_REENTRY_HR]
    ref_age = cfg[C_REFERENCE_AGE]
    has_contract = cfg[C_HAS_CONTRACT] > 0.5
    constant_pieces = age_hr == 1.0 and half_life <= 0.0
    single_baseline = baseline_q.shape[0] == 1
    n_cal = cal_edges.shape[0] - 1
    n_cohorts = cohort_days.shape[2]
    base_cq, base_slope = cohort_days[CO_BASELINE], cohort_slope[CO_BASELINE]
    care_cq, care_slope = cohort_days[CO_TREATED], cohort_slope[CO_TREATED]
    cf_cq, cf_slope = cohort_days[CO_COUNTERFACTUAL], cohort_slope[CO_COUNTERFACTUAL]
    n_events = event_months.shape[0]
    n_started = 0
    wait_sum = 0.0
    age_sum = 0.0
    # Totals over young people, kept in registers and written once: kept in out, each
    # add waited for the one before (the compiler cannot tell out from the other arrays).
    # The same adds in the same order, so the same sums.
    lost_wait = 0
    lost_care = 0
    lost_service_end = 0
    started_first_year = 0
    noncompleted_n = 0
    disrupted_n = 0
    female_n = 0
    prior_care_n = 0
    child_days = 0.0
    care_days_cf = 0.0
    care_days_tr = 0.0
    entered_cf = 0
    entered_tr = 0
    for c in range(n_acc):
        i = np.uint64(c)   # (unsigned: see the binning helpers)
        st = status[i]
        lost_wait += st == ST_LOST_WAIT
        lost_care += st == ST_LOST_CARE
        lost_service_end += st == ST_LOST_SERVICE_END
        if st != ST_STARTED:  # lost: waited from acceptance until leaving the list
            span(accept_t[i], end_t[i], 1.0, cal_edges, day_q, k_slope, cal_out, K_WAITING_DAYS)
            continue
        s = start_t[i]
        e = end_t[i]
        # waiting [acceptance, s) and caseload [s, e) share the look-up at s
        k_acc, room_acc = quarter_room(accept_t[i], cal_edges, day_q)
        k_s, room_s = quarter_room(s, cal_edges, day_q)
        k_e, room_e = quarter_room(e, cal_edges, day_q)
        w_wait = pick(s > accept_t[i], 1.0, 0.0)
        bump(k_acc, room_acc, w_wait, k_slope, cal_out, K_WAITING_DAYS)
        bump(k_s, room_s, -w_wait, k_slope, cal_out, K_WAITING_DAYS)
        bump(k_s, room_s, 1.0, k_slope, cal_out, K_CASELOAD_DAYS)
        bump(k_e, room_e, -1.0, k_slope, cal_out, K_CASELOAD_DAYS)
        lengths[n_started] = e - s
        n_started += 1
        wait_sum += s - accept_t[i]
        age_sum += age0[i]
        if s >= cal_edges[0] and k_s >= 0:
            cal_out[k_s, K_STARTED] += 1.0
        started_first_year += (first_year_a <= s) & (s < first_year_b)
        noncompleted = noncompleted_c[c]
        noncompleted_n += noncompleted
        disrupted_n += disrupted[i]
        nc = noncompleted
        dis = disrupted[i]
        kappa = pick(nc, pick(dis, kappa_both, kappa_nc), pick(dis, kappa_dis, 1.0))
        mult_during = pick(nc, pick(dis, during_both, during_nc), pick(dis, during_dis, hr_during0))
        mult_after = pick(nc, pick(dis, after_both, after_nc), pick(dis, after_dis, hr_after0))
        female_n += female_c[c]
        prior_care_n += prior[i]
        r = ref_time[i]
        track_a = r if track_from == 0 else (s if track_from == 1 else e)
        t18 = r + (care_end_age - age0[i]) * DAYS_PER_YEAR
        track_b = min(track_a + track_days, t18)
        horizon = track_b
        # child days (and baseline days, proportional to them) share the look-ups at
        # the window's two ends
        k_a, room_a = quarter_room(track_a, cal_edges, day_q)
        k_b, room_b = quarter_room(track_b, cal_edges, day_q)
        w_child = 0.0
        if track_b > track_a:
            w_child = 1.0
            child_days += track_b - track_a
            slope_at_since(0.0, 1.0, qsr_width, q_slope, qsr_out, Q_CHILD_DAYS)
            slope_at_since(track_b - track_a, -1.0, qsr_width, q_slope, qsr_out, Q_CHILD_DAYS)
            bump(k_a, room_a, 1.0, k_slope, cal_out, K_CHILD_DAYS)
            bump(k_b, room_b, -1.0, k_slope, cal_out, K_CHILD_DAYS)
        else:
            horizon = r
        for m in range(n_events):
            checks[m] = r + event_months[m] * DAYS_PER_MONTH
            in_care[0, m] = False
            in_care[1, m] = False
        cohort = 0
        if has_contract:
            # quarter_of(track_a), clamped (a window after the calendar bins nothing)
            cohort = min(pick(k_a >= 0, k_a, n_cal - 1), n_cohorts - 1)
            if single_baseline:
                bump_cohort(k_a, room_a, baseline_q[0] * w_child, cohort, base_slope, base_cq)
                bump_cohort(k_b, room_b, -baseline_q[0] * w_child, cohort, base_slope, base_cq)
            elif track_b > track_a:
                _add_baseline_days(track_a, track_b, qsr_width, baseline_q, cal_edges, day_q,
                                   base_slope, base_cq, cohort)
        # Care spells from referral to the horizon: the untreated counterfactual walk,
        # then the treated one, on the same draws (n = 0, 2, 4.. entry targets, 1, 3, 5..
        # spell lengths; draws 0 to 3 made in advance, in _young_people's vector loop).
        # The walks are written here, not in a function, because a call passing a dozen
        # arrays is costly in this loop; and written twice, not as one loop over the two
        # walks, because that loop's tests of which walk it was in were as costly.
        # Treatment without effect (hazard ratios of 1) walks by the counterfactual's rule,
        # so its spells are the counterfactual's to the last bit, and the payments at
        # hazard ratio 1 the no-effect payments exactly.
        no_effect = mult_during == 1.0 and mult_after == 1.0
        key = care_key[i]
        lhr_after = kappa * lhr_after0
        cf = 0.0
        tr = 0.0
        t = r
        n = 0
        rate = rate0[i]
        target = care_e0[i]
        while t < horizon:
            if constant_pieces:   # one constant hazard (the first entry worked out ahead)
                t_in = _untreated_entry(n, first_entry_t[i], t, target, rate, horizon)
            else:
                t_in = _next_entry(t, target, horizon, r, age0[i], rate, age_hr, ref_age,
                                   False, s, e, mult_during, mult_after, lhr_after, half_life)
            if t_in >= horizon:
                break
            t_out = _spell_end(t_in, n, key, care_x1[i], care_x3[i], exit_rate, horizon)
            n += 2
            for m in range(n_events):
                if t_in <= checks[m] < t_out:
                    in_care[1, m] = True
            a = max(t_in, track_a)
            b = min(t_out, track_b)
            if b > a:
                cf += b - a
                slope_at_since(a - track_a, 1.0, qsr_width, q_slope, qsr_out, Q_CARE_COUNTERFACTUAL)
                slope_at_since(b - track_a, -1.0, qsr_width, q_slope, qsr_out, Q_CARE_COUNTERFACTUAL)
                if has_contract:
                    _bin_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, cohort, cf_slope,
                               cf_cq)
                else:
                    _bin_calendar_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, k_slope,
                                        cal_out, K_CARE_COUNTERFACTUAL)
            t = t_out
            rate = rate0[i] * reentry_hr
            if t < horizon:
                target = care_e2[i] if n == 2 else exponential(key, n)
        # Most treated young people never enter care: the treated walk is skipped when
        # the whole treated hazard to the horizon (closed form if it is piecewise constant
        # in three pieces) stays below the first entry target.
        if no_effect or not (constant_pieces and (
                _treated_hazard(r, s, e, horizon, rate0[i], mult_during, mult_after)
                < care_e0[i])):
            t = r
            n = 0
            rate = rate0[i]
            target = care_e0[i]
            while t < horizon:
                if constant_pieces and no_effect:
                    t_in = _untreated_entry(n, first_entry_t[i], t, target, rate, horizon)
                elif constant_pieces:
                    t_in = _entry_in_pieces(t, target, horizon, rate, True, s, e,
                                            mult_during, mult_after)
                else:
                    t_in = _next_entry(t, target, horizon, r, age0[i], rate, age_hr, ref_age,
                                       not no_effect, s, e, mult_during, mult_after,
                                       lhr_after, half_life)
                if t_in >= horizon:
                    break
                t_out = _spell_end(t_in, n, key, care_x1[i], care_x3[i], exit_rate, horizon)
                n += 2
                for m in range(n_events):
                    if t_in <= checks[m] < t_out:
                        in_care[0, m] = True
                a = max(t_in, track_a)
                b = min(t_out, track_b)
                if b > a:
                    tr += b - a
                    slope_at_since(a - track_a, 1.0, qsr_width, q_slope, qsr_out, Q_CARE_TREATED)
                    slope_at_since(b - track_a, -1.0, qsr_width, q_slope, qsr_out, Q_CARE_TREATED)
                    # by cohort under a contract (arrays named in each call: choosing one
                    # at run time is costly too)
                    if has_contract:
                        _bin_spell(a, b, track_b, k_b, room_b, cal_edges, day_q, cohort,
                                   care_slope, care_cq)
                    else:
                        _bin_calendar_spell(a, b, track_b, k_b, room_b, cal_edges, day_q,
                                            k_slope, cal_out, K_CARE_TREATED)
                t = t_out
                rate = rate0[i] * reentry_hr
                if t < horizon:
                    target = care_e2[i] if n == 2 else exponential(key, n)
        for m in range(n_events):
            if checks[m] < horizon:
                if not in_care[0, m]:
                    count_at(checks[m], cal_edges, day_q, event_counts[0], m, 1.0)
                if not in_care[1, m]:
                    count_at(checks[m], cal_edges, day_q, event_counts[1], m, 1.0)
        care_days_cf += cf
        care_days_tr += tr
        entered_cf += cf > 0.0
        entered_tr += tr > 0.0
    out[O_LOST_WAIT] += lost_wait
    out[O_LOST_CARE] += lost_care
    out[O_LOST_SERVICE_END] += lost_service_end
    out[O_STARTED_FIRST_YEAR] += started_first_year
    out[O_NONCOMPLETED] += noncompleted_n
    out[O_DISRUPTED] += disrupted_n
    out[O_FEMALE] += female_n
    out[O_PRIOR_CARE] += prior_care_n
    out[O_CHILD_DAYS] += child_days
    out[O_CARE_DAYS_COUNTERFACTUAL] += care_days_cf
    out[O_CARE_DAYS_TREATED] += care_days_tr
    out[O_ENTERED_CARE_COUNTERFACTUAL] += entered_cf
    out[O_ENTERED_CARE_TREATED] += entered_tr
    return n_started, wait_sum, age_sum


# --------------------------------------------------------------------------- one path
# A path's kernels allocate nothing: their work arrays are cut from a workspace that
# each thread allocates once (four flat arrays, one per element type) and grows when a
# path needs more. Compiled without reference counting, a view of the workspace costs
# nothing. simulate_path's return value says whether the path was done.
PATH_DONE = 0
WORKSPACE_SMALL = 1   # the workspace was too small: grow it and simulate the path again
EVENTS_FULL = 2       # the staffing events did not fit: allow more and simulate it again
# a workspace's first size (float, int, unsigned, bool elements; room for about 1,200
# referrals in Essex) and room for staffing events; both double when a path needs more
WORKSPACE_FIRST = (1 << 15, 1 << 13, 1 << 12, 1 << 12)
EVENTS_FIRST = 64
REFERRAL_FLOAT_ROWS = 19   # float work rows a referral (simulate_path's wf)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take(buf, at, n):
    """n elements of the workspace array buf from offset at, and the offset after them.
    Past buf's end the view is short: the caller checks the offset before using it."""
    return buf[at:at + n], at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take2(buf, at, rows, cols):
    """_take as a (rows, cols) matrix (empty past buf's end)."""
    n = rows * cols
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, cols)), at + n
    return buf[at:at + n].reshape((rows, cols)), at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _take3(buf, at, n0, n1, n2):
    """_take as an (n0, n1, n2) array (empty past buf's end)."""
    n = n0 * n1 * n2
    if at + n > buf.shape[0]:
        return buf[:0].reshape((0, n1, n2)), at + n
    return buf[at:at + n].reshape((n0, n1, n2)), at + n


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def simulate_path(seed, path, prm, cfg, team_start0, team_size, team_weight, reason_cdf,
                  cal_edges, day_q, baseline_q, event_months, event_prices, call_schedule, out,
                  qsr_out, cal_out, reasons_out, ws_f, ws_i, ws_u, ws_b, ev_cap):
    """One path into its rows of the outputs (zeroed by the caller), its work arrays cut
    from the workspace ws_* (ev_cap: room for staffing events). Returns PATH_DONE, or
    WORKSPACE_SMALL or EVENTS_FULL, when the caller makes more room and calls again."""
    referrals_end = cfg[C_REFERRALS_END]
    service_end = cfg[C_SERVICE_END]
    limit = int(cfg[C_CASELOAD_LIMIT])
    n_teams = team_start0.shape[0]
    n_posts = 0
    for k in range(n_teams):
        n_posts += team_size[k]
    n_in_waiting = int(cfg[C_THERAPISTS_IN_WAITING])
    delay = prm[P_START_DELAY_MONTHS] * DAYS_PER_MONTH
    n_months = referral_months(team_start0, delay, referrals_end)
    n_cells = n_teams * n_months
    qsr_width = 3.0 * DAYS_PER_MONTH
    has_contract = cfg[C_HAS_CONTRACT] > 0.5
    n_cal = cal_edges.shape[0] - 1
    n_cohorts = int(cfg[C_COHORTS]) if has_contract else 0
    band = min(int(cfg[C_COHORT_QUARTERS]), n_cal) if has_contract else 0
    n_q = qsr_out.shape[0]
    n_events = event_months.shape[0]

    # ---- the work arrays of a fixed size, cut from the workspace (f: float, i: int,
    # u: unsigned, b: bool; each offset past its array's end means it is too small)
    f = 0
    i = 0
    u = 0
    b = 0
    team_start, f = _take(ws_f, f, n_teams)
    times, f = _take2(ws_f, f, 4, n_posts + n_in_waiting + 1)
    ev_t, f = _take(ws_f, f, ev_cap)
    count_work, f = _take2(ws_f, f, 5, n_cells)
    # days are slope-binned (see settle): cal_out and qsr_out hold the partial
    # contents, these the slopes; the cohort matrices the same by tracking cohort
    zeroed_from = f   # (the binning arrays, zeroed together below: one flat fill)
    k_slope, f = _take2(ws_f, f, n_cal, N_K)
    q_slope, f = _take2(ws_f, f, n_q, N_Q)
    cohort_days, f = _take3(ws_f, f, N_CO, band, n_cohorts)  # care days by cohort (CO_*; band: see bump_cohort)
    cohort_slope, f = _take3(ws_f, f, N_CO, band, n_cohorts)
    event_counts, f = _take3(ws_f, f, 2, n_cal, n_events)     # treated, counterfactual
    zeroed_to = f
    checks, f = _take(ws_f, f, n_events)
    by_quarter, f = _take2(ws_f, f, N_BQ, n_cal)
    lines, f = _take2(ws_f, f, n_cal, W.N_LINES)
    payment_work, f = _take(ws_f, f, W.payment_work_size(band, n_cohorts, n_cal))
    posts, i = _take2(ws_i, i, 2, n_posts)
    ev_p, i = _take(ws_i, i, ev_cap)
    ev_k, i = _take(ws_i, i, ev_cap)
    counts, i = _take2(ws_i, i, n_teams, n_months)
    count_work_int, i = _take2(ws_i, i, 3, n_cells)
    caseload, i = _take(ws_i, i, n_posts)
    median_counts, i = _take(ws_i, i, MEDIAN_BINS)
    post_keys, u = _take(ws_u, u, n_posts)
    cell_keys, u = _take(ws_u, u, n_cells)
    cell_accepted, b = _take(ws_b, b, n_cells)
    staffed, b = _take(ws_b, b, n_posts)
    in_care, b = _take2(ws_b, b, 2, n_events)
    if f > ws_f.shape[0] or i > ws_i.shape[0] or u > ws_u.shape[0] or b > ws_b.shape[0]:
        return WORKSPACE_SMALL

    first_year_a = _INF
    for k in range(n_teams):
        team_start[k] = team_start0[k] + delay
        first_year_a = min(first_year_a, team_start[k])
    first_year_b = first_year_a + DAYS_PER_YEAR

    # ---- workforce
    n_ev = simulate_workforce(seed, path, prm, team_start, team_size, n_in_waiting, service_end,
                              cal_edges, cal_out, out, posts, times, post_keys, ev_t, ev_p, ev_k)
    if n_ev < 0:
        return EVENTS_FULL
    ev_t = ev_t[:n_ev]
    ev_p = ev_p[:n_ev]
    ev_k = ev_k[:n_ev]
    post_team = posts[0]
    out[O_THERAPIST_DAYS] = cal_out[:, K_THERAPIST_DAYS].sum()

    # ---- referrals and screening
    count_referrals(seed, path, prm, team_start, team_weight, referrals_end, counts, count_work,
                    count_work_int, cell_keys, cell_accepted)
    n_ref = counts.sum()
    # The per-referral work arrays are rows of four matrices, one per element type
    # (each row keeps the length the kernels read: n_ref, n_acc or n_acc + 1, all at
    # most n_ref + 1). After screening, every array is the accepted young people's, in
    # order: no kernel after _referrals goes through an index of referrals.
    wf, f = _take2(ws_f, f, REFERRAL_FLOAT_ROWS, n_ref + 1)
    wi, i = _take2(ws_i, i, 7, n_ref + 1)
    wu, u = _take2(ws_u, u, 3, n_ref + 1)
    wb, b = _take2(ws_b, b, 5, n_ref + 1)
    if f > ws_f.shape[0] or i > ws_i.shape[0] or u > ws_u.shape[0] or b > ws_b.shape[0]:
        return WORKSPACE_SMALL
    wb[:] = False
    acc_team = wi[3, :n_ref]
    acc_time = wf[2, :n_ref]   # referral times, and so on: of the accepted, in order
    acc_key = wu[1, :n_ref]
    accept_t = wf[3, :n_ref]
    n_acc = _referrals(seed, path, prm, counts, team_start, referrals_end, first_year_a,
                       first_year_b, cal_edges, day_q, reason_cdf, wi[0, :n_ref], wf[0, :n_ref],
                       wu[0, :n_ref], acc_team, acc_time, acc_key, accept_t, wi[1, :n_ref],
                       wi[2, :n_ref], wf[1, :n_ref], out, cal_out, reasons_out)
    acc_team = acc_team[:n_acc]
    acc_time = acc_time[:n_acc]
    accept_t = accept_t[:n_acc]

    # ---- young people (fixed draw numbers in each referral's stream, so draws never shift).
    # Drawn in one branch-free pass, before the event logic that uses them, so the
    # latency of log, exp and the normal quantile overlaps across young people.
    age0 = wf[4, :n_acc]
    prior = wb[0, :n_acc]
    rate0 = wf[5, :n_acc]
    care_key = wu[2, :n_acc]
    care_e0 = wf[6, :n_acc]   # first care-entry target: shared by the wait and both walks
    care_x1 = wf[7, :n_acc]   # first spell-length draw: shared by both walks
    care_e2 = wf[8, :n_acc]   # second entry target and spell length: the same
    care_x3 = wf[9, :n_acc]
    length = wf[10, :n_acc]   # treatment length, if treatment starts
    noncompleted = wb[1, :n_acc]
    female = wb[2, :n_acc]
    _young_people(prm, cfg, n_acc, acc_key[:n_acc], acc_time, age0, prior, rate0, care_key,
                  care_e0, care_x1, care_e2, care_x3, length, noncompleted, female)

    # ---- capacity: each team's FIFO waiting list and caseloads
    status = wi[4, :n_acc]
    start_t = wf[11, :n_acc]
    end_t = wf[12, :n_acc]
    start_t[:] = _INF
    end_t[:] = _INF
    disrupted = wb[3, :n_acc]
    max_wait = prm[P_MAX_WAIT_DAYS]
    care_end_age = cfg[C_CARE_END_AGE]
    deadline = wf[13, :n_acc]
    lost_to_care = wb[4, :n_acc]
    open_end = wf[14, :n_acc + 1]
    open_case = wi[5, :n_acc + 1]
    open_post = wi[6, :n_acc + 1]
    joins = wf[15, :n_acc + 1]
    first_entry_t = wf[18, :n_acc]
    _waiting_deadlines(n_acc, accept_t, acc_time, age0, rate0, care_e0, prm, cfg, max_wait,
                       care_end_age, deadline, lost_to_care, first_entry_t)
    # the accepted young people come team by team (see _referrals): a team's are a range
    team_end = 0
    for k in range(n_teams):
        team_begin = team_end
        team_end = _team_end(acc_team, team_begin, n_acc, k)
        _run_team(k, team_begin, team_end, accept_t, status, start_t, end_t, disrupted,
                  length, ev_t, ev_p, ev_k, post_team, limit, service_end, joins, deadline,
                  lost_to_care, staffed, caseload, open_end, open_case, open_post)

    # ---- outcomes for everyone who started
    ws_f[zeroed_from:zeroed_to] = 0.0   # k_slope to event_counts
    in_care[:] = False
    lengths = wf[16, :n_acc]
    n_started, wait_sum, age_sum = _outcomes(
        prm, cfg, n_acc, status, noncompleted, female, acc_time, accept_t, start_t,
        end_t, disrupted, age0, prior, rate0, care_key, care_e0, care_x1, care_e2, care_x3,
        first_entry_t, baseline_q, event_months,
        cal_edges, day_q, first_year_a, first_year_b, out, qsr_out, cal_out, k_slope, q_slope,
        cohort_days, cohort_slope, event_counts, checks, in_care, lengths)
    settle(cal_edges, 0.0, k_slope, cal_out)
    settle(cal_edges[:0], qsr_width, q_slope, qsr_out)
    if has_contract:
        for co in range(N_CO):
            settle_cohorts(cal_edges, cohort_slope[co], cohort_days[co])
        _contract_and_finance(prm, cfg, team_start, cal_edges, cohort_days, event_counts,
                              event_prices, call_schedule, out, cal_out, by_quarter, lines,
                              payment_work)
    out[O_ACCEPTED] = n_ref - out[O_REJECTED]
    out[O_STARTED] = n_started
    out[O_COMPLETED] = n_started - out[O_NONCOMPLETED]
    if n_started > 0:
        short = 0
        for c in range(n_started):
            short += lengths[c] < prm[P_SHORT_THRESHOLD_DAYS]
        out[O_SHARE_UNDER_THRESHOLD] = short / n_started
        out[O_TREATMENT_DAYS_MEDIAN] = median_binned(
            lengths, n_started, cfg[C_MIN_TREATMENT_DAYS], cfg[C_MAX_TREATMENT_DAYS],
            median_counts, wf[17])
        out[O_MEAN_WAIT_DAYS] = wait_sum / n_started
        out[O_MEAN_AGE] = age_sum / n_started
    else:
        out[O_TREATMENT_DAYS_MEDIAN] = np.nan
        out[O_SHARE_UNDER_THRESHOLD] = np.nan
        out[O_MEAN_WAIT_DAYS] = np.nan
        out[O_MEAN_AGE] = np.nan
    return PATH_DONE


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _select(a, lo, hi, k):
    """Move the k-th smallest of a[lo:hi] to a[k], smaller values before it: quickselect
    with branch-free partitions (whether a value is below the pivot is a coin toss)."""
    while hi - lo > 1:
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        i = lo
        for j in range(lo, hi):  # a[lo:i] < pivot <= a[i:j]
            v = a[j]
            a[j] = a[i]
            a[i] = v
            i += v < pivot
        if k < i:
            hi = i
            continue
        m = i
        for j in range(i, hi):  # a[i:m] == pivot < a[m:j]
            v = a[j]
            a[j] = a[m]
            a[m] = v
            m += v <= pivot
        if k < m:
            return
        lo = m


MEDIAN_BINS = 64


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _bin(x, lo, scale, top):
    """x's bin of width 1 / scale from lo, the end bins taking what lies outside: monotone
    in x, so every value of a bin lies between those of the bins either side."""
    return int(min(max((x - lo) * scale, 0.0), top))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def median_binned(a, n, lo, hi, counts, work):
    """np.median(a[:n]) (n > 0) for values that mostly lie in [lo, hi] (any are right): count
    them into len(counts) bins, then select the middle among those in the bin or two that
    hold it, copied to ``work`` (room for n). Two passes over a, where quickselect on all of
    them made about five; a is left as it was."""
    nb = counts.shape[0]
    for b in range(nb):
        counts[b] = 0
    scale = nb / (hi - lo) if hi > lo else 0.0
    top = nb - 1.0
    for c in range(n):
        counts[_bin(a[c], lo, scale, top)] += 1
    h = n // 2
    first = h if n % 2 else h - 1   # the lower of the middle ranks (the same if n is odd)
    below = 0                       # values in the bins before b
    b_first = -1
    below_first = 0
    b_h = nb - 1
    for b in range(nb):
        if b_first < 0 and below + counts[b] > first:
            b_first = b
            below_first = below
        if below + counts[b] > h:
            b_h = b
            break
        below += counts[b]
    m = 0
    for c in range(n):   # branch-free: which values are kept is a coin toss
        x = a[c]
        b = _bin(x, lo, scale, top)
        work[m] = x
        m += (b_first <= b) & (b <= b_h)
    k = h - below_first             # rank h among the values kept
    _select(work, 0, m, k)
    if n % 2:
        return work[k]
    low = work[0]
    for c in range(1, k):  # the largest below it: rank h - 1
        low = max(low, work[c])
    return (low + work[k]) / 2.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _categorical(u, cdf):
    """Index of the category whose cumulative share first exceeds u (a handful of
    categories: a branch-free count of the shares passed)."""
    i = 0
    for j in range(cdf.shape[0]):
        i += cdf[j] <= u
    return min(i, cdf.shape[0] - 1)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _first_to_end(open_end, n_open):
    """Index of the open case that ends first (-1 if none): a branch-free scan of a few cases."""
    which = -1
    best = _INF
    for c in range(n_open):
        earlier = open_end[c] < best
        best = open_end[c] if earlier else best
        which = c if earlier else which
    return which


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False, inline="always")
def _best_post(p0, n, staffed, caseload, limit, exclude):
    """Staffed post with the fewest cases (below ``limit``), lowest index on ties; -1 if none."""
    best = -1
    fewest = limit   # branch-free scan: which post wins is not predictable
    for p in range(p0, p0 + n):
        up = np.uint64(p)   # (unsigned: see the binning helpers)
        better = staffed[up] & (p != exclude) & (caseload[up] < fewest)
        best = p if better else best
        fewest = caseload[up] if better else fewest
    return best


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _waiting_deadlines(n_acc, accept_t, ref_time, age0, rate0, care_e0, prm, cfg, max_wait,
                       care_end_age, deadline, lost_to_care, first_entry_t):
    """When each young person would leave a waiting list: at the longest wait, or on
    entering care first (their untreated first entry; lost_to_care says which). For all
    of them at once, before the capacity loops: under one constant hazard, a loop of
    arithmetic only, which vectorises; it also gives the untreated walk its first
    entry time (first_entry_t, with no horizon: written under one constant hazard only)."""
    age_hr = prm[P_AGE_HR]
    ref_age = cfg[C_REFERENCE_AGE]
    if age_hr == 1.0:   # first_entry under one constant hazard, without a branch
        for c in range(n_acc):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            r = ref_time[c]
            enters = rate0[c] * (min(d_wait, t18) - r) >= care_e0[c]
            first_entry_t[c] = r + care_e0[c] / rate0[c]
            d_care = pick(enters, first_entry_t[c], _INF)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)
    else:
        for c in range(n_acc):
            d_wait = accept_t[c] + max_wait
            t18 = ref_time[c] + (care_end_age - age0[c]) * DAYS_PER_YEAR
            d_care = first_entry(care_e0[c], ref_time[c], min(d_wait, t18), age0[c], rate0[c],
                                 age_hr, ref_age)
            lost_to_care[c] = d_care < d_wait
            deadline[c] = min(d_wait, d_care)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _team_end(acc_team, begin, n, k):
    """The end of team k's range of accepted young people, which starts at ``begin``
    (acc_team[:n] is in team order): a bisection."""
    lo = begin
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if acc_team[np.uint64(mid)] <= k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def _run_team(k, begin, end, accept_t, status, start_t, end_t, disrupted, length,
              ev_t, ev_p, ev_k, post_team, limit, service_end, joins, deadline, lost_to_care,
              staffed, caseload, open_end, open_case, open_post):
    """One team in event order: acceptances join a FIFO list; starts fill free places.

    The team's young people are the accepted ones begin .. end - 1 (in order). A
    waiting young person is lost when the wait passes ``max_wait`` or they enter care
    first (their untreated first entry: ``deadline`` and ``lost_to_care`` say which
    comes first), or when the service ends. A leaver's open cases move to the
    least-loaded staffed colleagues (over the limit if need be) and are marked
    disrupted. The work arrays after lost_to_care are the caller's (sized for all
    accepted referrals), so that this kernel allocates nothing and runs without
    reference counting.
    """
    m = end - begin
    for c in range(m):
        joins[c] = accept_t[np.uint64(begin + c)]
    joins[m] = _INF   # after the last to join
    n_posts = post_team.shape[0]
    p0 = n_posts
    n_team_posts = 0
    for p in range(n_posts):
        if post_team[p] == k:
            p0 = min(p0, p)
            n_team_posts += 1
    for p in range(n_posts):
        staffed[p] = False
        caseload[p] = 0
    # open cases (open_end, open_case, open_post), unordered: end time, young person, post
    n_open = 0
    n_ev = ev_t.shape[0]
    ei = 0
    while ei < n_ev and post_team[ev_p[ei]] != k:
        ei += 1
    joined = 0
    head = 0
    which = -1  # open case that ends first
    while True:
        t_acc = joins[np.uint64(joined)]
        t_ev = ev_t[ei] if ei < n_ev else _INF
        t_end = open_end[which] if which >= 0 else _INF
        t = min(t_acc, t_ev, t_end)
        if t == _INF:
            break
        if which >= 0 and t_end <= t_ev and t_end <= t_acc:
            caseload[np.uint64(open_post[which])] -= 1
            n_open -= 1
            open_end[which] = open_end[n_open]
            open_case[which] = open_case[n_open]
            open_post[which] = open_post[n_open]
            which = _first_to_end(open_end, n_open)
        elif t_ev <= t_acc:
            p = ev_p[ei]
            if ev_k[ei] == EV_LEAVE:
                staffed[p] = False
                for c in range(n_open):
                    if open_post[c] == p:
                        disrupted[open_case[c]] = True
                        q = _best_post(p0, n_team_posts, staffed, caseload, 1 << 30, p)
                        if q >= 0:
                            caseload[p] -= 1
                            caseload[q] += 1
                            open_post[c] = q
            else:
                staffed[p] = True
            ei += 1
            while ei < n_ev and post_team[ev_p[ei]] != k:
                ei += 1
        else:
            joined += 1
        while head < joined:
            i = np.uint64(begin + head)
            if t >= service_end:  # whoever still waits is lost, to the deadline met first
                lost_first = deadline[i] < service_end
                status[i] = ST_LOST_SERVICE_END if not lost_first else (
                    ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT)
                end_t[i] = min(deadline[i], service_end)  # left the waiting list
                head += 1
                continue
            if deadline[i] < t:
                status[i] = ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT
                end_t[i] = deadline[i]
                head += 1
                continue
            q = _best_post(p0, n_team_posts, staffed, caseload, limit, -1)
            if q < 0:
                break
            start_t[i] = t
            end_t[i] = t + length[i]
            status[i] = ST_STARTED
            caseload[q] += 1
            open_end[n_open] = end_t[i]
            open_case[n_open] = i
            open_post[n_open] = q
            if which < 0 or end_t[i] < open_end[which]:
                which = n_open
            n_open += 1
            head += 1
    for c in range(head, m):
        i = np.uint64(begin + c)
        if deadline[i] < service_end:
            status[i] = ST_LOST_CARE if lost_to_care[i] else ST_LOST_WAIT
        else:
            status[i] = ST_LOST_SERVICE_END
        end_t[i] = min(deadline[i], service_end)


# --------------------------------------------------------------------------- many paths
@intrinsic
def _fetch_add(typingctx, counter, n):
    """Atomically add n to counter[0]; returns its value before (threads share it)."""
    if counter != types.Array(types.int64, 1, "C") or not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                       [context.get_constant(types.intp, 0)])
        add = context.cast(builder, args[1], signature.args[1], types.int64)
        return builder.atomic_rmw("add", ptr, add, "monotonic")
    return types.int64(counter, n), codegen


PATHS_PER_TAKE = 8
# more than any machine's threads: each thread's first worker takes paths until none are
# left, and its other workers then find none
WORKERS = 1024


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
def simulate_chunk(seed, path_start, params, cfg, team_start, team_size, team_weight,
                   reason_cdf, cal_edges, baseline_q, event_months, event_prices, call_schedule,
                   out, qsr_out, cal_out, reasons_out, totals_out):
    """Simulate paths path_start .. path_start + len(params) - 1 into the outputs, and each
    path's totals for the reconciliation checks (path_totals) into totals_out, read
    from its outputs just written (while they are in the cache, rather than in a pass
    over the finished arrays afterwards).

    Each path zeroes and then writes only its own rows, so the result is the same
    for any number of threads, any split of paths into chunks and whatever the
    output memory held before. Threads take paths a few at a time from a shared
    counter, rather than half each: on a shared machine one core can run slower than
    the other for a while, and a fixed half would leave the faster one waiting.
    """
    day_q = day_quarters(cal_edges)
    n = params.shape[0]
    taken = np.zeros(1, np.int64)
    # each worker's workspace starts as these (empty: most workers find no paths) and
    # grows to what its paths need
    no_f = np.empty(0)
    no_i = np.empty(0, np.int64)
    no_u = np.empty(0, np.uint64)
    no_b = np.empty(0, np.bool_)
    for _ in prange(WORKERS):
        ws_f, ws_i, ws_u, ws_b = no_f, no_i, no_u, no_b
        ev_cap = EVENTS_FIRST
        while True:
            a = _fetch_add(taken, PATHS_PER_TAKE)
            if a >= n:
                break
            for i in range(a, min(a + PATHS_PER_TAKE, n)):
                while True:
                    out[i] = 0.0
                    qsr_out[i] = 0.0
                    cal_out[i] = 0.0
                    reasons_out[i] = 0.0
                    done = simulate_path(seed, path_start + i, params[i], cfg, team_start,
                                         team_size, team_weight, reason_cdf, cal_edges, day_q,
                                         baseline_q, event_months, event_prices,
                                         call_schedule, out[i],
                                         qsr_out[i], cal_out[i], reasons_out[i], ws_f, ws_i,
                                         ws_u, ws_b, ev_cap)
                    if done == PATH_DONE:
                        path_totals(cal_out[i], qsr_out[i], totals_out[i])
                        break
                    if done == EVENTS_FULL:
                        ev_cap *= 2
                    else:
                        ws_f = np.empty(max(2 * ws_f.shape[0], WORKSPACE_FIRST[0]))
                        ws_i = np.empty(max(2 * ws_i.shape[0], WORKSPACE_FIRST[1]), np.int64)
                        ws_u = np.empty(max(2 * ws_u.shape[0], WORKSPACE_FIRST[2]), np.uint64)
                        ws_b = np.empty(max(2 * ws_b.shape[0], WORKSPACE_FIRST[3]), np.bool_)


# --------------------------------------------------------------------------- reconciliation


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def path_totals(c, s, row):
    """One path's totals for the reconciliation checks (columns T_*) into ``row``, from its
    calendar-quarter (c) and tracking-quarter (s) outputs."""
    row[:] = 0.0
    opening = 0.0
    worst = 0.0
    for q in range(c.shape[0]):
        row[T_CHILD_DAYS] += c[q, K_CHILD_DAYS]
        row[T_CARE_TREATED] += c[q, K_CARE_TREATED]
        row[T_CARE_COUNTERFACTUAL] += c[q, K_CARE_COUNTERFACTUAL]
        closing = c[q, K_SPV_BALANCE]
        imbalance = (c[q, K_CAPITAL_CALLS] + c[q, K_OUTCOME_PAYMENTS] - c[q, K_COSTS_PAID]
                     - c[q, K_DISTRIBUTIONS_INVESTORS] - c[q, K_DISTRIBUTIONS_PROVIDER]
                     - (closing - opening))
        worst = max(worst, abs(imbalance))
        opening = closing
    row[T_CASH_IMBALANCE] = worst
    excess = -np.inf
    for q in range(s.shape[0]):
        row[T_QSR_CHILD_DAYS] += s[q, Q_CHILD_DAYS]
        excess = max(excess, s[q, Q_CARE_TREATED] - s[q, Q_CHILD_DAYS],
                     s[q, Q_CARE_COUNTERFACTUAL] - s[q, Q_CHILD_DAYS])
    row[T_CARE_OVER_CHILD] = excess


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", parallel=True)
def conservation_totals(cal, qsr):
    """Per path, the totals the reconciliation checks compare (columns T_*), from finished
    output arrays (simulate_chunk works them out as it goes; this is for outputs from
    elsewhere), on all cores."""
    n = cal.shape[0]
    totals = np.zeros((n, N_T))
    for i in prange(n):
        path_totals(cal[i], qsr[i], totals[i])
    return totals
