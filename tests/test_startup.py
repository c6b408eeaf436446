"""The sibsim command pauses the garbage collector while it imports, then freezes what is
alive and resumes it; a program that imports the library (or runs the command's group
in-process, as the other CLI tests do) keeps its collector as it was."""
import gc
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from simulator import cli, startup

CHILD = """
import gc, sys
from simulator import startup
assert gc.isenabled()
startup.pause_collector()
paused = not gc.isenabled()
import simulator.cli
startup.resume_collector("run")
print(paused, gc.isenabled(), gc.get_freeze_count() > 10_000,
      "simulator.engine" in sys.modules and "simulator.run" in sys.modules)
"""


def test_the_command_pauses_imports_freezes_and_resumes_the_collector():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "True", "True"]


def test_a_program_that_did_not_pause_keeps_its_collector_as_it_was():
    frozen = gc.get_freeze_count()
    startup.resume_collector("run")
    result = CliRunner().invoke(cli.main, ["schema"])
    assert result.exit_code == 0 and '"properties"' in result.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_python_m_simulator_runs_the_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "simulator", "--version"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "sibsim" in proc.stdout


HUGE_PAGES_CHILD = """
import os, sys
from simulator import startup
sys.argv = ["sibsim", "--version"]
try:
    startup.main()
except SystemExit:
    pass
print(os.environ.get("NUMPY_MADVISE_HUGEPAGE"))
"""


@pytest.mark.parametrize("users, expected", [(None, "0"), ("1", "1")])
def test_the_command_turns_numpys_huge_page_advice_off_unless_the_user_chose(users,
                                                                             expected):
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if users is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = users
    out = subprocess.run([sys.executable, "-c", HUGE_PAGES_CHILD], capture_output=True,
                         text=True, check=True, env=env).stdout.splitlines()
    assert out[-1] == expected   # (after the version the command printed)
