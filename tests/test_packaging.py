"""pyproject.toml's lower bounds are what `make test-oldest` tests: tests/oldest-versions.txt
pins every dependency at its bound (the bound's own release, or the first patch release
where no wheel of the bound exists), so that a bound raised or added is tested too."""
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from simulator import provenance

from helpers import ROOT


def _oldest_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "tests" / "oldest-versions.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_the_oldest_versions_tested_are_the_lower_bounds_of_every_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(d) for d in project["dependencies"]]
    pins = _oldest_pins()
    assert set(pins) == {canonicalize_name(r.name) for r in requirements}
    for req in requirements:
        lower = [s for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{req}: one lower bound, tested by make test-oldest"
        bound = Version(lower[0].version)
        pin = pins[canonicalize_name(req.name)]
        assert pin in req.specifier, (str(req), str(pin))
        assert pin.release[:len(bound.release)] == bound.release, (str(req), str(pin))


def _git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_built_package_keeps_the_commit_it_was_built_from(tmp_path):
    """Outside any repository a package has no git to ask: the build's stamp names its
    commit ("-dirty" if built from changed sources); a stamp that is not a commit is
    ignored, and no stamp means no commit."""
    source = tmp_path / "checkout" / "simulator"
    source.mkdir(parents=True)
    (source / "engine.py").write_text("# the kernels\n")
    _git(source.parent, "init", "-q")
    _git(source.parent, "add", ".")
    _git(source.parent, "commit", "-qm", "the package")
    head = _git(source.parent, "rev-parse", "HEAD")
    built = tmp_path / "site-packages" / "simulator"
    assert provenance.git_commit(built) is None
    assert provenance.write_stamp(source, built) == head
    assert provenance.git_commit(built) == head
    (source / "engine.py").write_text("# changed, not committed\n")
    assert provenance.write_stamp(source, built) == head + "-dirty"
    assert provenance.git_commit(built) == head + "-dirty"
    # in the checkout, git's answer wins over a stamp left there
    (source / provenance.STAMP).write_text("0" * 40 + "\n")
    assert provenance.git_commit(source) == head + "-dirty"
    for junk in ("not a commit", "0" * 39, head + "-clean", ""):
        (built / provenance.STAMP).write_text(junk + "\n")
        assert provenance.git_commit(built) is None, junk
    assert provenance.write_stamp(built, tmp_path / "again") is None   # no commit: no stamp
    assert not (tmp_path / "again" / provenance.STAMP).exists()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and a checkout")
def test_a_wheel_names_its_commit_in_the_manifest(tmp_path):
    """The wheel pip builds from a clean clone carries the clone's commit, and the package
    installed from it (outside any repository) gives that commit to a run's manifest."""
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "--no-hardlinks", str(ROOT), str(clone))
    head = _git(clone, "rev-parse", "HEAD")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(clone)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("sibsim-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True)
    code = ("import json, datetime as dt; from simulator import io; t = dt.datetime.now(); "
            "print(io.__file__); print(json.dumps(io.manifest(scenario_name='s', "
            "scenario_file=None, scenario_sha256=None, seed=1, paths=1, chunk_paths=1, threads=1, "
            "started=t, finished=t), default=str))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout
    where, manifest = out.splitlines()
    assert Path(where).parent == tmp_path / "site" / "simulator"   # the wheel's copy
    assert json.loads(manifest)["git_commit"] == head
