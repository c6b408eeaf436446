"""The benchmark script: it runs end to end, and its line of targets says what the figures
meet (no speed is asserted here: speed is measured by `make bench`, never in tests)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from helpers import ROOT

BENCH = ROOT / "benchmarks" / "bench_engine.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_targets_line_says_which_target_each_figure_meets():
    bench = _bench_module()
    line = bench.targets(2, service_rate=26_000, full_rate=24_000, start=0.5)
    assert "engine 25,000 paths/s on 2 threads: met;" in line
    assert "waterfall within 20% of the engine: met (8%)" in line
    assert "second process under 1 s: met" in line
    slow = bench.targets(2, service_rate=24_999, full_rate=19_000, start=1.2)
    assert "2 threads: NOT met;" in slow
    assert "engine: NOT met (24%)" in slow
    assert "under 1 s: NOT met" in slow
    # a rate on one thread is not held to a target set for two
    assert "not tested (1 threads)" in bench.targets(1, 30_000, 29_000, 0.5)


def test_the_benchmark_runs_end_to_end_and_appends_a_record(tmp_path):
    import json
    for _ in range(2):
        run = subprocess.run([sys.executable, str(BENCH), "--paths", "64", "--reference-paths",
                              "1", "--repeats", "1", "--records", str(tmp_path)],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr
    out = run.stdout
    for label in ("machine:", "numba engine, service only", "numba engine + waterfall",
                  "plain-Python reference", "speed-up:", "second process", "targets: engine",
                  "record appended to"):
        assert label in out, (label, out)
    records = [json.loads(line) for line in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert len(records) == 2   # appended, not overwritten
    assert records[0]["machine"] and records[0]["scenario"] == "essex_mst"
    assert records[0]["paths_per_second"]["with_waterfall"] > 0
    assert {"commit", "utc", "seconds"} <= set(records[1])
