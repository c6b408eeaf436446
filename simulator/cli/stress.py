"""``sibsim breakeven`` (reverse stress test) and ``sibsim sensitivity`` (tornado and
rank correlations): many runs of one scenario on common random numbers.

Input problems exit with status 2 before anything is simulated or written; a search
that finds no crossing exits with status 1.
"""
from __future__ import annotations

import json
import sys

import click

from ..yamlfiles import ScenarioError
from .options import (
    EXIT_FAILED,
    FINITE,
    OUT_FOLDER,
    SEED,
    cluster_options,
    echo_err,
    fail_invalid,
    fail_unwritten,
    load_or_exit,
    set_option,
)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--param", "params", multiple=True, required=True, metavar="KEY",
              help="Parameter to vary; repeat to move several together (e.g. "
                   "treatment.hazard_ratio_during and treatment.hazard_ratio_after).")
@click.option("--metric", required=True,
              help="Dotted summary.json figure, e.g. investor.prob_loss or investor.multiple.mean.")
@click.option("--target", type=FINITE, required=True, help="Value the metric should reach.")
@click.option("--mode", type=click.Choice(["set", "scale", "power"]), default="set",
              show_default=True,
              help="set: the parameters take the value x; scale: they are multiplied by x; "
                   "power: raised to the power x (on a hazard ratio, x scales the log effect).")
@click.option("--low", type=FINITE, help="Lower end of the search (default: expand from the "
                                        "current value).")
@click.option("--high", type=FINITE, help="Upper end of the search.")
@click.option("--paths", "n_paths", type=click.IntRange(min=2),
              help="Paths per evaluation (default: the scenario's).")
@click.option("--seed", type=SEED, help="Seed for every evaluation "
                                                         "(default: the scenario's).")
@set_option
@click.option("--out", "out_dir", type=OUT_FOLDER,
              help="Also write OUT/<name>__breakeven/ (breakeven.json, evaluations.csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@cluster_options
def breakeven(file, params, metric, target, mode, low, high, n_paths, seed, assignments,
              out_dir, as_json, quiet) -> None:
    """Reverse stress test: find the value of --param at which --metric crosses --target,
    on common random numbers (one seed for every evaluation), with the interval of values
    at which the target lies within two standard errors of the metric."""
    from ..engine import ParameterError
    from ..stress import NoCrossing, Probe
    from ..stress import breakeven as find

    loaded = load_or_exit(file, assignments)
    log = (lambda _m: None) if quiet else echo_err
    try:
        probe = Probe(loaded, params, metric, mode=mode, paths=n_paths, seed=seed,
                      on_eval=lambda e: log(f"  x = {e.x:.6g}: {metric} = {e.value:.6g}"))
        result = find(probe, target, low=low, high=high)
    except ScenarioError as exc:
        fail_invalid(exc)
    except ParameterError as exc:
        fail_unwritten(file, exc)
    except NoCrossing as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    if out_dir:
        _write_breakeven(result, loaded, out_dir)
    if as_json:
        from ..io import finite_or_null

        click.echo(json.dumps(finite_or_null(result.as_dict()), indent=2, allow_nan=False))
        return
    what = {"set": "", "scale": " x", "power": " ^"}[mode]
    click.echo(f"breakeven: {', '.join(result.params)}{what} = {result.x:.6g}")
    se = f" (se {result.se:.3g})" if result.se is not None else ""
    click.echo(f"  {metric} = {result.value:.6g}{se} there; target {target:g}")
    if result.interval:
        lo, hi = result.interval
        note = " (reaches the end of the search range)" if any(result.interval_open) else ""
        click.echo(f"  interval: {lo:.6g} to {hi:.6g}: the target is within 2 se of the "
                   f"metric{note}")
    else:
        click.echo("  no standard error for this metric, so no interval")
    click.echo(f"  {len(result.evaluations)} runs of {result.paths:,} paths on seed "
               f"{result.seed} (common random numbers)")


def _write_breakeven(result, loaded, out_dir) -> None:
    from pathlib import Path

    import pandas as pd

    from .. import io

    rows = [{"x": e.x, "metric": e.value, "se": e.se} for e in result.evaluations]
    with io.atomic_folder(Path(out_dir) / f"{loaded.scenario.name}__breakeven",
                          marker="breakeven.json") as tmp:
        io.write_json(tmp / "breakeven.json", {"scenario": loaded.scenario.name,
                                               "file": str(loaded.path), **result.as_dict(),
                                               **loaded.manifest_extra()})
        pd.DataFrame(rows).to_csv(tmp / "evaluations.csv", index=False)


# --------------------------------------------------------------------------- sensitivity
@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--metric", default="investor.multiple.mean", show_default=True,
              help="Dotted summary.json figure for the tornado.")
@click.option("--param", "params", multiple=True, metavar="KEY[=LOW:HIGH]",
              help="Parameter and its low and high values; without a range, the 5th and 95th "
                   "percentiles of its distribution. Repeatable; default: every parameter "
                   "given as a distribution.")
@click.option("--path-metric", help="paths.parquet column the uncertain parameters are ranked "
                                    "against (default: the metric's column, else multiple).")
@click.option("--paths", "n_paths", type=click.IntRange(min=4),
              help="Paths per run (default: the scenario's).")
@click.option("--seed", type=SEED, help="Seed for every run.")
@set_option
@click.option("--out", "out_dir", default="results", show_default=True,
              type=OUT_FOLDER,
              help="Writes OUT/<name>__sensitivity/ (tornado.csv, rank_correlation.csv, "
                   "sensitivity.json).")
@click.option("--quiet", is_flag=True, help="No progress lines or tables.")
@cluster_options
def sensitivity(file, metric, params, path_metric, n_paths, seed, assignments, out_dir,
                quiet) -> None:
    """Tornado of --metric over each --param at its low and high values (common random
    numbers, paired standard errors), and the ranking of the uncertain parameters by
    Spearman rank correlation with a per-path result (by default the multiple)."""
    from ..engine import ParameterError
    from ..stress import parse_ranges
    from ..stress import sensitivity as analyse

    loaded = load_or_exit(file, assignments)
    log = (lambda _m: None) if quiet else echo_err
    try:
        ranges = parse_ranges(params)
        result = analyse(loaded, metric, ranges, paths=n_paths, seed=seed,
                         path_metric=path_metric, echo=log)
    except ScenarioError as exc:
        fail_invalid(exc)
    except ParameterError as exc:
        fail_unwritten(file, exc)
    folder = _write_sensitivity(result, loaded, out_dir)
    if not quiet:
        _print_sensitivity(result, folder)


def _write_sensitivity(result, loaded, out_dir):
    from pathlib import Path

    from .. import io

    folder = Path(out_dir) / f"{loaded.scenario.name}__sensitivity"
    with io.atomic_folder(folder, marker="sensitivity.json") as tmp:
        result.tornado.to_csv(tmp / "tornado.csv", index=False)
        result.ranking.to_csv(tmp / "rank_correlation.csv", index=False)
        io.write_json(tmp / "sensitivity.json", {
            "scenario": loaded.scenario.name, "file": str(loaded.path), "metric": result.metric,
            "base_value": result.base_value, "base_se": result.base_se,
            "path_metric": result.path_metric, "paths": result.paths, "seed": result.seed,
            **loaded.manifest_extra()})
    return folder


def _print_sensitivity(result, folder) -> None:
    t = result.tornado
    click.echo(f"{result.metric} at base: {result.base_value:.6g} -> {folder}")
    if len(t):
        width = max(len(p) for p in t.parameter)
        top = max(float(t.swing.max()), 1e-300)
        click.echo(f"{'parameter':<{width}}  {'low':>10} {'high':>10}  {'at low':>10} "
                   f"{'at high':>10}  swing")
        for _, r in t.iterrows():
            bar = "#" * max(1, round(20 * r.swing / top)) if r.swing > 0 else ""
            click.echo(f"{r.parameter:<{width}}  {r.low:>10.4g} {r.high:>10.4g}  "
                       f"{r.metric_low:>10.4g} {r.metric_high:>10.4g}  {r.swing:.3g} {bar}")
    if len(result.ranking):
        click.echo(f"uncertain parameters ranked by Spearman correlation with "
                   f"{result.path_metric}:")
        for _, r in result.ranking.iterrows():
            click.echo(f"  {int(r['rank'])}. {r.parameter}: rho {r.spearman_rho:+.3f} "
                       f"[{r.rho_low95:+.2f}, {r.rho_high95:+.2f}], share {r.share:.0%}")
    else:
        click.echo("no parameters given as distributions: no rank-correlation ranking")
