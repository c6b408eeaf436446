"""The sibsim command pauses the garbage collector while it imports, then freezes what is
alive and resumes it; a program that imports the library (or runs the command's group
in-process, as the other CLI tests do) keeps its collector as it was."""
import gc
import subprocess
import sys

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
