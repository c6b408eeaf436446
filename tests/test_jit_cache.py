"""The kernels' disk cache is stamped with every kernel source, not only the kernel's own
file: a kernel carries compiled copies of the waterfall and IRR kernels it
calls."""
import os
import shutil
import subprocess
import sys

from simulator.kernels import cache as jit_cache

from helpers import ROOT


def test_an_edit_of_one_kernel_file_reaches_the_cached_kernels_that_call_it(tmp_path):
    """numba checks a cached kernel against its own file only, yet a kernel
    carries a compiled copy of the waterfall.py kernels it calls (numba issue #1833): an
    edit of waterfall.py alone must still change what that kernel computes in the next
    process, not leave the old code running from the cache."""
    package = tmp_path / "simulator"
    shutil.copytree(ROOT / "simulator", package, ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import numpy as np\n"
            "from simulator import layout as L\n"
            "from simulator.kernels import waterfall as W\n"
            "from simulator.kernels.contract import _payments\n"
            "cfg = np.zeros(L.N_CONFIG)\n"
            "cfg[L.C_PRICE_PER_DAY], cfg[L.C_CAP], cfg[L.C_LAST_PAYMENT_Q] = 1.0, -1.0, 3\n"
            "baseline = np.zeros((2, 4))\n"
            "baseline[0] = 10.0\n"
            "payments = np.zeros(4)\n"
            "_payments(cfg, baseline, np.zeros((2, 4)), np.zeros((4, 0)), np.zeros(0),\n"
            "            payments, np.empty(W.payment_work_size(2, 4, 4)))\n"
            "print(payments.sum())\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "c")}

    def paid() -> float:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout)

    assert paid() == 40.0 and paid() == 40.0   # compiled, then loaded from the cache
    waterfall = package / "kernels" / "waterfall.py"
    text = waterfall.read_text()
    assert "due = price * cum_saved[c]" in text
    waterfall.write_text(text.replace("due = price * cum_saved[c]",
                                      "due = 2.0 * price * cum_saved[c]"))
    assert paid() == 80.0


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
    root = str(ROOT)
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
            "from simulator.kernels.cache import is_cached\n"
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
    scenario = str(ROOT) + "/scenarios/essex_mst.yaml"
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
