"""Small kernel helpers checked against numpy and scipy: the binned median, the
branch-free pick, the batch log, exp and normal quantile, compound growth, and the
sharing out of paths among threads."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numba import njit
from scipy.special import ndtri

from simulator import layout as L
from simulator.kernels import contract, referrals, rng, treatment, vector, workforce
from simulator.kernels.calls import from_python
from simulator.kernels.chunk import PATHS_PER_TAKE, take_paths
from simulator.kernels.referrals import SORT_MERGE_FROM
from simulator.kernels.rng import _poisson_inversion, _u53_float, uniform
from simulator.kernels.treatment import MEDIAN_BINS
from simulator.kernels.vector import batch_exp, batch_log, batch_norm_ppf

# kernels other kernels call, callable from here
compounded, pick = from_python(contract.compounded), from_python(vector.pick)
_poisson_inversions = from_python(referrals._poisson_inversions)
_sort_month, _sort_events = from_python(referrals._sort_month), from_python(workforce._sort_events)
norm_ppf, median_binned = from_python(rng.norm_ppf), from_python(treatment.median_binned)


def test_pick():
    assert pick(True, 1.5, 2.5) == 1.5
    assert pick(False, 1.5, 2.5) == 2.5


def _splitmix(z):
    """SplitMix64's finaliser in Python integers (the kernels' _mix64)."""
    mask = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


@njit(cache=False)
def _uniforms(keys, n):
    out = np.empty(keys.shape[0])
    for i in range(keys.shape[0]):   # a loop the compiler vectorises, as in the kernels
        out[i] = uniform(keys[i], n)
    return out


def test_uniform_is_the_top_53_bits_of_the_hash_plus_a_half_over_2_to_the_53():
    # the integer-to-float conversion is written in bit operations (it vectorises on AVX2):
    # exact for every 53-bit value, the ends and both halves of the range included
    for z in (0, 1 << 11, (1 << 63) - 1, 1 << 63, (1 << 63) + (1 << 11), (1 << 64) - 1,
              (1 << 64) - (1 << 11), 0x123456789ABCDEF0, 0xFEDCBA9876543210):
        assert _u53_float(np.uint64(z)) == float(z >> 11)
    rng = np.random.default_rng(11)
    keys = rng.integers(0, 2 ** 63, 4000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    for n in (0, 5):
        ours = _uniforms(keys, n)
        exact = [((_splitmix((int(k) + 0x9E3779B97F4A7C15 * (n + 1)) & ((1 << 64) - 1)) >> 11)
                  + 0.5) / 2.0 ** 53 for k in keys]
        assert np.array_equal(ours, exact)
        assert 0.0 < ours.min() and ours.max() < 1.0


def _ulps(ours, exact):
    return np.abs(ours - exact) / np.spacing(np.abs(exact))


def test_batch_log_within_one_ulp_of_libm():
    rng = np.random.default_rng(5)
    # uniforms as the kernels make them (the smallest is 2**-54), and values far from 1
    x = np.concatenate([rng.random(5000), 2.0 ** -rng.uniform(0, 54, 2000),
                        rng.uniform(1, 1e6, 2000), [2.0 ** -54, 0.5, 1.0, 1.0 - 2.0 ** -53, 2.0]])
    ours = np.array([batch_log(v) for v in x])
    exact = np.log(x)
    assert ours[np.flatnonzero(x == 1.0)[0]] == 0.0
    nonzero = exact != 0.0
    assert _ulps(ours[nonzero], exact[nonzero]).max() <= 1.0
    # below the normal range: clamped to the smallest normal, finite rather than -inf
    tiny = np.finfo(float).tiny
    for x0 in (0.0, 5e-324, tiny / 4):
        assert batch_log(x0) == batch_log(tiny) == pytest.approx(math.log(tiny))


def test_batch_exp_within_one_ulp_of_libm_and_clamped():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-30, 30, 5000), rng.uniform(-700, 700, 2000),
                        [0.0, math.log(2.0) / 2, -708.0, 709.0]])
    ours = np.array([batch_exp(v) for v in x])
    assert _ulps(ours, np.exp(x)).max() <= 1.0
    assert batch_exp(0.0) == 1.0
    assert batch_exp(1000.0) == batch_exp(709.0)   # clamped, not inf or garbage


def test_batch_norm_ppf_agrees_with_scalar_and_scipy():
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.random(5000), rng.random(2000) * 0.03, 1.0 - rng.random(2000) * 0.03,
                        [2.0 ** -54, 0.02425, 0.5, 1.0 - 0.02425, 1.0 - 2.0 ** -53]])
    ours = np.array([batch_norm_ppf(v) for v in p])
    scalar = np.array([norm_ppf(v) for v in p])
    # the same formulas, equal to rounding: the compiler may fuse a multiply and an add
    # differently in the two (kernels.cache.FASTMATH), and the central rational function's
    # alternating terms magnify that to ~1e-14 relative; Acklam's own error is 1.2e-9
    assert np.all(np.abs(ours - scalar) <= 1e-12 * np.abs(scalar))
    assert np.abs(ours - scalar).max() < 1e-13
    exact = ndtri(p)
    assert np.all(np.abs(ours - exact) <= 1.2e-9 * np.abs(exact) + 1e-15)  # Acklam's bound


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.035, -0.5, 0.25])
def test_compounded_matches_pow_at_quarter_midpoints(rate):
    # quarter edges in days from the contract start; the first quarter opens before it
    edges = np.array([-30.0, 61.0, 151.0, 243.0, 335.0, 426.0, 3000.0, 3091.0])
    out = np.empty(edges.shape[0] - 1)
    compounded(rate, edges, out)
    mid = np.maximum(0.5 * (edges[:-1] + edges[1:]), 0.0)
    exact = (1.0 + rate) ** (mid / L.DAYS_PER_YEAR)
    assert np.allclose(out, exact, rtol=1e-14, atol=0.0)
    if rate == 0.0:
        assert np.all(out == 1.0)


def test_poisson_inversions_in_lock_step_match_one_at_a_time():
    rng = np.random.default_rng(12)
    lam = np.concatenate([rng.uniform(0.0, 30.0, 3000), rng.uniform(0.0, 0.01, 200),
                          [0.0, -1.0, 29.999, 30.0, 45.0, 1e-300]])
    u = np.concatenate([rng.random(lam.size - 6),
                        [0.5, 0.5, 1.0 - 2.0 ** -53, 0.5, 0.5, 2.0 ** -54]])
    u[:50] = 1.0 - 2.0 ** -53      # far tails: the loop runs until p underflows or the cdf stops
    n = lam.size
    p = np.exp(-np.maximum(lam, 0.0))
    counts = np.full(n + 3, -7, np.int64)           # longer than n: only n are written
    _poisson_inversions(u, lam, p.copy(), np.empty(n), counts, n)
    expected = [_poisson_inversion(u[m], lam[m], p[m]) if 0.0 < lam[m] < 30.0 else 0
                for m in range(n)]
    assert np.array_equal(counts[:n], expected)
    assert np.all(counts[n:] == -7)


def test_sort_events_is_a_stable_sort_by_time():
    rng = np.random.default_rng(13)
    for n in (0, 1, 2, 9, 40):
        t = np.round(rng.uniform(0, 10, n + 4))     # ties, and room after n
        t[:n] = np.sort(t[:n])
        if n > 3:
            t[[1, n - 2]] = t[[n - 2, 1]]          # nearly sorted, as the event loop makes them
        p = np.arange(n + 4)
        k = p % 2
        order = np.argsort(t[:n], kind="stable")
        want = t[:n][order], p[:n][order], k[:n][order]
        tail = t[n:].copy()
        _sort_events(t, p, k, n)
        assert np.array_equal(t[:n], want[0]) and np.array_equal(p[:n], want[1])
        assert np.array_equal(k[:n], want[2]) and np.array_equal(t[n:], tail)


@njit(nogil=True)
def _claim(taken, claims, per_take):
    """simulate_chunk's way of sharing out paths, counting how often each is claimed."""
    while True:
        a, b = take_paths(taken, claims.shape[0], per_take)
        if a == b:
            break
        for i in range(a, b):
            claims[i] += 1


@pytest.mark.parametrize("n, per_take", [(1, 8), (1000, 8), (4097, PATHS_PER_TAKE), (50, 1)])
def test_threads_share_out_paths_each_exactly_once(n, per_take):
    taken = np.zeros(1, np.int64)
    claims = np.zeros(n, np.int64)
    with ThreadPoolExecutor(2) as pool:
        for worker in [pool.submit(_claim, taken, claims, per_take) for _ in range(2)]:
            worker.result()
    assert (claims == 1).all()   # a counter copied per thread would give each path twice
    # every take that found paths, then one that found none per thread: the counter is shared
    assert taken[0] == (-(-n // per_take) + 2) * per_take


@pytest.mark.parametrize("kind", ["continuous", "ties", "constant", "sorted", "outside",
                                  "one_bin"])
@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.3, 0.4), (5.0, 5.0), (-10.0, 0.0)])
def test_median_binned_matches_numpy(kind, lo, hi):
    rng = np.random.default_rng(12)
    for n in list(range(1, 40)) + [391, 392, 1001]:
        a = {"continuous": rng.random(n),
             "ties": np.round(rng.random(n) * 4) / 4,
             "constant": np.full(n, 0.35),
             "sorted": np.sort(rng.random(n))[::-1].copy(),
             "outside": rng.normal(0.5, 3.0, n),             # many beyond the end bins
             "one_bin": 0.35 + rng.random(n) * 1e-6}[kind]   # all in one bin
        before = a.copy()
        m = median_binned(a, n, lo, hi, np.empty(MEDIAN_BINS, np.int64), np.empty(n))
        assert m == np.median(a), (kind, n)
        assert (a == before).all()   # the input is left as it was


@pytest.mark.parametrize("m", [0, 1, 5, SORT_MERGE_FROM - 1, SORT_MERGE_FROM, 47, 1000])
def test_a_months_arrivals_sort_stably_by_time_whatever_their_number(m):
    """The insertion sort (a handful a month) and the merge of sorted runs (big months)
    both give the stable order by time: equal times keep their order, keys alongside."""
    rng = np.random.default_rng(m)
    pad = 3   # the month sits inside a longer array: nothing outside it moves
    times = rng.uniform(0, 30, m + 2 * pad)
    times[pad:pad + m] = np.round(times[pad:pad + m], 0)   # many equal times
    keys = np.arange(m + 2 * pad, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    want = np.argsort(times[pad:pad + m], kind="stable") + pad
    want_t, want_k = times[want], keys[want]
    tmp_t = np.full_like(times, np.nan)
    tmp_k = np.zeros_like(keys)
    before_t, before_k = times.copy(), keys.copy()
    _sort_month(times, keys, tmp_t, tmp_k, pad, pad + m)
    np.testing.assert_array_equal(times[pad:pad + m], want_t)
    np.testing.assert_array_equal(keys[pad:pad + m], want_k)
    for arr, before in ((times, before_t), (keys, before_k)):
        np.testing.assert_array_equal(arr[:pad], before[:pad])
        np.testing.assert_array_equal(arr[pad + m:], before[pad + m:])
