"""Runs and batches on a Dask cluster: bit-identical to a local run, a lost worker's
work done again to the same result, and no Dask without the flags."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import yaml

import simulator
from simulator import cluster, engine

from helpers import ESSEX, ROOT, with_money

distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: "
                                                        "pip install 'sibsim[dask]'")


def sibsim(*args, cwd=ROOT):
    done = subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_run_on_a_local_cluster_is_bit_identical(tmp_path):
    args = ["run", ESSEX, "--paths", 3000, "--seed", 9, "--quiet"]
    sibsim(*args, "--out", tmp_path / "local")
    sibsim(*args, "--out", tmp_path / "cluster", "--workers", 2)
    here, there = tmp_path / "local" / "essex_mst", tmp_path / "cluster" / "essex_mst"
    for name in ("paths.parquet", "quarters.parquet", "summary.json", "charts.json"):
        assert (here / name).read_bytes() == (there / name).read_bytes(), name
    manifest = json.loads((there / "manifest.json").read_text())
    assert manifest["cluster"] == {"scheduler": "LocalCluster", "workers": 2}
    assert "cluster" not in json.loads((here / "manifest.json").read_text())


def test_a_batch_on_a_local_cluster_is_bit_identical(tmp_path):
    scenario = with_money()
    scenario["simulation"]["paths"] = 300
    scenario["stresses"] = {"fewer": {"referrals.per_team_per_month": {"scale": 0.7}}}
    scenario["sweeps"] = {"price": {"contract.price_per_care_day_saved": [40, 80]}}
    (tmp_path / "scen").mkdir()
    (tmp_path / "scen" / "small.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    sibsim("batch", tmp_path / "scen", "--out", tmp_path / "local", "--quiet")
    sibsim("batch", tmp_path / "scen", "--out", tmp_path / "cluster", "--quiet", "--workers", 2)
    variants = sorted(p.name for p in (tmp_path / "local").iterdir() if p.is_dir())
    assert len(variants) == 4
    for name in variants:
        for f in ("paths.parquet", "quarters.parquet", "summary.json"):
            assert (tmp_path / "local" / name / f).read_bytes() == \
                (tmp_path / "cluster" / name / f).read_bytes(), (name, f)
        manifest = json.loads((tmp_path / "cluster" / name / "manifest.json").read_text())
        assert manifest["cluster"]["workers"] == 2
    assert (tmp_path / "local" / "batch_summary.csv").read_bytes() == \
        (tmp_path / "cluster" / "batch_summary.csv").read_bytes()


def test_a_killed_worker_does_not_change_the_result():
    scenario = simulator.load_scenario(ESSEX).scenario
    paths, seed = 30_000, 5
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  env={"NUMBA_NUM_THREADS": "1"}) as local, \
            distributed.Client(local) as client, cluster.use(client):
        client.run(lambda: engine.simulate(scenario, paths=2))   # kernels loaded
        done = {}
        run = threading.Thread(target=lambda: done.update(
            result=engine.simulate(scenario, paths=paths, seed=seed, chunk_paths=100)))
        run.start()
        while not any(client.processing().values()):
            time.sleep(0.01)
        time.sleep(0.3)
        victim = next(iter(client.run(os.getpid).values()))
        alive_when_killed = run.is_alive()
        os.kill(victim, signal.SIGKILL)
        run.join(timeout=300)
        workers_after = set(client.run(os.getpid).values())
    assert alive_when_killed, "the run ended before the worker was killed: more paths"
    assert victim not in workers_after          # the nanny started another worker
    here = engine.simulate(scenario, paths=paths, seed=seed)
    pd.testing.assert_frame_equal(done["result"].paths, here.paths, check_exact=True)
    assert np.array_equal(done["result"].by_calendar_quarter, here.by_calendar_quarter)


def test_without_cluster_flags_dask_is_not_imported(tmp_path):
    code = ("import sys\nfrom simulator.startup import main\n"
            f"sys.argv = ['sibsim', 'run', {str(ESSEX)!r}, '--paths', '20', '--quiet', "
            f"'--out', {str(tmp_path)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "essex_mst" / "paths.parquet").is_file()


def test_both_flags_are_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "simulator", "run", str(ESSEX), "--workers", "2",
                           "--scheduler", "tcp://127.0.0.1:1", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "not both" in done.stderr
    assert not list(tmp_path.iterdir())
