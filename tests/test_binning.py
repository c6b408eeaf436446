"""Slope binning (kernels.span / slope_at_since / settle) against direct overlap sums.

The engine bins every interval by its two end points and settles each path once;
these tests compare that with the plain definition, the overlap of each interval
with each bin, on random intervals that start and end before, inside and after
the binned range.
"""
import numpy as np
import pytest

from simulator import layout as L
from simulator.kernels import binning
from simulator.kernels.binning import day_quarters
from simulator.kernels.calls import kernels_from_python

# the binning kernels other kernels call, callable from here
B = kernels_from_python(binning)
bin_of, cohort_totals, quarter_bounds, quarter_of = (B.bin_of, B.cohort_totals,
                                                     B.quarter_bounds, B.quarter_of)
quarter_room, settle, settle_cohorts = B.quarter_room, B.settle, B.settle_cohorts
slope_at_since, span, span_cohort = B.slope_at_since, B.span, B.span_cohort


def _overlaps(intervals, edges):
    out = np.zeros(len(edges) - 1)
    for a, b, w in intervals:
        lo = np.maximum(a, edges[:-1])
        hi = np.minimum(b, edges[1:])
        out += w * np.clip(hi - lo, 0.0, None)
    return out


def _quarter_edges():
    # calendar quarter starts in whole days from a mid-quarter contract start
    days = np.array([-45, 47, 138, 230, 322, 412, 503, 595, 687, 777, 868], dtype=np.float64)
    return days


def test_calendar_span_matches_overlap():
    rng = np.random.default_rng(7)
    edges = _quarter_edges()
    day_q = day_quarters(edges)
    intervals = []
    slope = np.zeros((len(edges) - 1, 2))
    part = np.zeros((len(edges) - 1, 2))
    for _ in range(500):
        a = rng.uniform(-120.0, 950.0)
        b = a + rng.exponential(200.0)
        w = rng.choice([1.0, 0.37])
        intervals.append((a, b, w))
        span(a, b, w, edges, day_q, slope, part, 1)
    settle(edges, 0.0, slope, part)
    np.testing.assert_allclose(part[:, 1], _overlaps(intervals, edges), rtol=1e-10, atol=1e-8)
    assert np.all(part[:, 0] == 0.0)


def test_quarters_since_tracking_start_match_overlap():
    rng = np.random.default_rng(8)
    width = 3.0 * L.DAYS_PER_MONTH
    n_q = 10
    slope = np.zeros((n_q, 1))
    part = np.zeros((n_q, 1))
    intervals = []
    for _ in range(500):
        a = rng.uniform(0.0, n_q * width + 50.0)
        b = a + rng.exponential(150.0)
        intervals.append((a, b, 1.0))
        slope_at_since(a, 1.0, width, slope, part, 0)
        slope_at_since(b, -1.0, width, slope, part, 0)
    settle(np.empty(0), width, slope, part)
    edges = np.arange(n_q + 1) * width
    np.testing.assert_allclose(part[:, 0], _overlaps(intervals, edges), rtol=1e-10, atol=1e-8)


def test_day_table_agrees_with_searchsorted():
    edges = _quarter_edges()
    day_q = day_quarters(edges)
    for t in np.linspace(-60.0, 900.0, 4001):
        expected = np.searchsorted(edges, t, side="right") - 1
        assert quarter_of(t, edges, day_q) == min(expected, len(edges) - 1)


def test_quarter_bounds_hold_exactly_the_times_of_their_quarter():
    """Referrals are counted by quarter in runs that last while the time stays within
    quarter_bounds of the run's quarter: every time must lie within the bounds of its own
    quarter_of, edges included, before the first quarter and after the last, and within
    no neighbour's."""
    edges = _quarter_edges()
    day_q = day_quarters(edges)
    times = np.concatenate([np.linspace(-60.0, 900.0, 4001), edges, edges - 1e-9, [-1e9, 1e9]])
    for t in times:
        k = quarter_of(t, edges, day_q)
        lo, hi = quarter_bounds(k, edges)
        assert lo <= t < hi, (t, k, lo, hi)
        for other in (k - 1, k + 1):
            if -1 <= other <= len(edges) - 1:
                lo, hi = quarter_bounds(other, edges)
                assert not (lo <= t < hi)


def test_edges_off_whole_days_are_refused():
    with pytest.raises(ValueError, match="whole days"):
        day_quarters(np.array([0.0, 91.5, 182.0]))


def test_cohort_band_matches_overlap_and_covers_every_window():
    """Days by tracking cohort (the band of quarters from the cohort's own) add up, quarter
    by quarter, to the overlaps of the windows, with the band width engine.layout sets."""
    from simulator import engine
    from simulator.loader import load_scenario
    lay = engine.layout(load_scenario("scenarios/essex_mst.yaml").scenario)
    edges = lay.calendar_edges
    day_q = day_quarters(edges)
    n_cal = len(edges) - 1
    width = int(lay.config[L.C_COHORT_QUARTERS])
    window = lay.config[L.C_TRACKING_DAYS]
    assert width < n_cal   # a band, not the whole calendar
    slope = np.zeros((width, n_cal))
    part = np.zeros((width, n_cal))
    rng = np.random.default_rng(9)
    intervals = []
    for _ in range(2000):
        track_a = rng.uniform(edges[0] - 100.0, edges[-1] + 50.0)
        cohort, _ = quarter_room(track_a, edges, day_q)
        if cohort < 0:   # opens after the calendar: nothing to bin
            continue
        # the whole window, or a care spell inside it
        a, b = track_a, track_a + window
        if rng.uniform() < 0.5:
            a = rng.uniform(track_a, track_a + window)
            b = rng.uniform(a, track_a + window)
        k_b, _ = quarter_room(b, edges, day_q)
        assert k_b == -1 or k_b - cohort < width
        intervals.append((max(a, edges[0]), b, 1.0))
        span_cohort(a, b, 1.0, edges, day_q, cohort, slope, part)
    settle_cohorts(edges, slope, part)
    by_quarter = np.empty(n_cal)
    cohort_totals(part, by_quarter)
    np.testing.assert_allclose(by_quarter, _overlaps(intervals, edges), rtol=1e-10, atol=1e-6)


def test_times_past_every_quarter_including_infinity_fall_after_the_last():
    """A time past the last quarter, however far (an infinite one too: its conversion to
    an integer day would be undefined), falls after the last quarter and bins nothing."""
    edges = _quarter_edges()
    day_q = day_quarters(edges)
    nb = len(edges) - 1
    for t in (edges[-1], edges[-1] + 0.5, 1e300, np.inf):
        assert quarter_of(t, edges, day_q) == nb
        assert bin_of(t, edges) == nb
        assert quarter_room(t, edges, day_q) == (-1, 0.0)
    assert quarter_of(np.nan, edges, day_q) == -1
    slope = np.zeros((nb, 1))
    part = np.zeros((nb, 1))
    span(edges[0] + 10.0, np.inf, 1.0, edges, day_q, slope, part, 0)
    settle(edges, 0.0, slope, part)
    np.testing.assert_allclose(part[:, 0], _overlaps([(edges[0] + 10.0, edges[-1], 1.0)], edges))
