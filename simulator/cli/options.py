"""What the ``sibsim`` commands share: exit codes, option types and the report of a
scenario's problems.

Input problems exit with status 2 (EXIT_INVALID) before anything is simulated or
written; a failure after that (a broken check, a search with no crossing, failed batch
variants, an operating-system error) exits with status 1 (EXIT_FAILED).
"""
from __future__ import annotations

import functools
import math
import sys
from typing import NoReturn

import click

from ..plotly_js import CHOICES as PLOTLYJS_CHOICES
from ..schema import MAX_SEED
from ..yamlfiles import ScenarioError

EXIT_FAILED = 1
EXIT_INVALID = 2

SEED = click.IntRange(min=0, max=MAX_SEED)   # as the scenario's simulation.seed


class Output(click.Path):
    """Where a command writes: a folder (``folder=True``) or a file, checked when the
    command line is read (io.output_problem), before anything is simulated, so that an
    unusable --out does not waste a run."""

    def __init__(self, *, folder: bool):
        super().__init__(file_okay=not folder, dir_okay=folder)
        self.folder = folder

    def convert(self, value, param, ctx):
        from ..io import output_problem

        value = super().convert(value, param, ctx)
        problem = output_problem(value, folder=self.folder)
        if problem:
            self.fail(problem, param, ctx)
        return value


class Finite(click.ParamType):
    """A finite number (click's FLOAT also takes nan and inf)."""

    name = "number"

    def convert(self, value, param, ctx):
        x = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return x


FINITE = Finite()
OUT_FOLDER = Output(folder=True)
OUT_FILE = Output(folder=False)

# --set KEY=VALUE, as every command that reads one scenario takes it
set_option = click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE",
    help="Override a scenario key, validated like the file: KEY=VALUE, or "
         "'KEY={scale: 0.7}' / {power: 0.5} / {add: 6}. Repeatable.")


def plotlyjs_option(default: str | None, shown: str | None = None):
    """--plotlyjs: how each report page loads plotly.js (simulator.plotly_js); ``shown``
    is the default in words where it is not a choice."""
    return click.option(
        "--plotlyjs", type=click.Choice(PLOTLYJS_CHOICES), default=default,
        show_default=shown or True,
        help="How report pages load plotly.js (4.8 MB): inline in each page (works alone, "
             "offline), file (one plotly.min.js in the results folder, beside the run "
             "folders) or cdn (from cdn.plot.ly: needs the internet).")


def load_or_exit(file: str, assignments: tuple[str, ...] = ()):
    """Scenario FILE with its --set assignments, as run reads it (extends resolved); its
    problems reported and exit 2 if it has any."""
    from ..compose import load_with_assignments

    try:
        return load_with_assignments(file, assignments)
    except ScenarioError as exc:
        fail_invalid(exc)


# A file of thousands of unknown keys is not read as a scenario; its first problems say why.
MAX_PROBLEMS_SHOWN = 100


def fail_invalid(exc: ScenarioError) -> NoReturn:
    """Print the problems of ``exc`` (the first MAX_PROBLEMS_SHOWN), say that nothing was
    written, exit with status 2."""
    for problem in exc.problems[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"error: {problem}", err=True)
    n = len(exc.problems)
    if n > MAX_PROBLEMS_SHOWN:
        click.echo(f"error: ... and {n - MAX_PROBLEMS_SHOWN:,} more problems, not shown",
                   err=True)
    click.echo(f"{n:,} problem{'s' if n != 1 else ''} found; nothing was written.", err=True)
    sys.exit(EXIT_INVALID)


def fail_unwritten(file, exc: Exception, status: int = EXIT_INVALID) -> NoReturn:
    """Print ``exc`` against FILE, say that nothing was written, exit with ``status``."""
    click.echo(f"error: {file}: {exc}; nothing was written.", err=True)
    sys.exit(status)


def echo_err(message: str) -> None:
    """Print ``message`` on standard error (a command's progress lines)."""
    click.echo(message, err=True)


def cluster_options(command):
    """--scheduler ADDRESS and --workers N: the command's simulations (and a batch's
    variants) go to a Dask cluster (simulator.cluster); without them, Dask is not
    imported."""
    @click.option("--scheduler", metavar="ADDRESS",
                  help="A running Dask scheduler to send the work to, e.g. "
                       "tcp://10.0.0.5:8786 (pip install 'sibsim[dask]').")
    @click.option("--workers", type=click.IntRange(min=1),
                  help="Start a Dask LocalCluster of N worker processes for the command.")
    @functools.wraps(command)
    def on_cluster(*args, scheduler=None, workers=None, **kwargs):
        if not scheduler and not workers:
            return command(*args, **kwargs)
        if scheduler and workers:
            raise click.UsageError("give --scheduler or --workers, not both")
        from ..cluster import DaskMissing, connect
        try:
            with connect(scheduler, workers):
                return command(*args, **kwargs)
        except DaskMissing as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_INVALID)
    return on_cluster
