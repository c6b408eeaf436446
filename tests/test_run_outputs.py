"""`sibsim run` output files, reconciliation checks and the Essex scenario end to end."""
import json
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from simulator import engine, io
from simulator import layout as L
from simulator.kernels.chunk import conservation_totals
from simulator.loader import load_scenario
from simulator.run import run_scenario

from helpers import ESSEX, make_scenario

MANIFEST_KEYS = {"scenario", "scenario_file", "scenario_sha256", "package_version", "git_commit",
                 "seed", "paths", "numpy_version", "numba_version", "started_at", "finished_at"}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_manifest_commit_is_the_packages_own_or_none(tmp_path):
    """A copy of the package inside another project's repository, untracked there (as when
    installed into a virtual environment in the project's folder), has no commit: the
    project's would say nothing about the package's code. Tracked, it has the commit."""
    repo = tmp_path / "project"
    package = repo / ".venv" / "lib" / "simulator"
    package.mkdir(parents=True)
    (package / "engine.py").write_text("# an installed copy\n")
    (repo / "README").write_text("a project\n")

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                               *args], cwd=repo, check=True, capture_output=True,
                              text=True).stdout.strip()
    git("init", "-q")
    git("add", "README")
    git("commit", "-qm", "the project")
    assert io.git_commit(package) is None
    git("add", "-f", ".venv/lib/simulator/engine.py")
    git("commit", "-qm", "the package too")
    assert io.git_commit(package) == git("rev-parse", "HEAD")
    (package / "engine.py").write_text("# changed\n")
    assert io.git_commit(package) == git("rev-parse", "HEAD") + "-dirty"


def test_csv_tables_are_read_back_exactly_and_quietly(tmp_path):
    # floats whose 17th digit matters, over many magnitudes; no warning from pandas
    # (from 3.0 the option older pandas needs for exact reading is deprecated)
    x = np.random.default_rng(3).random(5000) * np.logspace(-9, 9, 5000)
    pd.DataFrame({"x": x}).to_csv(tmp_path / "t.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = io.read_table(tmp_path / "t.csv")["x"].to_numpy()
    assert np.array_equal(back, x)


def test_run_writes_paths_and_manifest(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(ESSEX), "--paths", "64",
                           "--seed", "3", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "young people treated" in proc.stdout
    # where the time went: the simulation, at its own rate, and the outputs after it
    assert re.search(r"essex_mst: 64 paths in [\d.]+ s \(simulated in [\d.]+ s, [\d,]+ "
                     r"paths/s; figures, report and files [\d.]+ s\) -> ", proc.stdout)
    folder = tmp_path / "essex_mst"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["essex_mst"]  # no temporary leftovers
    frame = pd.read_parquet(folder / "paths.parquet")
    assert len(frame) == 64
    for col in ["referrals", "accepted", "started", "completed", "lost_wait", "lost_care",
                "children_treated", "care_days_treated", "care_days_counterfactual",
                "child_days", "leavers", "vacancy_days"]:
        assert col in frame, col
    manifest = json.loads((folder / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(manifest)
    assert manifest["seed"] == 3 and manifest["paths"] == 64
    assert manifest["scenario_sha256"] == load_scenario(ESSEX).sha256


def test_a_run_too_big_for_memory_is_refused_at_once_with_a_clear_error(tmp_path):
    # 10^8 Essex paths would keep about 900 GB of outputs
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", str(ESSEX), "--paths",
                           "100000000", "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"error: {ESSEX}: 100,000,000 paths of essex_mst need about" in proc.stderr
    assert "run at most about" in proc.stderr and "nothing was written" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_referral_volume_the_engine_cannot_take_is_refused_at_once():
    """A trend of +1,000% a year over Essex's 63 months would make millions of referrals a
    path (the run used to grind on for hours): refused before anything is simulated, with
    the figures that make it so; a steep but possible trend still runs."""
    from simulator.compose import load_with_assignments

    steep = load_with_assignments(ESSEX, ["referrals.annual_trend=10"]).scenario
    rate = steep.referrals.per_team_per_month.value
    with pytest.raises(engine.ParameterError,
                       match=r"referrals: a path may expect about 1\.\d\de\+07 referrals "
                             rf"\(per_team_per_month up to {re.escape(f'{rate:g}')}, annual_"
                             r"trend up to 10, over 63 months of referrals\), more than the "
                             r"1,000,000"):
        engine.simulate(steep, paths=4)
    for trend in (0, 1):   # as shipped, and doubling every year: it runs
        s = load_with_assignments(ESSEX, [f"referrals.annual_trend={trend}"]).scenario
        r = engine.simulate(s, paths=400, seed=2)
        # the bound is one (no path expects more: the mean is not above it beyond Monte
        # Carlo error), and not a loose one (the ramp-up and the start delay are all it
        # leaves out; with a doubling every year the early months hardly count)
        bound = engine.referral_bound(engine.draw_parameters(s, 2, 0, 400), engine.layout(s))[0]
        mean = r.paths.referrals.mean()
        se = r.paths.referrals.std() / 20
        assert mean < bound + 4 * se and bound < 1.3 * mean, (trend, mean, bound)


def test_rerun_replaces_the_folder_whole(tmp_path):
    loaded = load_scenario(ESSEX)
    first = run_scenario(loaded, tmp_path, paths=20, seed=1, progress=False)
    second = run_scenario(loaded, tmp_path, paths=30, seed=2, progress=False)
    assert first.folder == second.folder
    assert len(pd.read_parquet(second.folder / "paths.parquet")) == 30
    assert [p.name for p in tmp_path.iterdir()] == ["essex_mst"]


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    loaded = load_scenario(ESSEX)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("simulator.io.write_json", boom)
    with pytest.raises(OSError):
        run_scenario(loaded, tmp_path, paths=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_checks_fail_writes_nothing_and_says_why(tmp_path, monkeypatch):
    """A run checks its outputs while it works out its figures: a failed check is what it
    raises (not an error of figures made from the failed outputs), and nothing is written."""
    real = engine.check_arrays

    def on_broken_totals(scenario, run, path_start=0):
        run.outputs.totals[3, L.T_CHILD_DAYS] += 1.0   # a day the quarters do not have
        real(scenario, run, path_start)

    def figures_of_broken_outputs(result):
        raise ValueError("figures of outputs that do not add up")

    monkeypatch.setattr(engine, "check_arrays", on_broken_totals)
    monkeypatch.setattr("simulator.metrics.summary", figures_of_broken_outputs)
    with pytest.raises(engine.ConservationError, match="child days by calendar quarter"):
        run_scenario(load_scenario(ESSEX), tmp_path, paths=10, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_checks_that_fail_after_the_figures_leave_nothing_not_even_plotly(tmp_path,
                                                                            monkeypatch):
    """The checks run while the files are written (paths.parquet on another thread): one
    that fails once the figures are made still leaves no folder, no temporary and no
    plotly.min.js, and a paths.parquet that cannot be written is the error raised."""
    from simulator.run import RunFiles

    real = engine.check_arrays
    calls = []

    def on_broken_totals(scenario, run, path_start=0):   # the run's own, not sensitivity's
        calls.append(scenario)
        if len(calls) == 1:
            run.outputs.totals[3, L.T_CARE_TREATED] += 1.0
        real(scenario, run, path_start)

    loaded = load_scenario(ESSEX)
    with monkeypatch.context() as patch:
        patch.setattr(engine, "check_arrays", on_broken_totals)
        with pytest.raises(engine.ConservationError, match="treated care days"):
            run_scenario(loaded, tmp_path, paths=10, progress=False,
                         files=RunFiles(plotlyjs="file"))
    assert list(tmp_path.iterdir()) == []
    real_write = io.write_parquet

    def full_for_paths(path, *args, **kwargs):
        if path.name == "paths.parquet":
            raise OSError(28, "No space left on device", str(path))
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(io, "write_parquet", full_for_paths)
    with pytest.raises(OSError, match="No space") as failed:
        run_scenario(loaded, tmp_path, paths=10, progress=False)
    assert failed.value.filename == str(tmp_path / "essex_mst" / "paths.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_disk_error_mid_run_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from click.testing import CliRunner

    from simulator.cli import main

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("simulator.io.write_json", full)
    result = CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "8", "--quiet",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert lines[0].endswith(": No space left on device") and "summary.json" in lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["run", str(ESSEX), "--paths", "8", "--quiet"],
    ["batch", str(ESSEX), "--paths", "8", "--quiet"],
    ["sensitivity", str(ESSEX), "--paths", "8", "--param", "referrals.acceptance_share=0.6:0.8"],
    ["breakeven", str(ESSEX), "--paths", "8", "--param", "treatment.hazard_ratio_after",
     "--metric", "investor.multiple.mean", "--target", "1.2"],
])
def test_an_unusable_out_folder_is_refused_before_anything_runs(tmp_path, monkeypatch, command):
    from click.testing import CliRunner

    from simulator.cli import main

    def must_not_run(*args, **kwargs):
        raise AssertionError("simulated although --out cannot be written")

    monkeypatch.setattr("simulator.engine.simulate", must_not_run)
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for out, why in [(a_file / "results", f"{a_file} is not a folder, so {a_file / 'results'}"),
                     (a_file, "")]:
        result = CliRunner().invoke(main, command + ["--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "Invalid value for '--out'" in result.output and why in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_output_problem_names_what_is_in_the_way(tmp_path):
    from simulator.io import output_problem

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert output_problem(tmp_path / "new" / "deeper", folder=True) is None
    assert output_problem(tmp_path / "new" / "fitted.yaml", folder=False) is None
    assert output_problem(a_file, folder=False) is None   # replaced, through a rename
    assert output_problem(a_file, folder=True) == f"{a_file} exists and is not a folder"
    assert output_problem(tmp_path, folder=False) == f"{tmp_path} is a folder"
    assert output_problem(a_file / "x.yaml", folder=False) == f"{a_file} is not a folder"
    assert output_problem(a_file / "d" / "x.yaml", folder=False) == (
        f"{a_file} is not a folder, so {a_file / 'd'} cannot be made")


def test_calibrate_refuses_an_unusable_out_file_before_fitting(tmp_path):
    from click.testing import CliRunner

    from simulator.cli import main

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    targets = ESSEX.parent / "essex_targets.yaml"
    for out in (a_file / "fitted.yaml", tmp_path):
        result = CliRunner().invoke(main, ["calibrate", str(ESSEX), "--targets", str(targets),
                                           "--free", "referrals.acceptance_share",
                                           "--out", str(out)])
        assert result.exit_code == 2 and "Invalid value for '--out'" in result.output
        assert "fitting" not in result.output


def test_conservation_holds_and_the_checker_catches_a_break():
    res = engine.simulate(make_scenario(), paths=200, seed=2)
    f = res.paths
    q = res.by_tracking_quarter
    assert np.all(q[:, :, L.Q_CARE_TREATED] <= q[:, :, L.Q_CHILD_DAYS] + 1e-9)
    assert np.all(q[:, :, L.Q_CARE_COUNTERFACTUAL] <= q[:, :, L.Q_CHILD_DAYS] + 1e-9)
    assert (f.lost_wait > 0).any() and (f.lost_care > 0).any() and (f.disrupted > 0).any()
    broken = f.copy()
    broken.loc[3, "started"] += 1
    with pytest.raises(engine.ConservationError, match="accepted = started"):
        engine.check_conservation(broken, res.by_tracking_quarter, res.by_calendar_quarter)
    cal = res.by_calendar_quarter.copy()
    cal[5, 2, L.K_CARE_TREATED] += 1.0
    with pytest.raises(engine.ConservationError, match="treated care days"):
        engine.check_conservation(f, res.by_tracking_quarter, cal)
    cal[5, 2, L.K_CARE_TREATED] = np.nan   # a NaN compares False: it must not slip through
    with pytest.raises(engine.ConservationError, match="not finite"):
        engine.check_conservation(f, res.by_tracking_quarter, cal)
    qsr = res.by_tracking_quarter.copy()
    row = np.flatnonzero(f.child_days > 0)[0]
    quarter = np.flatnonzero(qsr[row, :, L.Q_CHILD_DAYS] > 0)[0]
    # move a day of care into a quarter with no child day left: totals still add up
    qsr[row, quarter, L.Q_CARE_COUNTERFACTUAL] = qsr[row, quarter, L.Q_CHILD_DAYS] + 1.0
    qsr[row, quarter, L.Q_CARE_TREATED] = 0.0
    with pytest.raises(engine.ConservationError, match="care days exceed child days"):
        engine.check_conservation(f, qsr, res.by_calendar_quarter)


def test_the_totals_checked_are_those_of_the_outputs(monkeypatch):
    """simulate_chunk works out each path's totals for the checks as it writes the path:
    they must be the totals of the outputs the caller gets, path by path."""
    seen = {}
    real = engine.check_conservation

    def spy(paths, qsr, cal, totals=None, attrs=None):
        seen["totals"] = totals.copy()
        real(paths, qsr, cal, totals, attrs)

    monkeypatch.setattr(engine, "check_conservation", spy)
    res = engine.simulate(load_scenario(ESSEX).scenario, paths=150, seed=4, chunk_paths=40)
    expected = conservation_totals(res.by_calendar_quarter, res.by_tracking_quarter)
    assert np.array_equal(seen["totals"], expected)
    assert (expected[:, L.T_CHILD_DAYS] > 0).all()
    assert (expected[:, L.T_CASH_IMBALANCE] < 0.01).all()


def test_the_checker_catches_cash_that_does_not_add_up():
    res = engine.simulate(load_scenario(ESSEX).scenario, paths=20, seed=2)
    engine.check_conservation(res.paths, res.by_tracking_quarter, res.by_calendar_quarter)
    cal = res.by_calendar_quarter.copy()
    cal[4, 10, L.K_DISTRIBUTIONS_INVESTORS] += 1.0   # a pound paid out of nowhere
    with pytest.raises(engine.ConservationError, match="change in cash balance"):
        engine.check_conservation(res.paths, res.by_tracking_quarter, cal)


def test_calendar_quarters_start_on_quarter_days_and_cover_tracking():
    sc = load_scenario(ESSEX).scenario
    res = engine.simulate(sc, paths=20)
    assert res.calendar_quarters[0].isoformat() == "2012-10-01"
    assert all(q.month in (1, 4, 7, 10) and q.day == 1 for q in res.calendar_quarters)
    last_child_days = res.by_calendar_quarter[:, -1, L.K_CHILD_DAYS]
    assert np.all(last_child_days == 0)  # the horizon is past every tracking window


def test_essex_first_version_is_in_the_right_region():
    """Not the calibration (a later issue): the first version must be of the right size."""
    f = engine.simulate(load_scenario(ESSEX).scenario, paths=500).paths
    assert 250 < f.started.mean() < 500              # 388 served [REES2019] Executive Summary
    # 50 cases opened in year one [SF2014] first-year funnel
    assert 40 < f.started_first_year.mean() < 80
    assert 130 < f.treatment_days_median.mean() < 155  # median 142 days [REES2019] Section 5
    cf = f.care_days_counterfactual.sum() / f.child_days.sum()
    assert 0.4 < cf < 0.7                            # 55% historical baseline [REES2019] Section 5


def test_readme_example_scenario_is_valid_and_runs():
    import re

    import yaml

    from simulator.schema import Scenario

    text = (ESSEX.parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 14
    sc = Scenario.model_validate(yaml.safe_load(block))
    f = engine.simulate(sc, paths=20).paths
    assert f.started.mean() > 0 and "param.workforce.leaving_rate_per_year" in f


def test_progress_bar_only_when_asked(capsys):
    sc = make_scenario()
    engine.simulate(sc, paths=8, seed=1, progress=False)
    assert capsys.readouterr().err == ""
    engine.simulate(sc, paths=8, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "/8 [" in err and "path/s" in err   # tqdm's bar: paths done of 8, and the rate


def test_writers_racing_for_one_output_folder_leave_one_whole_result(tmp_path):
    """Runs writing the same results folder at once (two people, or two batches, with one
    --out) each replace it whole: none fails, the folder ends as one writer's complete
    output, and no temporary or set-aside folder is left behind."""
    import threading
    target = tmp_path / "essex_mst"
    writers, rounds, files = 6, 25, 5
    errors = []
    start = threading.Barrier(writers)

    def write(w):
        try:
            start.wait()
            for r in range(rounds):
                with io.atomic_folder(target, marker="part0.txt") as tmp:
                    for f in range(files):
                        (tmp / f"part{f}.txt").write_text(f"{w}-{r}")
        except BaseException as e:   # noqa: BLE001 (reported below)
            errors.append(repr(e))
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    contents = {p.read_text() for p in target.iterdir()}
    assert len(list(target.iterdir())) == files and len(contents) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["essex_mst"]


def test_a_run_says_what_it_replaced_and_whether_it_was_another_scenario(tmp_path):
    """Results replaced in a folder are named (scenario, paths, seed), and a folder of the
    same name holding another scenario's results says so."""
    from click.testing import CliRunner

    from simulator.cli import main
    first = CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "30", "--out", str(tmp_path)])
    assert first.exit_code == 0 and "replaced" not in first.stdout
    again = CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "40", "--out", str(tmp_path)])
    assert again.exit_code == 0
    assert "(replaced the results there: essex_mst, 30 paths, seed 20121101)" in again.stdout
    other = CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "20", "--out", str(tmp_path),
                                      "--set", "contract.price_per_care_day_saved=60"])
    assert other.exit_code == 0
    assert "replaced the results there: another scenario: essex_mst, 40 paths" in other.stdout
