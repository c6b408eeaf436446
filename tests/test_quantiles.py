"""The fan-chart table's figures against numpy: the same means and percentiles, to the
last bit, on data with ties, constants, few and many paths, running totals and
averages over a quarter."""
import numpy as np
import pytest

from simulator import engine, metrics
from simulator.kernels import quantiles
from simulator.kernels.calls import kernels_from_python
from simulator.loader import load_scenario

from helpers import ESSEX

Q = kernels_from_python(quantiles)
QS = np.array([5.0, 50.0, 95.0])


def _lines(cal, divisor):
    """The three kinds of line, computed as numpy would: a column, a running total of a
    difference of two columns, a column divided by the days of each quarter."""
    return [cal[:, :, 0], np.cumsum(cal[:, :, 1] - cal[:, :, 2], axis=1),
            cal[:, :, 3] / divisor]


def _unlike_the_sample(cal):
    """cal with the paths the kernel samples (every step-th, for a sample of about
    n^(2/3) paths) far above the others: the sample's brackets miss the percentiles."""
    n = cal.shape[0]
    cal[::max(n // int(n ** (2.0 / 3.0)), 1)] += 10.0
    return cal


def _sparse(cal):
    """cal with whole quarters of zeros, before, between and after others: a running
    total that stays zero, starts, then stands still; a column zero in one quarter
    only; a quarter's values -0.0 (compared equal to 0.0)."""
    cal[:, :2] = 0.0
    cal[:, 3, 1:3] = 0.0
    cal[:, 4, 3] = 0.0
    cal[:, 5, 0] = -0.0
    return cal


def _quarter_major(cal):
    """cal's values in the memory layout engine.new_outputs gives them: a view whose
    quarters' rows are each one block."""
    return np.ascontiguousarray(cal.transpose(1, 0, 2)).transpose(1, 0, 2)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 100, 4096, 4097, 30_000])
@pytest.mark.parametrize("kind", ["uniform", "ties", "zeros", "capped", "sorted", "heavy",
                                  "sample_unlike", "sparse", "quarter_major"])
def test_line_figures_are_numpys_mean_and_percentiles(n, kind):
    rng = np.random.default_rng(n)
    shape = (n, 6, 4)
    cal = {"uniform": lambda: rng.random(shape),
           "sparse": lambda: _sparse(rng.random(shape) - 0.5),
           "quarter_major": lambda: _quarter_major(_sparse(rng.random(shape))),
           "ties": lambda: rng.integers(0, 3, shape).astype(float),
           "zeros": lambda: np.zeros(shape),
           "capped": lambda: np.minimum(rng.random(shape) * 2, 1.0) * 7.1e6,
           "sorted": lambda: np.sort(rng.random(shape), axis=0),
           "heavy": lambda: rng.standard_cauchy(shape),
           "sample_unlike": lambda: _unlike_the_sample(rng.random(shape))}[kind]()
    days = np.array([90.0, 91, 92, 92, 90, 91])
    parts = np.array([[0, -1], [1, 2], [3, -1]], np.int64)
    signs = np.array([[1.0, 0.0], [1.0, -1.0], [1.0, 0.0]])
    cumulative = np.array([False, True, False])
    divisor = np.vstack([np.ones(6), np.ones(6), days])
    out = np.empty((3, 6, 4))
    lanes = 1 + n % 4   # (any number of lanes gives the same figures)
    Q.line_figures(cal, parts, signs, cumulative, divisor, QS, lanes, out)
    # numpy sums a path-major array along its paths one by one, as the kernel does (over
    # other layouts, pairwise)
    for i, line in enumerate(_lines(np.ascontiguousarray(cal), days)):
        assert np.array_equal(out[i, :, 0], line.mean(axis=0)), (i, "mean")
        assert not np.signbit(out[i, :, 0][line.mean(axis=0) == 0]).any(), (i, "-0.0")
        assert np.array_equal(out[i, :, 1:].T, np.percentile(line, QS, axis=0)), (i, kind)


def test_the_quarterly_table_is_the_same_as_numpys():
    result = engine.simulate(load_scenario(ESSEX).scenario, paths=6000, seed=4)
    table = metrics.quarters_table(result)
    cal = np.ascontiguousarray(result.by_calendar_quarter)   # (path-major: summed in order)
    column = metrics.CALENDAR_QUARTER_COLUMNS.index
    calls = cal[:, :, column("capital_calls")]
    expected = {
        "outcome_payments": cal[:, :, column("outcome_payments")],
        "investor_cash_position": np.cumsum(cal[:, :, column("distributions_investors")]
                                            - calls, axis=1),
    }
    for name, x in expected.items():
        assert np.array_equal(table[f"{name}_mean"], x.mean(axis=0)), name
        for q in (5, 50, 95):
            assert np.array_equal(table[f"{name}_p{q:02d}"], np.percentile(x, q, axis=0)), name


@pytest.mark.parametrize("n", [1, 2, 17, 4097, 30_000])
@pytest.mark.parametrize("kind", ["uniform", "ties", "heavy", "inf"])
def test_percentiles_are_numpys(n, kind):
    """The summary's and charts' percentiles (of finite values, or infinite ones) are
    numpy's, to the last bit."""
    rng = np.random.default_rng(n)
    x = {"uniform": lambda: rng.random(n),
         "ties": lambda: rng.integers(0, 3, n).astype(float),
         "heavy": lambda: rng.standard_cauchy(n),
         "inf": lambda: np.where(rng.random(n) < 0.1, np.inf, rng.random(n))}[kind]()
    qs = np.array([5.0, 50.0, 95.0])
    with np.errstate(invalid="ignore"):   # (numpy's inf - inf, between two infinite values)
        expected = np.percentile(x, qs)
    assert np.array_equal(Q.percentiles(x.copy(), qs), expected, equal_nan=True)
