"""Paths per second for the Essex scenario: the numba engine beside the plain-Python reference.

    python benchmarks/bench_engine.py [--paths N] [--reference-paths M] [--records DIR]

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

# The targets the figures are held to. Issue 2: the engine (the service, workforce and
# care model, which the reference implementation models too) at 25,000 Essex paths a
# second on 2 cores, compile excluded, and a second process started in under a second.
# Issue 3: the contract and SPV waterfall keep the engine within 20% of that rate.
ENGINE_TARGET = 25_000      # paths/s, 2 threads
START_TARGET = 1.0          # s, import + cached kernels + first 16 paths
WATERFALL_COST_LIMIT = 0.20 # share of the engine's rate
sys.path.insert(0, str(ROOT / "tests"))


def machine() -> str:
    """The CPU the figures are for: its model, numba's code-generation target and its
    widest vector instructions (figures from different machines are not comparable: the
    same commit ran 2.3 times slower a path on a 2 GHz Zen 1 with AVX2 than on a Zen 4
    with AVX-512)."""
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
    args = ap.parse_args()

    import numba

    from simulator import engine
    from simulator.loader import load_scenario
    from reference_model import simulate_reference

    scenario = load_scenario(args.scenario).scenario
    t0 = time.perf_counter()
    engine.simulate(scenario, paths=16)
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

    print(f"machine: {machine()}")
    print(f"scenario: {scenario.name}   threads: {numba.get_num_threads()}")
    print(f"{'implementation':<28}{'paths':>10}{'paths/s':>14}")
    print(f"{'numba engine, service only':<28}{args.paths:>10,}{service_rate:>14,.0f}")
    print(f"{'numba engine + waterfall':<28}{args.paths:>10,}{numba_rate:>14,.0f}"
          f"   ({numba_rate / service_rate - 1:+.0%} for the contract and cash flows)")
    print(f"{'  first run in the process':<28}{args.paths:>10,}{args.paths / fresh:>14,.0f}")
    print(f"{'plain-Python reference':<28}{args.reference_paths:>10,}{ref_rate:>14,.1f}")
    print(f"speed-up: {numba_rate / ref_rate:,.0f}x")
    print(f"one thread, with the waterfall: {one_rate:,.0f} paths/s ({1e6 / one_rate:.0f} us a path); "
          f"{threads} threads: {numba_rate / one_rate:.2f}x that")
    print(f"first call in this process (cache load or compile): {warm:.2f} s")
    print(f"second process, import + load + first 16 paths: {inner:.2f} s "
          f"(whole process {process:.2f} s)")
    print(f"sibsim run --paths 16 (writes every output file), whole process: {command:.2f} s")
    print(targets(threads, service_rate, numba_rate, inner))
    record = {
        "commit": git_commit(), "machine": machine(), "utc": _utc_now(),
        "scenario": scenario.name, "threads": threads, "paths": args.paths,
        "paths_per_second": {"service_only": service_rate, "with_waterfall": numba_rate,
                             "first_run": args.paths / fresh,
                             "one_thread_with_waterfall": one_rate,
                             "reference": ref_rate},
        "seconds": {"first_call": warm, "second_process_to_16_paths": inner,
                    "second_process_whole": process, "sibsim_run_16_paths": command},
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


def targets(threads: int, service_rate: float, full_rate: float, start: float) -> str:
    """One line saying which of the targets the figures meet (they depend on the machine:
    see README "Speed")."""
    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"
    cost = 1.0 - full_rate / service_rate
    engine = (f"engine {ENGINE_TARGET:,} paths/s on 2 threads: "
              + (met(service_rate >= ENGINE_TARGET) if threads == 2 else f"not tested ({threads} threads)"))
    return (f"targets: {engine}; waterfall within {WATERFALL_COST_LIMIT:.0%} of the engine: "
            f"{met(cost <= WATERFALL_COST_LIMIT)} ({cost:.0%}); second process under "
            f"{START_TARGET:g} s: {met(start < START_TARGET)}")


if __name__ == "__main__":
    main()
