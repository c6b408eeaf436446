"""Branch-free arithmetic: log, exp and the normal quantile written out in arithmetic and
bit operations, and a select, so that loops over many draws compile to vector
instructions (libm's scalar calls cannot be vectorised without SVML, which the PyPI
llvmlite lacks)."""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .cache import FASTMATH, path_kernel

INF = np.inf


# Same algorithms as fdlibm's log and exp (within one ulp of libm) and the same Acklam
# quantile as rng.norm_ppf. For finite inputs: batch_log clamps x up to the smallest
# normal number, batch_exp to [-708, 709].
@intrinsic
def _float_bits(typingctx, x):
    """The bits of a float64, as an int64 (a reinterpretation, not a conversion)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def bits_float(typingctx, b):
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
    f = bits_float((b & _MANTISSA) + _SQRT_HALF_BITS) - 1.0
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
    return bits_float(_float_bits(y) + (np.int64(k) << 52))


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


@path_kernel
def pick(c, a, b):
    """a if c else b, as a call the compiler turns into a select. Written inline, the
    branch it makes can stop numba pruning reference counts of arrays in the caller's
    loop (an atomic incref and decref per array per iteration)."""
    return a if c else b
