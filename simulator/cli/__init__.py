"""The ``sibsim`` command line (click): the group ``main`` and its commands, one module
per command or close family.

- :mod:`.validate`: ``validate`` and ``schema``;
- :mod:`.run`: ``run``; :mod:`.calibrate`: ``calibrate``; :mod:`.baseline`: ``baseline``;
- :mod:`.batch`: ``batch``; :mod:`.stress`: ``breakeven`` and ``sensitivity``;
- :mod:`.design`: ``design``;
- :mod:`.report`: ``report``;
- :mod:`.options`: the exit codes and option types the commands share.

A command imports the heavy modules it needs (the engine, pandas, ...) inside its
function, so that the command line starts fast; :mod:`simulator.startup` is the
console script's entry point.
"""
from __future__ import annotations

import sys

import click

from ..collector import resume_collector
from ..version import __version__
from .options import EXIT_FAILED, EXIT_INVALID

# isort: split
# The commands after options, which imports the schema and with it pydantic and numpy:
# imported one level deeper, through a command module, numpy's typing code ran
# measurably slower under Python 3.11 (on `sibsim --version`, `validate` and `run`),
# a start-up cost for nothing.
from . import baseline, batch, calibrate, design, report, run, stress, validate


class _Commands(click.Group):
    """The sibsim group. An operating-system error that escapes a command (a disk that
    fills up, a folder removed mid-run) is one line naming the file, and exit status 1,
    not a traceback; what was being written is not left half-written (io writes every
    output through a temporary file or folder and one rename)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise   # click's own: output piped into a reader that stopped
        except OSError as exc:
            from ..io import FolderInUse, os_error_text

            if isinstance(exc, FolderInUse):   # found before writing: input, not failure
                click.echo(f"error: {exc}; nothing was written.", err=True)
                sys.exit(EXIT_INVALID)
            click.echo(f"error: {os_error_text(exc)}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sibsim")
def main() -> None:
    """Monte Carlo cash-flow simulator for social impact bonds."""
    resume_collector(click.get_current_context().invoked_subcommand)


for _command in (baseline.baseline, validate.validate, validate.schema, run.run,
                 calibrate.calibrate, batch.batch, stress.breakeven, stress.sensitivity,
                 design.design, report.report):
    main.add_command(_command)
