"""Writing results, atomically: a run's folder appears whole or not at all.

Files are written into a temporary sibling folder which is then renamed into
place (an existing result folder is swapped out and removed only after the new
one is in place), so an interrupted run never leaves partial output.
"""
from __future__ import annotations

import datetime as dt
import errno
import glob
import json
import math
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .provenance import git_commit
from .version import __version__

# pandas before 3.0 reads floats to about 15 digits unless asked for "round_trip"; from
# 3.0 its default parser is exact and the option is deprecated (a warning on every read).
_EXACT_FLOATS = ({"float_precision": "round_trip"}
                 if int(pd.__version__.split(".")[0]) < 3 else {})


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV table this package wrote, its floats read back exactly."""
    return pd.read_csv(path, **_EXACT_FLOATS)


def manifest(*, scenario_name: str, scenario_file: str | None, scenario_sha256: str | None,
             seed: int, paths: int, chunk_paths: int, threads: int, started: dt.datetime,
             finished: dt.datetime, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "scenario": scenario_name,
        "scenario_file": scenario_file,
        "scenario_sha256": scenario_sha256,
        "package": "sibsim",
        "package_version": __version__,
        "git_commit": git_commit(),
        "seed": seed,
        "paths": paths,
        "chunk_paths": chunk_paths,
        "numba_threads": threads,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": metadata.version("numba"),
        "pandas_version": pd.__version__,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "elapsed_seconds": round((finished - started).total_seconds(), 3),
        **(extra or {}),
    }


MANIFEST = "manifest.json"


class FolderInUse(FileExistsError):
    """The output folder holds something sibsim did not write: it is left alone."""

    def __str__(self) -> str:
        return self.args[0]


@contextmanager
def atomic_folder(target: Path, marker: str = MANIFEST) -> Iterator[Path]:
    """Yield a temporary folder; on success it takes the place of ``target`` in one step.

    ``target`` is replaced only if it is absent, an empty folder, or a folder sibsim
    wrote (it holds ``marker``, the file the caller writes into every such folder: a
    run's manifest); anything else raises FolderInUse before and after the writing, and
    is left as it was. A folder left behind by a writer that was killed is removed.
    """
    target = Path(target)
    problem = folder_problem(target, marker)
    if problem:
        raise FolderInUse(problem)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; results are for sharing
    try:
        yield tmp
        _swap_into_place(tmp, target, marker)
    except OSError as exc:   # named as the user knows it: in the results folder
        shutil.rmtree(tmp, ignore_errors=True)
        name = exc.filename if isinstance(exc.filename, str) else None
        if name is None or not name.startswith(str(tmp)) or isinstance(exc, FolderInUse):
            raise
        raise OSError(exc.errno, exc.strerror, str(target) + name[len(str(tmp)):]) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def folder_problem(target: Path, marker: str = MANIFEST) -> str | None:
    """Why ``target`` may not be replaced by results (None if it may): it must be absent,
    an empty folder, or a folder sibsim wrote (holding ``marker``; a run's manifest must
    be sibsim's)."""
    target = Path(target)
    if not os.path.lexists(target):
        return None
    if target.is_symlink() or not target.is_dir():
        return (f"{target} exists and is not a results folder sibsim wrote: it is left "
                f"alone (move it, or write the results elsewhere)")
    try:
        if not any(target.iterdir()) or _marked(target / marker):
            return None
    except OSError:
        pass
    return (f"{target} holds files sibsim did not write (no {marker} of sibsim's): it is "
            f"left alone (move it, or write the results elsewhere)")


def _marked(path: Path) -> bool:
    """Whether ``path`` is the marker file of a sibsim folder (a run's manifest, sibsim's)."""
    if not path.is_file():
        return False
    if path.name != MANIFEST:
        return True
    try:
        return json.loads(path.read_text()).get("package") == "sibsim"
    except (OSError, ValueError, AttributeError):
        return False


def _swap_into_place(tmp: Path, target: Path, marker: str, attempts: int = 1000) -> None:
    """Put the finished folder ``tmp`` at ``target`` in one step, so that a kill at any
    moment leaves either the old or the new folder whole at the name: a rename where
    nothing is there, else an atomic exchange of the two (the old one, then under the
    temporary name, is deleted after). Another writer of the same target may get there
    first: then this one tries again, and the last writer's folder stays."""
    for attempt in range(attempts):
        if not os.path.lexists(target):
            try:
                os.rename(tmp, target)
                return
            except OSError as e:   # a folder is there again: another writer's
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == attempts - 1:
                    raise
                continue
        problem = folder_problem(target, marker)
        if problem:
            raise FolderInUse(problem)
        try:
            exchanged = exchange(tmp, target)
        except FileNotFoundError:   # another writer moved it away in between
            continue
        if exchanged:
            shutil.rmtree(tmp, ignore_errors=True)   # (the old results, now)
            return
        _replace_in_two_steps(tmp, target)   # no exchange here: the best the OS offers
        return


def _replace_in_two_steps(tmp: Path, target: Path) -> None:
    """Where the system has no atomic exchange: set the old folder aside, rename the new
    one in, delete the old (a kill between the renames leaves the old one set aside)."""
    old = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.old"
    try:
        os.replace(target, old)
    except FileNotFoundError:
        pass
    try:
        os.replace(tmp, target)
    finally:
        shutil.rmtree(old, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths a and b atomically (Linux's renameat2 with RENAME_EXCHANGE, through
    ctypes); False where the system or its file system has no such call."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:   # a C library without it (glibc before 2.28)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _remove_stale_temporaries(target: Path) -> None:
    """Delete the hidden temporary and set-aside folders of ``target`` whose writer is no
    longer running (their names carry its process id): what a killed run left."""
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        parts = path.name[len(target.name) + 2:].split(".")
        if path.suffix not in (".tmp", ".old") or not parts[0].isdigit():
            continue
        if not _running(int(parts[0])):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process
        return True
    return True


def output_problem(path: str | Path, *, folder: bool) -> str | None:
    """Why results could not be written at ``path`` (a folder to write into, or a file to
    write), as far as can be told before writing; None if nothing stands in the way.

    Checked when a command line is read, so that an unusable ``--out`` stops the command
    before it simulates, not after: the target (if it exists) must be of the right kind,
    and the nearest folder that exists at or above where the writing happens must be a
    folder this user may write in (files and folders are made by renaming a temporary
    sibling into place, so a file needs its folder writable too).
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} exists and is not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder"
    where = path if folder else path.parent
    nearest = where
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        if nearest == where:
            return f"{where} is not a folder"
        return f"{nearest} is not a folder, so {where} cannot be made"
    if not os.access(nearest, os.W_OK | os.X_OK):
        return f"no permission to write in {nearest}"
    return None


def os_error_text(exc: OSError) -> str:
    """An operating-system error in one line: the file it concerns, then why."""
    why = exc.strerror or str(exc)
    name = exc.filename
    if name is None:
        return why
    more = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    name = os.fsdecode(name) if isinstance(name, bytes) else str(name)
    return f"{name}{more}: {why}"


@contextmanager
def naming_errors(path: Path) -> Iterator[None]:
    """An operating-system error while writing ``path`` names it: a full disk reported by
    a write or a flush carries no file name of its own."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or not exc.errno:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def write_json(path: Path, data: Any, compact: bool = False) -> None:
    """``data`` as standard JSON: a figure that is not a finite number (the standard
    error of one path, the IRR where no path has one) is null, which every JSON reader
    takes; Python's NaN and Infinity are not JSON. Indented for people to read, or
    ``compact`` (data for the report)."""
    with naming_errors(path):
        path.write_text(json_text(data, compact))


def json_text(data: Any, compact: bool = False) -> str:
    """``data`` as the text :func:`write_json` writes."""
    return json.dumps(finite_or_null(data), indent=None if compact else 2, sort_keys=False,
                      separators=(",", ":") if compact else None, default=_json_default,
                      allow_nan=False) + "\n"


def finite_or_null(data: Any) -> Any:
    """``data`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_null(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(v) for v in data]
    return data


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write_parquet(path: Path, frame: pd.DataFrame, metadata: dict[str, Any] | None = None) -> None:
    """``frame`` as a parquet file (its contiguous numeric columns taken as they are).
    Without dictionary encoding: most columns hold a value of their own on every path,
    and trying the dictionary on each took three quarters of the writing, for a file 2%
    smaller. Floats byte-stream split and zstd-compressed: a quarter smaller than
    snappy alone, and as fast (a batch folder holds a file a variant)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"sibsim"] = json.dumps(metadata, default=_json_default).encode()
        table = table.replace_schema_metadata(meta)
    with naming_errors(path):
        floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
        pq.write_table(table, path, use_dictionary=False, compression="zstd",
                       use_byte_stream_split=floats or False)


def write_text_atomic(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` through a temporary file (flushed to disk) and one
    rename; do nothing if it already holds that text. Returns whether it wrote."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with naming_errors(path), os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
