"""Small kernel helpers checked against numpy: the in-place median and the branch-free pick."""
import numpy as np
import pytest

from simulator import kernels as K


@pytest.mark.parametrize("kind", ["continuous", "ties", "constant", "sorted", "reversed"])
def test_median_inplace_matches_numpy(kind):
    rng = np.random.default_rng(11)
    for n in list(range(1, 40)) + [391, 392, 1001]:
        a = {"continuous": rng.random(n),
             "ties": np.round(rng.random(n) * 4),
             "constant": np.full(n, 3.0),
             "sorted": np.sort(rng.random(n)),
             "reversed": np.sort(rng.random(n))[::-1].copy()}[kind]
        work = np.concatenate([a, rng.random(5)])   # spare room after n, as in the kernel
        m = K.median_inplace(work, n)
        assert m == np.median(a), (kind, n)
        assert sorted(work[:n]) == sorted(a)        # a permutation: nothing lost


def test_pick():
    assert K.pick(True, 1.5, 2.5) == 1.5
    assert K.pick(False, 1.5, 2.5) == 2.5
