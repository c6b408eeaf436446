"""The engine's speed as ratios measured side by side in one run, on the Essex scenario.

    python benchmarks/bench_engine.py [--paths N] [--reference-paths M] [--records DIR]
                                      [--no-compile] [--cli-paths P]

Ratios, not targets in paths a second: the machines this runs on vary in speed more
than the code does. Printed: the engine on one thread against the plain-Python
reference, two threads against one, the contract and waterfall's share of a path, and
a whole `sibsim run`'s marginal rate against the kernels' (runs of P/4 and P paths,
P = --cli-paths, by default --paths, best of the repeats; the kernels timed again
between them) and against its own simulation's; and, in seconds, the start of a second process, a run with and without
the garbage collector paused at start-up, and a cold compile into an empty cache.

Compile time is excluded (one warm-up run first); the numba kernels are cached on
disk, so the start-up of a second process is timed separately. The rates are the
best of a few runs; the first run in a process is timed on its own.

Prints a table, and appends the figures as one JSON line (the commit, the machine, the
time, every figure) to DIR/bench.jsonl (default benchmarks/records/, which git ignores):
figures are data to compare, never prose in the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from simulator.startup import HUGE_PAGES  # noqa: E402  (imports neither numpy nor numba)

# the kernels timed as the sibsim command runs them: numpy reads this when imported
os.environ.setdefault(*HUGE_PAGES)

sys.path.insert(0, str(ROOT / "tests"))


def machine() -> str:
    """The CPU the figures are for: its model, numba's code-generation target and its
    widest vector instructions (figures from different machines are not comparable)."""
    import llvmlite.binding as llvm
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    features = llvm.get_host_cpu_features()
    vector = next((name for name in ("avx512f", "avx2", "avx", "sse4.2")
                   if features.get(name)), "sse2")
    return f"{model} ({llvm.get_host_cpu_name()}, {vector.upper()}), {os.cpu_count()} CPUs"


def _timed(f, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    f(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "essex_mst.yaml"))
    ap.add_argument("--paths", type=int, default=40_000)
    ap.add_argument("--reference-paths", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--records", type=Path, default=ROOT / "benchmarks" / "records",
                    help="folder whose bench.jsonl gets this run's figures")
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="skip the cold compile into an empty cache (the slowest step)")
    ap.add_argument("--cli-paths", type=int,
                    help="paths of the larger of the two `sibsim run`s whose marginal rate "
                         "is measured (default: --paths; 200000 needs about 2 GB of memory)")
    args = ap.parse_args()

    import numba

    from simulator import engine, precompile
    from simulator.loader import load_scenario
    from reference_model import simulate_reference

    scenario = load_scenario(args.scenario).scenario
    # every kernel a run needs (the figures' too), compiled now if the cache has none
    t0 = time.perf_counter()
    precompile.load_kernels(scenario, say=False)
    warm = time.perf_counter() - t0

    service_only = scenario.model_copy(update={"contract": None, "finance": None})
    engine.simulate(service_only, paths=16)
    fresh = _timed(engine.simulate, scenario, paths=args.paths)
    # Best of the repeats, the two variants taking turns, so that a slow spell of a
    # shared machine does not fall on one of them only.
    best = {"service": float("inf"), "full": float("inf")}
    for _ in range(args.repeats):
        for name, s in (("service", service_only), ("full", scenario)):
            t0 = time.perf_counter()
            engine.simulate(s, paths=args.paths)
            best[name] = min(best[name], time.perf_counter() - t0)
    service_rate = args.paths / best["service"]
    numba_rate = args.paths / best["full"]

    # One thread, for comparing days on a shared machine: steadier than two threads,
    # whose rate also depends on what the neighbours of the second core are doing.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one = min(_timed(engine.simulate, scenario, paths=args.paths // 8)
              for _ in range(args.repeats))
    numba.set_num_threads(threads)
    one_rate = (args.paths // 8) / one

    t0 = time.perf_counter()
    simulate_reference(scenario, paths=args.reference_paths, seed=1)
    ref_rate = args.reference_paths / (time.perf_counter() - t0)

    code = ("import time; t=time.perf_counter(); from simulator import engine; "
            "from simulator.loader import load_scenario; "
            f"s=load_scenario({args.scenario!r}).scenario; engine.simulate(s, paths=16); "
            "print(time.perf_counter()-t)")
    t0 = time.perf_counter()
    inner = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)
    process = time.perf_counter() - t0

    # the command line, whole process: its imports (pandas and pyarrow too, to write the
    # results), the kernels, 16 paths, every output file, and the exit
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "simulator", "run", args.scenario, "--paths", "16",
                        "--quiet", "--out", out], check=True)
        command = time.perf_counter() - t0

    paused, unpaused = collector_pause(args.scenario, args.repeats)
    compile_seconds = cold_compile(args.scenario) if args.compile else None
    cli_paths = args.cli_paths or args.paths
    small = max(cli_paths // 4, 1)
    # best of the repeats, as the kernels' rate is, the two sizes taking turns
    runs = {small: [], cli_paths: []}
    kernels = best["full"]
    for _ in range(args.repeats):
        for n in runs:
            runs[n].append(run_command(args.scenario, scenario.name, n))
        # the kernels again, between the runs: a slow spell of the machine then falls on
        # both sides of the ratio
        kernels = min(kernels, _timed(engine.simulate, scenario, paths=args.paths))
    kernels_rate = args.paths / kernels
    (cli_small, sim_small), (cli_big, sim_big) = (
        (min(r[0] for r in runs[n]), min(r[1] for r in runs[n])) for n in runs)
    cli_rate = (cli_paths - small) / max(cli_big - cli_small, 1e-9)
    # the same runs' own simulation (the manifest's seconds: without the checks, which a
    # run does alongside its figures): in a new process, memory touched for the first time
    cli_sim_rate = (cli_paths - small) / max(sim_big - sim_small, 1e-9)

    print(f"machine: {machine()}")
    print(f"scenario: {scenario.name}   threads: {threads}")
    print(f"{'implementation':<34}{'paths':>10}{'paths/s':>12}")
    print(f"{'numba engine, service only':<34}{args.paths:>10,}{service_rate:>12,.0f}")
    print(f"{'numba engine + waterfall':<34}{args.paths:>10,}{numba_rate:>12,.0f}")
    print(f"{'  first run in the process':<34}{args.paths:>10,}{args.paths / fresh:>12,.0f}")
    print(f"{'plain-Python reference (1 thread)':<34}{args.reference_paths:>10,}{ref_rate:>12,.1f}")
    print("ratios, measured in this run:")
    print(f"  engine, one thread, against the reference:     {one_rate / ref_rate:8,.0f}x "
          f"({1e6 / one_rate:.0f} us a path)")
    print(f"  {threads} threads against one:                       "
          f"{numba_rate / one_rate:8.2f}x")
    print(f"  the contract and waterfall's share of a path:  "
          f"{1 - numba_rate / service_rate:8.0%}")
    print(f"  sibsim run's marginal rate against the kernels': {cli_rate / kernels_rate:6.2f}x "
          f"(runs of {small:,} and {cli_paths:,} paths)")
    print(f"    and against its own simulation's:             {cli_rate / cli_sim_rate:6.2f}x")
    print(f"second process, import + load + first 16 paths: {inner:.2f} s "
          f"(whole process {process:.2f} s); sibsim run --paths 16: {command:.2f} s")
    print(f"a run of the scenario's own paths: {paused:.2f} s; without the collector paused "
          f"at start-up (simulator.collector): {unpaused:.2f} s ({1 - paused / unpaused:.0%} "
          "saved)")
    if compile_seconds is not None:
        print(f"cold compile of every kernel a run needs (an empty cache): {compile_seconds:.0f} s")
    record = {
        "commit": git_commit(), "machine": machine(), "utc": _utc_now(),
        "scenario": scenario.name, "threads": threads, "paths": args.paths,
        "paths_per_second": {"service_only": service_rate, "with_waterfall": numba_rate,
                             "first_run": args.paths / fresh,
                             "one_thread_with_waterfall": one_rate,
                             "reference": ref_rate, "sibsim_run_marginal": cli_rate,
                             "sibsim_run_simulation_marginal": cli_sim_rate,
                             "with_waterfall_between_runs": kernels_rate},
        "sibsim_run_paths": [small, cli_paths],
        "seconds": {"first_call": warm, "second_process_to_16_paths": inner,
                    "second_process_whole": process, "sibsim_run_16_paths": command,
                    "sibsim_run_default": paused, "sibsim_run_default_collector_on": unpaused,
                    "cold_compile": compile_seconds},
    }
    print(f"record appended to {append_record(args.records, record)}")


def append_record(folder: Path, record: dict) -> Path:
    """Append ``record`` as one JSON line to folder/bench.jsonl; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "bench.jsonl"
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    return target


def _utc_now() -> str:
    import datetime as dt
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    sys.path.insert(0, str(ROOT))
    from simulator.provenance import git_commit as commit
    return commit()


def cold_compile(scenario: str) -> float:
    """Seconds for a new process to compile every kernel an Essex run needs (the path's,
    the invariants' and the quarterly table's) into an empty cache folder."""
    code = ("from simulator import precompile; from simulator.loader import load_scenario; "
            f"precompile.load_kernels(load_scenario({scenario!r}).scenario, say=False)")
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True,
                       env={**os.environ, "NUMBA_CACHE_DIR": cache})
        return time.perf_counter() - t0


def collector_pause(scenario: str, repeats: int) -> tuple[float, float]:
    """Seconds (best of ``repeats``) of a whole `sibsim run` of the scenario's own paths
    through the console script's entry point, which pauses the garbage collector while
    the modules load (simulator.collector), and through the command group alone."""
    entry = "import sys; sys.argv[0] = 'sibsim'; from simulator.{} import main; main()"
    best = {"startup": float("inf"), "cli": float("inf")}
    for _ in range(repeats):
        for module in best:
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", entry.format(module), "run", scenario,
                                "--quiet", "--out", out], check=True)
                best[module] = min(best[module], time.perf_counter() - t0)
    return best["startup"], best["cli"]


def run_command(scenario: str, name: str, paths: int) -> tuple[float, float]:
    """Seconds of a whole `sibsim run` of ``paths`` paths (every output file written),
    and of its simulation (the run's manifest)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "simulator", "run", scenario, "--paths",
                        str(paths), "--quiet", "--out", out], check=True)
        seconds = time.perf_counter() - t0
        manifest = json.loads((Path(out) / name / "manifest.json").read_text())
        return seconds, manifest["elapsed_seconds"]


if __name__ == "__main__":
    main()
