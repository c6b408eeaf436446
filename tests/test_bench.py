"""The benchmark script runs end to end, prints its ratios and appends its record (no
speed is asserted here: speed is measured by `make bench`, never in tests)."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

BENCH = ROOT / "benchmarks" / "bench_engine.py"


def test_the_benchmark_runs_end_to_end_and_appends_a_record(tmp_path):
    for _ in range(2):
        run = subprocess.run([sys.executable, str(BENCH), "--paths", "64", "--reference-paths",
                              "1", "--repeats", "1", "--no-compile", "--records", str(tmp_path)],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
    out = run.stdout
    for label in ("machine:", "numba engine, service only", "numba engine + waterfall",
                  "plain-Python reference", "ratios, measured in this run",
                  "against the reference", "threads against one", "waterfall's share",
                  "marginal rate against the kernels'", "against its own simulation's",
                  "second process",
                  "record appended to"):
        assert label in out, (label, out)
    assert "cold compile" not in out   # --no-compile
    records = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert len(records) == 2   # appended, not overwritten
    assert records[0]["machine"] and records[0]["scenario"] == "essex_mst"
    assert records[0]["paths_per_second"]["sibsim_run_marginal"] > 0
    assert records[0]["paths_per_second"]["sibsim_run_simulation_marginal"] > 0
    assert records[0]["sibsim_run_paths"] == [16, 64]
    assert records[1]["seconds"]["cold_compile"] is None
    assert {"commit", "utc", "seconds"} <= set(records[1])
