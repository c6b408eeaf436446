"""Time and size of the HTML report for one big run.

    python benchmarks/bench_report.py [--paths 100000] [--scenario FILE]

Simulation time is excluded; timed are the report's own steps: the chart data computed
from the result at run time (charts.json and the running-total quantiles of
quarters.parquet), the page built from them, and the rebuild `sibsim report` does from the
saved files.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "essex_mst.yaml"))
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from simulator import engine, metrics, reports
    from simulator.loader import load_scenario
    from simulator.run import run_scenario

    loaded = load_scenario(args.scenario)
    t0 = time.perf_counter()
    result = engine.simulate(loaded.scenario, paths=args.paths, seed=args.seed)
    print(f"simulate {args.paths:,} paths: {time.perf_counter() - t0:.1f} s (not counted)")

    summary = metrics.summary(result)
    timings = {}
    t = time.perf_counter()
    quarters = metrics.quarters_table(result)
    timings["quarters_table (all quantiles, incl. running totals)"] = time.perf_counter() - t
    t = time.perf_counter()
    charts = reports.chart_data(result)
    timings["chart_data (charts.json)"] = time.perf_counter() - t
    t = time.perf_counter()
    page = reports.build_report(reports.RunData(summary, {}, quarters, charts,
                                                result.paths[reports.PATH_COLUMNS]))
    timings["build_report (HTML from the result)"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        # the saved folder, as `sibsim run` writes it (simulation repeated only to write it)
        out = run_scenario(loaded, tmp, paths=min(args.paths, 2000), seed=args.seed,
                           progress=False)
        from simulator import io
        io.write_parquet(out.folder / "paths.parquet", result.paths)
        io.write_parquet(out.folder / "quarters.parquet", quarters)
        io.write_json(out.folder / "summary.json", summary)
        io.write_json(out.folder / reports.CHARTS_FILE, charts)
        t = time.perf_counter()
        target = reports.write_report(out.folder)
        timings["sibsim report (rebuild from the saved files)"] = time.perf_counter() - t
        size = target.stat().st_size
    for name, seconds in timings.items():
        print(f"{name:<50} {seconds:6.2f} s")
    run_time = sum(v for k, v in timings.items() if not k.startswith("sibsim report"))
    print(f"{'report work inside sibsim run (sum of the above)':<50} {run_time:6.2f} s")
    print(f"report.html: {len(page.encode()) / 1e6:.2f} MB (rebuilt: {size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
