"""A batch on a 2-worker Dask LocalCluster against the same batch run locally.

    python benchmarks/bench_cluster.py [--variants 200] [--paths 10000] [--workers 2]

Both are whole `sibsim batch` commands on this machine, one after the other, over a
sweep of the Essex scenario's price (every variant its own folder, report and files);
prints the cluster's rate as a multiple of the local rate (target: 0.9 or better, i.e.
dispatch and transfer cost under a tenth) and appends the figures to
benchmarks/records/bench.jsonl.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import append_record, machine  # noqa: E402


def sweep_file(folder: Path, variants: int) -> Path:
    """Essex with a price sweep of ``variants - 1`` points (the base is the last)."""
    prices = [round(float(p), 4) for p in np.linspace(30, 90, max(variants - 1, 1))]
    f = folder / "sweep.yaml"
    f.write_text(yaml.safe_dump({
        "extends": str(ROOT / "scenarios" / "essex_mst.yaml"), "name": "bench_sweep",
        "sweeps": {"price": {"contract.price_per_care_day_saved": prices}}}))
    return f


def batch_seconds(scenario: Path, out: Path, paths: int, *cluster: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simulator", "batch", str(scenario), "--out",
                    str(out), "--paths", str(paths), "--quiet", *cluster], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=200)
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--records", type=Path, default=ROOT / "benchmarks" / "records")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = sweep_file(Path(tmp), args.variants)
        batch_seconds(scenario, Path(tmp) / "warm", 20)   # kernels loaded, caches warm
        local = batch_seconds(scenario, Path(tmp) / "local", args.paths)
        spread = batch_seconds(scenario, Path(tmp) / "cluster", args.paths,
                               "--workers", str(args.workers))
    print(f"{machine()}")
    print(f"  batch of {args.variants} variants x {args.paths:,} paths: local {local:.1f} s, "
          f"{args.workers}-worker LocalCluster {spread:.1f} s")
    print(f"  cluster rate against local: {local / spread:.2f}x (target 0.9x or better)")
    append_record(args.records, {"benchmark": "cluster", "variants": args.variants,
                                 "paths": args.paths, "workers": args.workers,
                                 "seconds": {"local": local, "cluster": spread},
                                 "cluster_over_local_rate": local / spread})


if __name__ == "__main__":
    main()
