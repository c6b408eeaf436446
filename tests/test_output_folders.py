"""Results never cost a user's files: a folder or file sibsim did not write is left
alone, and a kill at any moment leaves the old or the new results whole at the name."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from simulator import io
from simulator.cli import main

from helpers import ESSEX, ROOT


def _run(out, *more):
    return CliRunner().invoke(main, ["run", str(ESSEX), "--paths", "20", "--quiet", "--out",
                                     str(out), *more])


@pytest.mark.parametrize("kind", ["folder with a file", "file", "link to a folder"])
def test_what_a_user_keeps_at_the_results_name_survives_every_command(tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "precious.txt").write_text("data")
    target = out / "essex_mst"
    if kind == "folder with a file":
        target.mkdir()
        (target / "precious.txt").write_text("data")
    elif kind == "file":
        target.write_text("data")
    else:
        target.symlink_to(theirs)
    before = sorted(p.name for p in out.iterdir())
    for args in ([], ["--set", "name=essex_mst"]):
        result = _run(out, *args)
        assert result.exit_code == 2, result.output
        assert f"{target} " in result.stderr and "left alone" in result.stderr
        assert "nothing was written" in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == before   # no temporary left either
    kept = theirs / "precious.txt" if kind == "link to a folder" else (
        target / "precious.txt" if kind == "folder with a file" else target)
    assert kept.read_text() == "data"
    # the other commands that write a folder of results refuse it as well
    sens = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--param",
                                     "referrals.per_team_per_month=4:6", "--paths", "20",
                                     "--metric", "service.children_treated.mean",
                                     "--out", str(tmp_path), "--quiet"])
    assert sens.exit_code == 0, sens.output   # (its own folder: absent, so written)
    (tmp_path / "essex_mst__sensitivity" / "notes.txt").unlink(missing_ok=True)
    (tmp_path / "essex_mst__sensitivity" / "sensitivity.json").unlink()
    again = CliRunner().invoke(main, ["sensitivity", str(ESSEX), "--param",
                                      "referrals.per_team_per_month=4:6", "--paths", "20",
                                      "--metric", "service.children_treated.mean",
                                      "--out", str(tmp_path), "--quiet"])
    assert again.exit_code == 2 and "left alone" in again.stderr


def test_an_empty_folder_and_earlier_results_are_replaced(tmp_path):
    (tmp_path / "essex_mst").mkdir()
    assert _run(tmp_path).exit_code == 0
    manifest = json.loads((tmp_path / "essex_mst" / "manifest.json").read_text())
    assert manifest["paths"] == 20
    assert _run(tmp_path, "--paths", "30").exit_code == 0
    assert json.loads((tmp_path / "essex_mst" / "manifest.json").read_text())["paths"] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["essex_mst"]


KILLED = textwrap.dedent("""
    import os, shutil, sys
    from pathlib import Path
    from simulator import io
    target, when = Path(sys.argv[1]), sys.argv[2]
    if when == "after the exchange":   # before the old results are deleted
        io.shutil.rmtree = lambda *a, **k: os._exit(9)
    with io.atomic_folder(target) as tmp:
        (tmp / "manifest.json").write_text('{"package": "sibsim"}')
        (tmp / "new.txt").write_text("new")
        if when == "while writing":
            os._exit(9)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
@pytest.mark.parametrize("when", ["while writing", "after the exchange", "never"])
def test_a_kill_at_any_moment_leaves_old_or_new_results_whole(tmp_path, when):
    target = tmp_path / "essex_mst"
    target.mkdir()
    (target / "manifest.json").write_text('{"package": "sibsim"}')
    (target / "old.txt").write_text("old")
    killed = subprocess.run([sys.executable, "-c", KILLED, str(target), when],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True)
    assert killed.returncode == (0 if when == "never" else 9), killed.stderr
    names = {p.name for p in target.iterdir()}
    expected = {"while writing": {"manifest.json", "old.txt"}}.get(
        when, {"manifest.json", "new.txt"})
    assert names == expected   # whole: the old folder, or the new one
    leftovers = [p for p in tmp_path.iterdir() if p.name != "essex_mst"]
    assert bool(leftovers) == (when != "never")
    with io.atomic_folder(target) as tmp:   # the next writer removes what the dead one left
        (tmp / "manifest.json").write_text('{"package": "sibsim"}')
    assert [p.name for p in tmp_path.iterdir()] == ["essex_mst"]


def test_the_exchange_swaps_two_folders_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not io.exchange(a, b):
        pytest.skip("no atomic exchange on this system")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_a_batch_refuses_to_run_over_a_users_folder_and_writes_nothing(tmp_path):
    stress = ROOT / "scenarios" / "stress" / "essex_start_like.yaml"
    out = tmp_path / "out"
    (out / "essex_start_like").mkdir(parents=True)
    (out / "essex_start_like" / "precious.txt").write_text("data")
    result = CliRunner().invoke(main, ["batch", str(stress), "--out", str(out), "--paths",
                                       "20", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "essex_start_like holds files sibsim did not write" in result.stderr
    assert (out / "essex_start_like" / "precious.txt").read_text() == "data"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "essex_start_like"]


@pytest.mark.parametrize("where", ["parquet", "json"])
def test_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch, where):
    import errno
    import pathlib

    import pyarrow.parquet as pq

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")   # (no file name, as a write)

    if where == "parquet":
        monkeypatch.setattr(pq, "write_table", full)
    else:
        monkeypatch.setattr(pathlib.Path, "write_text", full)
    result = _run(tmp_path)
    assert result.exit_code == 1
    name = "paths.parquet" if where == "parquet" else "summary.json"
    assert f"error: {tmp_path / 'essex_mst' / name}: No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []
