"""``sibsim report DIR``: rebuild report.html (and batch_report.html) from saved results."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import EXIT_FAILED, EXIT_INVALID, plotlyjs_option


def run_folders(folder: Path) -> list[Path]:
    """``folder`` itself if it holds a run's results, else its sub-folders that do."""
    if (folder / "summary.json").is_file():
        return [folder]
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "summary.json").is_file()
                  and (p / "quarters.parquet").is_file() and (p / "paths.parquet").is_file())


@click.command()
@click.argument("folder", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option("--images", "image_format", type=click.Choice(["png", "svg"]),
              help="Also write every chart as a static image into DIR/<run>/figures/ "
                   "(needs kaleido and a Chromium browser).")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@plotlyjs_option(None, shown="as each run's manifest.json records")
def report(folder: str, image_format: str | None, quiet: bool, plotlyjs: str | None) -> None:
    """Rebuild report.html from the saved results in DIR: a run's folder, or a batch (or
    results) folder, whose runs each get their report.html, plus batch_report.html if DIR
    holds batch_summary.csv. --plotlyjs rebuilds the pages loading plotly.js another way
    and records that in each run's manifest.json."""
    from .. import reports
    from ..reports import SUMMARY_FILE

    root = Path(folder)
    runs = run_folders(root)
    is_batch = (root / SUMMARY_FILE).is_file()
    if not runs and not is_batch:
        click.echo(f"error: {root}: no results here (no summary.json, no {SUMMARY_FILE}, no "
                   f"sub-folder with a run's results)", err=True)
        sys.exit(EXIT_INVALID)
    say = (lambda _m: None) if quiet else click.echo
    failed = False
    for run in runs:
        try:
            say(f"{reports.write_report(run, plotlyjs)}")
            if image_format:
                _, _, sections = reports.run_sections(reports.load_run(run))
                files = reports.export_images(sections, run / "figures", image_format)
                say(f"  {len(files)} {image_format.upper()} images -> {run / 'figures'}")
        except reports.ImageExportUnavailable as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except (OSError, ValueError, KeyError) as exc:
            click.echo(f"error: {run}: cannot build the report: {type(exc).__name__}: {exc}",
                       err=True)
            failed = True
    if is_batch:
        target = root / reports.BATCH_REPORT_FILE
        try:
            reports.write_batch_report(root, plotlyjs)
            say(f"{target}")
        except (OSError, ValueError, KeyError) as exc:
            click.echo(f"error: {target}: {type(exc).__name__}: {exc}", err=True)
            failed = True
    if failed:
        sys.exit(EXIT_FAILED)
