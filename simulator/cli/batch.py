"""``sibsim batch``: run every scenario under some paths, with its stresses and sweeps.

Input problems exit with status 2 before anything is simulated or written; a batch
with failed variants (or a batch report that cannot be built) exits with status 1.
"""
from __future__ import annotations

import math
import sys
import textwrap
import time

import click

from ..yamlfiles import ScenarioError
from .options import (
    EXIT_FAILED,
    OUT_FOLDER,
    cluster_options,
    echo_err,
    fail_invalid,
    plotlyjs_option,
)


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="PATH...")
@click.option("--out", "out_dir", default="results", show_default=True,
              type=OUT_FOLDER, help="Results folder.")
@click.option("--paths", "n_paths", type=click.IntRange(min=1),
              help="Monte Carlo paths for every variant (default: each scenario's).")
@click.option("--dry-run", is_flag=True,
              help="Check every file and list the variants; run nothing.")
@click.option("--quiet", is_flag=True, help="No progress lines or table.")
@click.option("--workbooks", is_flag=True,
              help="Also write each variant's results.xlsx (OUT/batch_summary.xlsx, a row a "
                   "variant, is written either way).")
@plotlyjs_option("file")
@cluster_options
def batch(inputs: tuple[str, ...], out_dir: str, n_paths: int | None, dry_run: bool,
          quiet: bool, workbooks: bool, plotlyjs: str) -> None:
    """Run every scenario in PATH... (files, folders searched recursively, globs) with its
    stresses and sweeps, into OUT/<variant>/, and write OUT/batch_summary.csv and
    OUT/batch_report.html (with --plotlyjs file, the default, every page loads
    OUT/plotly.min.js).

    YAML files found in folders or by globs are scenarios if their top level has an
    extends: key or a scenario section (calendar:, referrals:, ...); others, such as
    calibration targets, are listed as skipped.
    Finished variants (same scenario, seed, paths and package version) are not rerun,
    so an interrupted batch resumes where it stopped; their report.html is rebuilt if it
    loads plotly.js otherwise than --plotlyjs says.
    """
    from ..batch import BatchBusy, plan_batch, run_batch

    try:
        plan = plan_batch(inputs, paths=n_paths)
    except ScenarioError as exc:
        fail_invalid(exc)
    log = (lambda _m: None) if quiet else echo_err
    for path, why in plan.skipped:
        log(f"skipped {path}: {why}")
    n_files = len({str(r.variant.file) for r in plan.runs})
    log(f"{len(plan.runs)} variants from {n_files} scenario files -> {out_dir}")
    if dry_run:
        for r in plan.runs:
            click.echo(f"{r.name}\t{r.variant.kind}\t{r.variant.base or ''}\t{r.paths}\t{r.seed}")
        return
    t0 = time.perf_counter()
    try:
        outcome = run_batch(plan, out_dir, progress=False if quiet else None, echo=log,
                            plotlyjs=plotlyjs, workbooks=workbooks)
    except BatchBusy as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    log(f"ran {len(outcome.ran)}, skipped {len(outcome.skipped)} finished earlier, "
        f"failed {len(outcome.failed)} in {time.perf_counter() - t0:.1f} s; "
        f"{outcome.summary_path} {'written' if outcome.summary_written else 'unchanged'}")
    if outcome.report_error is None:
        log(f"{outcome.report_path} {'written' if outcome.report_written else 'unchanged'}")
    if not quiet:
        _print_batch_table(outcome.summary_path)
    if outcome.failed:
        for name, why in outcome.failed.items():
            click.echo(f"error: {name}: {why}", err=True)
    if outcome.report_error is not None:
        click.echo(f"error: {outcome.report_path}: {outcome.report_error}", err=True)
    if outcome.failed or outcome.report_error is not None:
        sys.exit(EXIT_FAILED)


def _print_batch_table(summary_path) -> None:
    from ..io import read_table

    table = read_table(summary_path)
    m = "investor.multiple.mean"
    if m not in table or table[m].isna().all():
        m = "service.care_days_saved.mean"
    width = max(len(s) for s in table.scenario)
    click.echo(f"{'scenario':<{width}}  {m:>24}  {'difference from base':>24}  what it is")
    for _, row in table.iterrows():
        value = _pm(row[m], row[f"{m}_se"])
        diff = _pm(row[f"{m}_diff"], row[f"{m}_diff_se"])
        about = row.get("description")
        what = textwrap.shorten(about, 60, placeholder=" ...") if isinstance(about, str) else ""
        click.echo(f"{row.scenario:<{width}}  {value:>24}  {diff:>24}  {what}".rstrip())


def _pm(x: float, se: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:,.4g} ± {se:.2g}" if se == se else f"{x:,.4g}"
