"""The kernels' disk cache is stamped with every kernel source, not only the kernel's own
file: a kernel in kernels.py carries compiled copies of the waterfall and IRR kernels it
calls."""
import hashlib
import os
import subprocess
import sys

from simulator import invariants, irr, jit_cache
from simulator import kernels as K
from simulator import waterfall as W


def test_cached_kernels_of_every_file_are_stamped_with_every_source_and_the_options():
    expected = tuple(hashlib.sha256(open(p, "rb").read()).digest()
                     for p in jit_cache.KERNEL_SOURCES)
    assert {p.rsplit("/", 1)[-1] for p in jit_cache.KERNEL_SOURCES} == {
        "kernels.py", "waterfall.py", "irr.py", "invariants.py", "layout.py",
        "jit_cache.py"}
    for kernel in (K.simulate_chunk, K.simulate_path, irr.path_irr, W.cohort_payments,
                   invariants.breaches):
        locator = kernel._cache._impl.locator
        assert isinstance(locator, (jit_cache.UserProvidedLocator, jit_cache.InTreeLocator,
                                    jit_cache.UserWideLocator))
        assert locator.get_source_stamp() == expected
        # the stamp the index file is checked against when a kernel is loaded
        assert kernel._cache._cache_file._source_stamp == expected


def test_other_modules_keep_numba_default_locators(tmp_path):
    other = tmp_path / "elsewhere.py"
    other.write_text("def f():\n    return 1\n")
    ns = {}
    exec(compile(other.read_text(), str(other), "exec"), ns)
    for cls in (jit_cache.UserProvidedLocator, jit_cache.InTreeLocator, jit_cache.UserWideLocator):
        assert cls.from_function(ns["f"], str(other)) is None


def test_start_up_skips_scipy_linalg_and_pandas_but_both_work_when_used():
    """A run imports no scipy.linalg (numba's start-up probe is answered without it), and
    numba code that does use BLAS afterwards still gets it, with the probe put back. Nor
    does it import pandas until the result's frame of paths is asked for."""
    import subprocess
    import sys
    code = (
        "import sys\n"
        "from simulator import engine\n"
        "from simulator.loader import load_scenario\n"
        "import numba.np.arraymath as am, numba.np.linalg as la\n"
        "s = load_scenario('scenarios/essex_mst.yaml').scenario\n"
        "r = engine.simulate(s, paths=2)\n"
        "print('scipy.linalg' in sys.modules, am._HAVE_BLAS, la.ensure_blas.__module__)\n"
        "print('pandas' in sys.modules, r.paths.shape[0], r.paths.attrs['commitment'], "
        "'pandas' in sys.modules)\n"
        "import numpy as np\n"
        "from numba import njit\n"
        "dot = njit(lambda a, b: np.dot(a, b))\n"
        "print(dot(np.arange(3.0), np.arange(3.0)), 'scipy.linalg' in sys.modules)\n"
    )
    root = jit_cache._HERE.rsplit("/", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "False True numba.np.linalg"
    assert out[1] == "False 2 3100000.0 True"
    assert out[2] == "5.0 True"


def test_is_cached_tells_a_cold_cache_from_a_warm_one(tmp_path):
    """False before the first compile into an empty cache; True once compiled, and in a
    new process that loads from the cache."""
    import subprocess
    import sys
    (tmp_path / "tiny.py").write_text(
        "from numba import njit\n"
        "@njit(cache=True)\n"
        "def add_one(x):\n"
        "    return x + 1\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from simulator.jit_cache import is_cached\n"
            "from tiny import add_one\n"
            "before = is_cached(add_one); add_one(1)\n"
            "print(before, is_cached(add_one))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs == [["False", "True"], ["True", "True"]]


def test_run_says_when_it_compiles_the_kernels(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from simulator import engine
    from simulator.cli import main
    scenario = jit_cache._HERE.rsplit("/", 1)[0] + "/scenarios/essex_mst.yaml"
    args = ["run", scenario, "--paths", "20", "--out", str(tmp_path)]
    monkeypatch.setattr(engine, "kernels_cached", lambda: False)
    cold = CliRunner().invoke(main, args)
    quiet = CliRunner().invoke(main, args + ["--quiet"])
    monkeypatch.setattr(engine, "kernels_cached", lambda: True)
    warm = CliRunner().invoke(main, args)
    assert cold.exit_code == quiet.exit_code == warm.exit_code == 0
    assert "compiling the simulation kernels" in cold.stderr
    assert "compiling" not in quiet.stderr and "compiling" not in warm.stderr
    assert "20 paths in" in cold.stdout and "20 paths in" in warm.stdout


def test_cached_kernels_load_without_the_registry_refresh_and_later_compiles_still_work():
    """A process that loads the kernels from the cache skips numba's registry refresh (its
    forty imports, such as numba's typed lists and sets, a fifth of the start), gets the
    same results as this process, and can still compile numba code that needs those
    registries afterwards (the compiler refreshes them itself)."""
    import numpy as np

    from simulator import engine
    from simulator.loader import load_scenario
    root = jit_cache._HERE.rsplit("/", 1)[0]
    scenario = load_scenario(root + "/scenarios/essex_mst.yaml").scenario
    here = engine.simulate(scenario, paths=5, seed=3)   # (and the cache is now warm)
    code = (
        "import sys\n"
        "from simulator import engine\n"
        "from simulator.loader import load_scenario\n"
        "s = load_scenario('scenarios/essex_mst.yaml').scenario\n"
        "r = engine.simulate(s, paths=5, seed=3)\n"
        "print('numba.typed.typedlist' in sys.modules, 'numba.cpython.setobj' in sys.modules)\n"
        "print(repr(float(r.by_calendar_quarter.sum())))\n"
        "from numba import njit\n"
        "distinct = njit(lambda xs: len(set([x // 2 for x in xs])))\n"
        "print(distinct(list(range(10))), 'numba.cpython.setobj' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "False False"
    assert float(out[1]) == float(here.by_calendar_quarter.sum())
    assert out[2] == "5 True"
    assert np.isfinite(float(out[1]))
