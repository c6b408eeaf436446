"""Every command in the README's table of commands runs as written, in a folder holding
the shipped scenarios (as a fresh clone does after `make run`)."""
import re
import shlex
import subprocess
import sys

from helpers import ROOT

COMMAND = re.compile(r"^\| `(sibsim [^`]+)` \|", re.M)


def test_the_readme_commands_run_as_written(tmp_path):
    commands = COMMAND.findall((ROOT / "README.md").read_text())
    assert len(commands) >= 8 and commands[0].startswith("sibsim run ")
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    for command in commands:   # in order: the first run writes what the report reads
        args = [a for part in shlex.split(command)[1:] for a in _as_shell_expands(part, tmp_path)]
        done = subprocess.run([sys.executable, "-m", "simulator", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert (tmp_path / "results" / "essex_mst" / "report.html").exists()


def _as_shell_expands(word: str, folder) -> list[str]:
    """A shell word, its glob expanded in ``folder`` as the shell would."""
    if "*" not in word:
        return [word]
    return sorted(str(p.relative_to(folder)) for p in folder.glob(word))


def test_the_readme_python_runs_as_written(tmp_path):
    """The "From Python" block, at fewer paths, in a folder holding the scenarios."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"## From Python\n\n```python\n(.*?)```", readme, re.S)
    assert "simulator.simulate(" in block and "run_batch(" in block
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    code = block.replace("paths=2000", "paths=100")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "results" / "batch_summary.xlsx").is_file()
    assert (tmp_path / "results" / "batch_summary.csv").is_file()
    assert (tmp_path / "essex.xlsx").is_file()
