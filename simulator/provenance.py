"""Which code a result came from: the git commit of the package's own source.

Run from a git checkout, the package asks git (with "-dirty" for uncommitted
changes). Installed from a wheel, it has no repository, so the build stamps the
commit it was built from into the package (``BUILD_COMMIT``, written by
``setup.py``, also into a source distribution so that a wheel built from one
keeps it). Standard library only: ``setup.py`` loads this file by path at build
time, before any of the package's dependencies is installed.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

STAMP = "BUILD_COMMIT"
_COMMIT = re.compile(r"[0-9a-f]{40}(-dirty)?")   # what git_commit returns
_HERE = Path(__file__).resolve().parent


def checkout_commit(here: Path) -> str | None:
    """The commit of the package folder ``here`` if git tracks it, with "-dirty" if it has
    changes. None otherwise: also for a package installed into a virtual environment that
    sits inside some other project's repository, whose commit says nothing about this
    package's code."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True,
                              timeout=5)
    try:
        if git("ls-files", "--error-unmatch", "--", "engine.py").returncode != 0:
            return None
        out = git("rev-parse", "HEAD")
        if out.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--", ".").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty else "")


def stamped_commit(here: Path) -> str | None:
    """The commit stamped into the package folder ``here`` when it was built, if any (a
    stamp that is not a commit is ignored)."""
    try:
        text = (here / STAMP).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _COMMIT.fullmatch(text) else None


def git_commit(here: Path | None = None) -> str | None:
    """The commit of the package's code (``here``: the package's folder): from git in a
    checkout, else from the stamp of the build it was installed from, else None."""
    here = _HERE if here is None else Path(here)
    return checkout_commit(here) or stamped_commit(here)


def write_stamp(source: Path, target: Path) -> str | None:
    """Stamp the commit of the package source folder ``source`` into the built package
    folder ``target``; returns it (None, and no stamp, when the source has none)."""
    commit = git_commit(source)
    if commit is not None:
        target.mkdir(parents=True, exist_ok=True)
        (target / STAMP).write_text(commit + "\n", encoding="ascii")
    return commit
