"""``sibsim design``: the contract terms that meet both sides' requirements.

Bad requirement or term syntax exits 2 naming it, before anything is simulated; a
question no terms answer exits 0, saying which requirement binds and by how much.
"""
from __future__ import annotations

import click

from ..yamlfiles import ScenarioError
from .options import OUT_FOLDER, SEED, fail_invalid, fail_unwritten, load_or_exit, set_option


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--vary", "vary", multiple=True, metavar="KEY=LOW:HIGH[:POINTS]",
              help="A term to vary over a grid of POINTS values (default 11; every whole "
                   "number for a count), e.g. contract.price_per_care_day_saved=20:120.")
@click.option("--require", "require", multiple=True, metavar="'METRIC>=X' | 'METRIC<=X'",
              help="A requirement every recommended term must meet, e.g. "
                   "'investor.irr.p50>=0.06' or 'commissioner.year_payments.p95<=1.5e6'.")
@click.option("--maximise", "maximise", metavar="METRIC",
              help="The figure to make largest among the terms that meet every requirement.")
@click.option("--minimise", "minimise", metavar="METRIC", help="... or smallest.")
@click.option("--spec", type=click.Path(dir_okay=False),
              help="A YAML file with vary (key: [low, high, points]), require (a list) and "
                   "maximise or minimise; the options add to it.")
@click.option("--paths", "n_paths", type=click.IntRange(min=2), default=10_000,
              show_default=True, help="Paths each candidate is judged on.")
@click.option("--seed", type=SEED, help="Seed (default: the scenario's).")
@set_option
@click.option("--out", "out_dir", default="results", show_default=True, type=OUT_FOLDER,
              help="Writes OUT/<name>__design/ (design.json, design_grid.csv, "
                   "design_frontier.csv, design.xlsx, design.html).")
@click.option("--quiet", is_flag=True, help="No progress line.")
def design(file, vary, require, maximise, minimise, spec, n_paths, seed, assignments,
           out_dir, quiet) -> None:
    """Search contract terms (price, cap, lag, finance terms...) for those that meet every
    --require and make --maximise largest, on common random numbers: the service is
    simulated once and the contract run alone for each candidate."""
    from .. import design as d
    from ..engine import ParameterError

    loaded = load_or_exit(file, assignments)
    try:
        question = _question(d, vary, require, maximise, minimise, spec)
        search = d.ContractSearch(loaded, n_paths,
                                  loaded.scenario.simulation.seed if seed is None else seed)
        total = len(d.candidates(question.axes))
        progress = None if quiet else _progress(total)
        found = d.search(search, question, progress)
    except ScenarioError as exc:
        fail_invalid(exc)
    except ParameterError as exc:
        fail_unwritten(file, exc)
    if not quiet:
        click.echo("", err=True)
    _say(d, found, search, loaded)
    _write(d, found, loaded, out_dir)


def _question(d, vary, require, maximise, minimise, spec):
    axes, requirements, objective, up = ([], [], None, True) if not spec else d.read_spec(spec)
    axes += [d.parse_axis(v) for v in vary]
    requirements += [d.parse_requirement(r) for r in require]
    if maximise and minimise:
        raise ScenarioError([d.Problem("--maximise", None, maximise,
                                       "give --maximise or --minimise, not both")])
    if maximise or minimise:
        objective, up = maximise or minimise, bool(maximise)
        d.check_metric(objective, "--maximise" if maximise else "--minimise")
    problems = []
    if not axes:
        problems.append(d.Problem("--vary", None, "", "vary at least one term"))
    if objective is None:
        problems.append(d.Problem("--maximise", None, "", "say what to maximise or minimise"))
    keys = [a.key for a in axes]
    problems += [d.Problem("--vary", None, k, "is varied twice") for k in set(keys)
                 if keys.count(k) > 1]
    if problems:
        raise ScenarioError(problems)
    return d.Question(tuple(axes), tuple(requirements), objective, up)


def _progress(total: int):
    def show(done: int) -> None:
        if done == total or done % 10 == 0:
            click.echo(f"\r  {done:,}/{total:,} candidates", err=True, nl=False)
    return show


def _say(d, found, search, loaded) -> None:
    q = found.question
    click.echo(f"design: {loaded.scenario.name}, {len(found.grid):,} candidates on "
               f"{found.paths:,} paths of seed {found.seed} (the service simulated "
               f"{found.services} time(s), the contract alone for each candidate)")
    if found.best is None:
        requirement, missed = found.binding
        row = found.nearest
        click.echo(f"no terms meet every requirement: {requirement} binds; at the nearest "
                   f"candidate ({_terms(q, row)}) {requirement.metric} = "
                   f"{row[requirement.metric]:.6g}, missed by {missed:.6g}")
        return
    row = found.best
    click.echo(f"recommended: {_terms(q, row)}")
    for r in q.requirements:
        click.echo(f"  {r.metric} = {row[r.metric]:.6g}  (requirement {r}: met)")
    click.echo(f"  {q.objective} = {row[q.objective]:.6g}  "
               f"({'largest' if q.maximise else 'smallest'} among the terms that meet them)")
    full = d.verify(search, {a.key: row[a.key] for a in q.axes})
    from ..design import figure
    from ..layout import K_OUTCOME_PAYMENTS
    payments = full.by_calendar_quarter[:, :, K_OUTCOME_PAYMENTS]
    again = figure(q.objective, full.paths, payments, full.calendar_quarters)
    same = again == row[q.objective]
    click.echo(f"  checked by a full simulation of these terms: {q.objective} = {again:.6g}"
               f"{' (the same)' if same else ' (DIFFERENT: please report this)'}")


def _terms(q, row) -> str:
    return ", ".join(f"{a.key} = {row[a.key]:.6g}" for a in q.axes)


def _write(d, found, loaded, out_dir) -> None:
    from pathlib import Path

    from .. import io
    folder = Path(out_dir) / f"{loaded.scenario.name}__design"
    with io.atomic_folder(folder, marker="design.json") as tmp:
        d.write_outputs(found, tmp, f"sibsim design: {loaded.scenario.name}")
    click.echo(f"-> {folder}")
