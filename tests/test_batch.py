"""Batch runs: summary table with paired differences, common random numbers, resume after
SIGKILL (including mid-write), nothing rewritten by a finished rerun, shipped scenarios."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator import compare, compose, engine, io
from simulator.batch import plan_batch, run_batch, summary_table
from simulator.reports import SUMMARY_FILE

from helpers import ROOT, make_scenario, with_money

COST_LINES = ["per_team_per_quarter", "per_case_started", "flexible_fund_per_family", "set_up",
              "licence_per_team_per_year", "management_fee_per_quarter"]


def scenario_folder(tmp_path, paths=120):
    """A money scenario with two stresses and a two-point sweep, a file extending it, and a
    calibration-targets file that is not a scenario."""
    scen = tmp_path / "scen"
    scen.mkdir()
    base = with_money()
    base["simulation"]["paths"] = paths
    base["stresses"] = {"costs_plus20": {f"costs.{k}": {"scale": 1.2} for k in COST_LINES},
                        "effect_halved": {"treatment.hazard_ratio_during": {"power": 0.5},
                                          "treatment.hazard_ratio_after": {"power": 0.5}}}
    base["sweeps"] = {"price": {"contract.price_per_care_day_saved": [50, 70]}}
    (scen / "small.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    (scen / "stress").mkdir()
    (scen / "stress" / "fewer.yaml").write_text(textwrap.dedent("""\
        extends: ../small.yaml
        name: small_fewer
        referrals.per_team_per_month: {scale: 0.7}
        """))
    (scen / "targets.yaml").write_text(
        "targets:\n  children_treated: {value: 388, tolerance: 0.1}\n")
    return scen


EXPECTED = ["small", "small__costs_plus20", "small__effect_halved", "small__price_1",
            "small__price_2", "small_fewer"]


def test_batch_writes_folders_and_a_summary_with_paired_differences(tmp_path):
    scen = scenario_folder(tmp_path)
    plan = plan_batch([scen])
    assert [r.name for r in plan.runs] == EXPECTED
    assert [p.name for p, _ in plan.skipped] == ["targets.yaml"]
    out = tmp_path / "out"
    outcome = run_batch(plan, out)
    assert outcome.ran == EXPECTED and not outcome.failed and outcome.summary_written
    table = io.read_table(out / SUMMARY_FILE)
    assert list(table.scenario) == EXPECTED
    assert list(table.kind) == ["scenario", "stress", "stress", "sweep", "sweep", "scenario"]
    assert table.base.fillna("").tolist() == [""] + ["small"] * 5
    assert table.status.eq("ok").all() and table.paired.iloc[1:].astype(bool).all()
    assert table.description.iloc[3] == "small with contract.price_per_care_day_saved=50."
    for _, row in table.iterrows():
        summary = json.loads((out / row.scenario / "summary.json").read_text())
        manifest = json.loads((out / row.scenario / "manifest.json").read_text())
        assert manifest["variant_hash"].startswith(row.variant_hash)
        # exactly: the CSV keeps every digit and read_table reads them all
        for column, value in (
                ("investor.multiple.mean", summary["investor"]["multiple"]["mean"]),
                ("investor.multiple.mean_se", summary["investor"]["multiple"]["se"]),
                ("commissioner.prob_cap_reached", summary["commissioner"]["prob_cap_reached"])):
            assert row[column] == value, column
    base = pd.read_parquet(out / "small" / "paths.parquet")
    costs = pd.read_parquet(out / "small__costs_plus20" / "paths.parquet")
    row = table.set_index("scenario").loc["small__costs_plus20"]
    d = costs.multiple - base.multiple
    assert row["investor.multiple.mean_diff"] == pytest.approx(d.mean(), abs=1e-12)
    assert row["investor.multiple.mean_diff_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)))
    assert row["investor.multiple.mean_diff"] < 0 and row["investor.capital_drawn.mean_diff"] > 0
    assert "costs.set_up={scale: 1.2}" in row.change
    assert table.set_index("scenario").loc["small_fewer", "service.children_treated.mean_diff"] < 0


def test_a_batch_loads_the_kernels_first_and_a_failure_there_stops_nothing(tmp_path,
                                                                           monkeypatch):
    """A local batch loads (on a cold cache: compiles on two cores, precompile's helper
    alongside) the kernels for its first variant before running any; a scenario that
    fails there is left for its own run to report, and the others run."""
    from simulator import precompile, run

    calls = []
    real_run = run.run_scenario

    def load_kernels(scenario, say=True):
        calls.append(("load", scenario.name))
        raise engine.ParameterError("a draw the first variant cannot take")

    def run_scenario(loaded, *args, **kwargs):
        calls.append(("run", loaded.scenario.name))
        return real_run(loaded, *args, **kwargs)

    monkeypatch.setattr(precompile, "load_kernels", load_kernels)
    monkeypatch.setattr(run, "run_scenario", run_scenario)
    plan = plan_batch([scenario_folder(tmp_path, paths=20)])
    outcome = run_batch(plan, tmp_path / "out")
    assert calls[0] == ("load", "small")
    assert [c for c in calls if c[0] == "load"] == [calls[0]]
    assert [name for kind, name in calls[1:]] == EXPECTED
    assert outcome.ran == EXPECTED and not outcome.failed


def test_each_variant_is_described_in_one_line(tmp_path):
    d = with_money()
    d["description"] = "A small bond\nwith two teams"    # (a folded YAML string keeps no breaks)
    d["stresses"] = {"fewer": {"description": "Referrals 30% down.",
                               "referrals.per_team_per_month": {"scale": 0.7}},
                     "dearer": {"costs.set_up": {"scale": 1.2}}}
    d["sweeps"] = {"price": {"contract.price_per_care_day_saved": [50, 70]}}
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "small.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    (scen / "own.yaml").write_text("extends: small.yaml\nname: small_own\n"
                                   "description: Its own words.\ncosts.set_up: 1000\n")
    (scen / "plain.yaml").write_text("extends: small.yaml\nname: small_plain\n"
                                     "costs.set_up: 2000\n")
    table = summary_table(plan_batch([scen]), tmp_path / "out")   # nothing run: described anyway
    base = "A small bond with two teams."
    assert dict(zip(table.scenario, table.description)) == {
        "small": "A small bond with two teams",
        "small__fewer": "Referrals 30% down.",
        "small__dearer": f"{base} Changed: costs.set_up={{scale: 1.2}}.",
        "small__price_1": f"{base} Changed: contract.price_per_care_day_saved=50.",
        "small__price_2": f"{base} Changed: contract.price_per_care_day_saved=70.",
        "small_own": "Its own words.",
        "small_plain": f"{base} Changed: costs.set_up=2000."}
    # a stress's description is what it is, not a change it makes
    row = table.set_index("scenario").loc["small__fewer"]
    assert row.change == "referrals.per_team_per_month={scale: 0.7}"
    d["description"] = ""
    (scen / "small.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    table = summary_table(plan_batch([scen]), tmp_path / "out")
    assert table.set_index("scenario").loc["small__dearer", "description"] == \
        "small with costs.set_up={scale: 1.2}."


def test_the_batch_table_printed_says_what_each_variant_is(tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main
    d = with_money()
    d["description"] = "A small bond with two teams"
    d["stresses"] = {"fewer": {"description": "Referrals 30% down.",
                               "referrals.per_team_per_month": {"scale": 0.7}}}
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "small.yaml"), "--paths", "40",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line}
    assert lines["scenario"].endswith("what it is")
    assert lines["small"].endswith("A small bond with two teams")
    assert lines["small__fewer"].endswith("Referrals 30% down.")


def test_summary_figures_match_summary_json_for_every_headline_metric():
    res = engine.simulate(make_scenario(base=with_money()), paths=150, seed=4)
    from simulator import metrics

    summary = metrics.summary(res)
    for m in compare.HEADLINE_METRICS + ["investor.var95", "investor.cvar95"]:
        spec = compare.path_metric(m)
        assert compare.statistic(spec.values(res.paths), spec.stat) == \
            pytest.approx(compare.metric_value(summary, m), rel=1e-12, abs=1e-12), m
        assert compare.standard_error(m, res.paths, summary) > 0 or m.endswith("prob_cap_reached")


def _bootstrap_row_by_row(fn, n):
    """The percentile bootstrap as written first: one resample, one statistic at a time."""
    rng = np.random.default_rng(compare.BOOTSTRAP_SEED)
    draws = np.array([fn(rng.integers(0, n, n)) for _ in range(compare.BOOTSTRAP_SAMPLES)])
    draws = draws[np.isfinite(draws)]
    return float(draws.std(ddof=1)) if len(draws) > 1 else float("nan")


@pytest.mark.parametrize("block", [None, 1, 5000])
def test_the_bootstrap_taken_along_rows_gives_the_same_standard_errors(monkeypatch, block):
    """The resamples drawn at once (in batches of any size), and the percentiles of a
    batch taken in one call, give the very numbers of the bootstrap row by row:
    batch_summary.csv did not change."""
    if block is not None:
        monkeypatch.setattr(compare, "RESAMPLE_BLOCK_VALUES", block)
    rng = np.random.default_rng(3)
    for n in (2, 7, 1001):
        x = rng.lognormal(size=n)
        y = x * rng.lognormal(sigma=0.1, size=n)
        for variant in ("plain", "ties", "nan"):
            xv, yv = x.copy(), y.copy()
            if variant == "ties":
                xv, yv = np.round(xv, 1), np.round(yv, 1)
            if variant == "nan":
                xv[::5] = np.nan   # (an IRR where a path has none)
            a, b = pd.DataFrame({"multiple": xv}), pd.DataFrame({"multiple": yv})
            for m in ("investor.multiple.p05", "investor.multiple.p50", "investor.var95"):
                stat = compare.path_metric(m).stat
                want = _bootstrap_row_by_row(
                    lambda i, xv=xv, stat=stat: compare.statistic(xv[i], stat), n)
                assert compare.standard_error(m, a) == pytest.approx(want, rel=0, abs=0,
                                                                     nan_ok=True), (n, m)
                want = _bootstrap_row_by_row(
                    lambda i, xv=xv, yv=yv, stat=stat:
                    compare.statistic(xv[i], stat) - compare.statistic(yv[i], stat), n)
                assert compare.paired_difference_se(m, a, b) == pytest.approx(
                    want, rel=0, abs=0, nan_ok=True), (n, m)


def test_common_random_numbers_make_the_difference_5x_more_precise(tmp_path):
    """Costs +20% on the small money scenario: the paired SE of the change in the mean
    multiple is over 5x smaller than with independent seeds (about 6.5x on seeds 11, 21,
    31; the ratio's own sampling error is about 0.3)."""
    scen = scenario_folder(tmp_path, paths=400)
    variants = {v.name: v for v in compose.load_variants(scen / "small.yaml")}
    base = variants["small"].loaded.scenario
    stressed = variants["small__costs_plus20"].loaded.scenario
    assert stressed.costs.per_team_per_quarter.value == pytest.approx(72_000)
    a = engine.simulate(base, paths=400, seed=11).paths
    b = engine.simulate(stressed, paths=400, seed=11).paths          # common random numbers
    c = engine.simulate(stressed, paths=400, seed=12).paths          # independent draws
    crn = compare.paired_difference_se("investor.multiple.mean", b, a)
    independent = np.hypot(compare.standard_error("investor.multiple.mean", a),
                           compare.standard_error("investor.multiple.mean", c))
    assert independent / crn > 5, (independent, crn)
    # the difference itself is real: many paired standard errors from zero
    assert (b.multiple.mean() - a.multiple.mean()) < -10 * crn


def test_resume_reruns_only_what_changed(tmp_path):
    scen = scenario_folder(tmp_path)
    out = tmp_path / "out"
    run_batch(plan_batch([scen]), out)
    again = run_batch(plan_batch([scen]), out)
    assert again.ran == [] and again.skipped == EXPECTED and not again.summary_written
    f = scen / "stress" / "fewer.yaml"
    f.write_text(f.read_text().replace("scale: 0.7", "scale: 0.6"))
    said = []
    third = run_batch(plan_batch([scen]), out, echo=said.append)
    assert third.ran == ["small_fewer"] and third.summary_written
    # the variant's earlier results, of the file as it was, are named as replaced
    assert any("small_fewer" in m and "(replaced: another scenario: small_fewer" in m
               for m in said), said
    fewer = plan_batch([scen], paths=60)
    said.clear()
    assert run_batch(fewer, out, echo=said.append).ran == EXPECTED  # another path count
    assert sum("(replaced: small" in m for m in said) == len(EXPECTED), said


# --------------------------------------------------------------------------- kill and resume
DRIVER = textwrap.dedent("""\
    # Runs `sibsim batch` and SIGKILLs itself in the middle of a chosen write.
    import os, signal, sys
    import pyarrow.parquet as pq
    from simulator.cli import main

    mode, n = sys.argv[1], int(sys.argv[2])
    calls = [0]
    if mode == "parquet":          # half of the n-th parquet file written, then killed
        real = pq.write_table
        def write_table(table, where, *args, **kwargs):
            real(table, where, *args, **kwargs)
            calls[0] += 1
            if calls[0] == n:
                os.truncate(where, os.path.getsize(where) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        pq.write_table = write_table
    elif mode == "summary":        # batch_summary.csv's temporary file half written, then killed
        def fsync(fd):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = fsync
    main(sys.argv[3:])
    """)


def sibsim_batch(*args):
    return [sys.executable, "-m", "simulator", "batch", *map(str, args), "--quiet"]


def tree_state(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_killed_batches_resume_to_the_uninterrupted_result(tmp_path):
    """Killed mid-write (a variant's parquet file, then batch_summary.csv) and at random
    moments (on a rerun at another path count, which replaces every folder), the batch
    finishes on the next run with the uninterrupted result, and a further run rewrites
    nothing."""
    scen = scenario_folder(tmp_path, paths=100)
    reference = tmp_path / "reference"
    run_batch(plan_batch([scen], paths=300), reference)
    out = tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def killed_in_write(mode, n):
        proc = subprocess.run([sys.executable, str(driver), mode, str(n), "batch", str(scen),
                               "--out", str(out), "--quiet"], env=env, capture_output=True)
        assert proc.returncode == -signal.SIGKILL, proc.stderr

    killed_in_write("parquet", 4)   # half-way through the second variant's quarters.parquet
    assert any(p.name.endswith(".tmp") for p in out.iterdir())  # a half-written folder is left
    killed_in_write("summary", 0)   # every variant finished; batch_summary.csv half written
    assert not (out / SUMMARY_FILE).exists()
    rng = random.Random(5)
    for _ in range(3):              # at random moments, with every variant to redo
        p = subprocess.Popen(sibsim_batch(scen, "--out", out, "--paths", 300), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 2.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
    proc = subprocess.run(sibsim_batch(scen, "--out", out, "--paths", 300), env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for name in EXPECTED:
        for table in ("paths.parquet", "quarters.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(out / name / table),
                                          pd.read_parquet(reference / name / table),
                                          check_exact=True)
        assert json.loads((out / name / "summary.json").read_text()) == \
            json.loads((reference / name / "summary.json").read_text())
        assert json.loads((out / name / "manifest.json").read_text())["paths"] == 300
    assert (out / SUMMARY_FILE).read_text() == (reference / SUMMARY_FILE).read_text()

    before = tree_state(out)
    proc = subprocess.run(sibsim_batch(scen, "--out", out, "--paths", 300), env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert tree_state(out) == before


# --------------------------------------------------------------------------- shipped scenarios
def test_shipped_scenarios_plan_with_stresses_and_cited_sources():
    plan = plan_batch([ROOT / "scenarios"])
    names = [r.name for r in plan.runs]
    stress_files = sorted((ROOT / "scenarios" / "stress").glob("*.yaml"))
    assert len(stress_files) >= 7
    for f in stress_files:
        v = compose.load_variants(f)[0]
        assert v.base == "essex_mst" and v.name in names
        assert v.seed == plan.runs[names.index("essex_mst")].seed  # common random numbers
        text = f.read_text()
        assert "extends: ../essex_mst.yaml" in text
        for line in text.splitlines():   # every override carries its unit and source
            if line.strip() and not line.lstrip().startswith("#") and ":" in line \
                    and not line.startswith(("extends", "name", "description", "costs:",
                                             "counterfactual:")):
                assert "#" in line, (f.name, line)
    start = compose.load_composed(ROOT / "scenarios" / "stress" / "essex_start_like.yaml").scenario
    assert start.treatment.hazard_ratio_after.value >= 0.8
    assert "Fonagy" in (ROOT / "scenarios" / "stress" / "essex_start_like.yaml").read_text()
    other = [r for r in plan.runs if r.variant.file.name == "adoption_iaam.yaml"]
    assert {r.variant.kind for r in other} == {"scenario", "stress", "sweep"}
    iaam = other[0].variant.loaded.scenario
    assert iaam.contract.price_per_care_day_saved == 0 and len(iaam.contract.outcome_events) == 3
    total = sum(r.paths for r in plan.runs)
    assert total <= 60_000  # the whole folder stays a few minutes' work on two cores


def test_a_batch_with_a_run_too_big_for_memory_is_refused_before_anything_runs(tmp_path):
    from simulator.loader import ScenarioError
    scen = scenario_folder(tmp_path)
    with pytest.raises(ScenarioError, match=r"100,000,000 paths of small need about"):
        plan_batch([scen], paths=100_000_000)
