"""The kernels' disk cache is named by every kernel source, not only the kernel's own
file: a kernel carries compiled copies of the kernels it calls from other files."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.kernels import cache as jit_cache

from helpers import ROOT

# starts of programs run by a new Python: the Essex scenario, as ``scenario``; every
# kernel of the package, as ``every``
ESSEX = ("from simulator.loader import load_scenario\n"
         "scenario = load_scenario('scenarios/essex_mst.yaml').scenario\n")
EVERY_KERNEL = ("from numba.extending import is_jitted\n"
                "from simulator import kernels\n"
                "every = [k for m in vars(kernels).values() if hasattr(m, '__file__')\n"
                "         for k in vars(m).values() if is_jitted(k)]\n")


def in_new_python(code: str, env: dict | None = None) -> str:
    """What ``code`` prints, run by a new Python in the repository's folder."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout


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
            "from simulator.kernels.calls import from_python\n"
            "from simulator.kernels.contract import _finance\n"
            "cfg = np.zeros(L.N_CONFIG)\n"
            "cfg[L.C_COMMITMENT], cfg[L.C_WIND_UP_Q], cfg[L.C_DISTRIBUTION_FROM_Q] = 100.0, 3, 3\n"
            "rows = L.Outputs(np.zeros(L.N_OUT), np.zeros((1, L.N_Q)), np.zeros((4, L.N_K)),\n"
            "                 np.zeros(1), np.zeros(L.N_T), np.zeros(0))\n"
            "from_python(_finance)(cfg, np.array([0.0, 0.0, 0.0, 60.0]),\n"
            "    np.array([40.0, 0.0, 0.0, 0.0]), np.zeros(4), rows, np.zeros((4, W.N_LINES)),\n"
            "    np.zeros(4))\n"
            "print(rows.out[L.O_CAPITAL_DRAWN])\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "c")}

    def drawn() -> float:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout)

    assert drawn() == 40.0 and drawn() == 40.0   # compiled, then loaded from the cache
    assert len(list((tmp_path / "c").glob("sibsim-*"))) == 1
    assert any((tmp_path / "c").rglob("contract._finance-*.nbi"))
    waterfall = package / "kernels" / "waterfall.py"
    text = waterfall.read_text()
    call = "call = min(max(need, scheduled[k]), commitment - drawn)"
    assert call in text
    waterfall.write_text(text.replace(call, call.replace("= min(", "= 0.5 * min(")))
    assert drawn() == 20.0
    assert len(list((tmp_path / "c").glob("sibsim-*"))) == 1   # the old version's removed


def test_other_numba_code_keeps_its_cache_setting_and_the_kernels_their_folder():
    """The kernels are defined under their own cache folder (named by their sources);
    numba's setting is put back for any other numba code in the process."""
    code = ("import numba\n"
            "before = numba.config.CACHE_DIR\n"
            "from simulator.kernels import cache\n"
            "print(repr(before) == repr(numba.config.CACHE_DIR), cache.cache_folder().name)\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    out = in_new_python(code, env).split()
    assert out == ["True", "sibsim-" + jit_cache.sources_digest()]


def test_a_run_does_not_import_pandas_until_the_frame_of_paths_is_asked_for():
    code = ("import sys\n"
            "from simulator import engine\n"
            + ESSEX
            + "r = engine.simulate(scenario, paths=2)\n"
            "print('pandas' in sys.modules, r.paths.shape[0], r.paths.attrs['commitment'], "
            "'pandas' in sys.modules)\n")
    out = in_new_python(code).split("\n")
    assert out[0] == "False 2 3100000.0 True"


def test_the_cache_says_whether_the_kernels_were_compiled_for_this_cpu(tmp_path):
    """Not in an empty cache folder; then, once marked (the simulation's part by every
    simulation, the figures' by precompile), in any new process; each part apart."""
    from simulator import engine
    from simulator.loader import load_scenario

    code = ("import sys\n"
            "from simulator.kernels import cache\n"
            "before = [cache.is_warm(), cache.is_warm('figures')]\n"
            "if sys.argv[1] != 'look': cache.mark_warm(sys.argv[1])\n"
            "print(*before, cache.is_warm(), cache.is_warm('figures'))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(*args):
        return subprocess.run([sys.executable, "-c", code, *args], env=env,
                              capture_output=True, text=True, check=True).stdout.split()
    assert run("look") == ["False", "False", "False", "False"]
    assert run("simulation") == ["False", "False", "True", "False"]
    assert run("figures") == ["True", "False", "True", "True"]
    assert run("look") == ["True", "True", "True", "True"]
    engine.simulate(load_scenario(ROOT / "scenarios" / "essex_mst.yaml").scenario, paths=2)
    assert engine.kernels_cached()


def test_a_run_after_simulations_alone_has_the_figures_compiled_by_the_helper(monkeypatch):
    """A process that only simulated (the API, a notebook) leaves the figures' kernels
    marked not compiled: the next run's load_kernels has them compiled in a helper, then
    marks them."""
    from simulator import engine, precompile
    from simulator.loader import load_scenario

    started, marked = [], []
    monkeypatch.setattr(engine, "kernels_cached", lambda part="simulation": part != "figures")
    monkeypatch.setattr(engine, "mark_cached", marked.append)
    monkeypatch.setattr(precompile, "start", lambda scenario: started.append(scenario))
    scenario = load_scenario(ROOT / "scenarios" / "essex_mst.yaml").scenario
    precompile.load_kernels(scenario, say=False)
    assert started == [scenario] and marked == ["figures"]


def test_a_helper_whose_run_fails_is_stopped(monkeypatch):
    """If the two paths load_kernels simulates fail, the helper compiling for the run
    that will not happen is ended at once, not left to run on."""
    from simulator import engine, precompile
    from simulator.loader import load_scenario

    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    def fails(*args, **kwargs):
        raise ValueError("a parameter no path can use")

    monkeypatch.setattr(engine, "kernels_cached", lambda part="simulation": False)
    monkeypatch.setattr(precompile, "start", lambda scenario: helper)
    monkeypatch.setattr(engine, "simulate", fails)
    scenario = load_scenario(ROOT / "scenarios" / "essex_mst.yaml").scenario
    with pytest.raises(ValueError, match="no path can use"):
        precompile.load_kernels(scenario, say=False)
    assert helper.poll() is not None


def test_run_says_when_it_compiles_the_kernels(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from simulator import engine
    from simulator.cli import main
    scenario = str(ROOT) + "/scenarios/essex_mst.yaml"
    args = ["run", scenario, "--paths", "20", "--out", str(tmp_path)]
    monkeypatch.setattr(engine, "kernels_cached", lambda part="simulation": False)
    cold = CliRunner().invoke(main, args)
    quiet = CliRunner().invoke(main, args + ["--quiet"])
    monkeypatch.setattr(engine, "kernels_cached", lambda part="simulation": True)
    warm = CliRunner().invoke(main, args)
    assert cold.exit_code == quiet.exit_code == warm.exit_code == 0
    assert "compiling the simulation kernels" in cold.stderr
    assert "compiling" not in quiet.stderr and "compiling" not in warm.stderr
    assert "20 paths in" in cold.stdout and "20 paths in" in warm.stdout


def test_the_figures_kernels_compiled_on_zeros_are_the_ones_a_run_uses():
    """precompile compiles the figures' kernels on outputs of zeros: a run's checks,
    summary and quarterly table after it must find every kernel compiled for their
    arguments' types, and compile none of their own."""
    code = (ESSEX + EVERY_KERNEL
            + "from simulator import engine, precompile\n"
            "from simulator.metrics import quarters_table, summary\n"
            "def compiled(): return {(k.py_func, sig) for k in every for sig in k.signatures}\n"
            "precompile.compile_figures(scenario)\n"
            "figures = compiled()\n"
            "run = engine.simulate_arrays(scenario, paths=2)\n"
            "simulation = compiled() - figures\n"
            "engine.check_arrays(scenario, run)\n"
            "r = engine.result_of(scenario, run)\n"
            "summary(r), quarters_table(r)\n"
            "print(len(figures), len(simulation), len(compiled() - figures - simulation))\n")
    figures, simulation, more = map(int, in_new_python(code).split())
    # (kernels loaded from the cache list their own signatures, not their callees')
    assert figures >= 3 and simulation >= 2   # (the checks, percentiles, table)
    assert more == 0


def test_a_cold_compile_shares_the_kernels_with_a_helper_for_the_same_types(tmp_path):
    """On a cold cache, precompile's helper process compiles the contract's and the
    figures' kernels while the run's process compiles the path's. The run must then load
    those it calls from the cache, compiled for its own types, and compile none of them
    again: compiled for other types by both processes at once, a kernel's cache index
    could end up naming one's code for the other's types."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    helper = (ESSEX
              + "from simulator import precompile\n"
              "from simulator.kernels import cache\n"
              "helper = precompile.start(scenario)\n"
              "precompile.finish(helper)\n"
              "print(helper.returncode, cache.cache_folder())\n")
    returncode, folder = in_new_python(helper, env).split()
    assert returncode == "0"
    cached = {p.name.split("-")[0] for p in Path(folder).rglob("*.nbi")}
    assert {"quantiles.percentiles", "quantiles._lane_lines", "invariants.breaches",
            "contract.contract_and_finance", "contract._finance"} <= cached
    assert "chunk.simulate_chunk" not in cached   # the simulation's are the run's to compile
    run = (ESSEX + EVERY_KERNEL
           + "from simulator import engine\n"
           "engine.simulate(scenario, paths=2)\n"
           "for k in every:\n"
           "    f, stats = k.py_func, k.stats\n"
           "    print(f.__module__.rsplit('.', 1)[1] + '.' + f.__qualname__,\n"
           "          sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))\n")
    counts = {name: (int(hits), int(misses))
              for name, hits, misses in (line.split() for line in
                                         in_new_python(run, env).splitlines())}
    assert counts["contract.contract_and_finance"] == (1, 0)   # the helper's, loaded
    assert counts["invariants.breaches"] == (1, 0)
    assert counts["chunk.simulate_chunk"][1] == 1               # the run's own
    compiled_again = {name for name, (_, misses) in counts.items()
                      if misses and name in cached}
    assert not compiled_again
