"""Build hooks (everything else is in pyproject.toml): a wheel or source distribution
carries the git commit it was built from, so that a run's manifest can name the code's
commit when the package is installed rather than run from a checkout
(simulator/provenance.py). An editable install runs from the checkout and asks git."""
import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

SOURCE = Path(__file__).resolve().parent / "simulator"
# by path: the package's own dependencies are not installed while it is built
write_stamp = runpy.run_path(str(SOURCE / "provenance.py"))["write_stamp"]


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            write_stamp(SOURCE, Path(self.build_lib) / "simulator")


class SdistWithCommit(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        write_stamp(SOURCE, Path(base_dir) / "simulator")


setup(cmdclass={"build_py": BuildPyWithCommit, "sdist": SdistWithCommit})
