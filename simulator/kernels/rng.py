"""Counter-based random numbers (SplitMix64): every draw is a pure function of (seed,
stream, path, entity, draw number), so results do not depend on threads or chunks, and
scenarios that differ in one parameter share their draws. Uniforms, exponentials, the
normal quantile and truncated normals, gamma and Poisson draws, and the per-path
uniforms of the uncertain parameters."""
import math

import numpy as np
from numba import njit, prange

from ..layout import S_PARAMS
from .cache import FASTMATH, INNER
from .vector import batch_log, batch_norm_ppf, bits_float, pick

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def subkey(key, x):
    """Key of entity ``x`` inside the stream identified by ``key``."""
    return _mix64(key ^ _mix64(np.uint64(x) + _GOLDEN))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
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
    return bits_float(low) - pick(z >> np.uint64(63) != np.uint64(0), 0.0, _TWO52)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def exponential(key, n):
    """The n-th unit exponential of a stream. By batch_log (defined below; within an ulp
    of libm's): a call to libm in a care walk makes the compiler save and restore the
    walk's registers around it."""
    return -batch_log(uniform(key, n))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def norm_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
def norm_ppf(p):
    """Inverse standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9)."""
    a1, a2, a3 = -3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02
    a4, a5, a6 = 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00
    b1, b2, b3 = -5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02
    b4, b5 = 6.680131188771972e01, -1.328068155288572e01
    c1, c2, c3 = -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00
    c4, c5, c6 = -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00
    d1, d2 = 7.784695709041462e-03, 3.224671290700398e-01
    d3, d4 = 2.445134137142996e00, 3.754408661907416e00
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
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
def truncated_std_normal(u, law):
    """The standard normal truncated as ``law`` (truncation's tuple) says, at uniform u
    (increasing in u; branch-free, so that a loop of draws vectorises)."""
    sign, plo, phi, flip, no_mass, z_near = law
    z = sign * batch_norm_ppf(plo + pick(flip, 1.0 - u, u) * (phi - plo))
    return pick(no_mass, z_near, z)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", **INNER)
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
