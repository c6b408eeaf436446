"""design.html: the recommended terms in words, and the feasible region over the terms
varied (a heatmap of the objective with each requirement's boundary drawn)."""
from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from .reports import BLUE, GREY, ORANGE, PURPLE, RED, figure_spec, html_table, render_page

_LINE_COLOURS = (RED, ORANGE, PURPLE, BLUE, GREY)


def design_page(design, title: str) -> str:
    q = design.question
    intro = _answer_html(design)
    if len(q.axes) >= 2:
        charts = [_heatmap(design)]
    else:
        charts = [_line(design, q.objective, None)]
        charts += [_line(design, r.metric, r) for r in q.requirements]
    return render_page(title, intro, [("region", "Terms and figures", charts)])


def _answer_html(design) -> str:
    q = design.question
    chosen = design.best if design.best is not None else design.nearest
    if design.best is not None:
        said = "Recommended terms: " + _terms_text(design, chosen) + "."
    else:
        requirement, missed = design.binding
        said = (f"No terms meet every requirement. Nearest: {_terms_text(design, chosen)}, "
                f"where {requirement} binds: {_fmt(chosen[requirement.metric])}, missed by "
                f"{_fmt(missed)}.")
    rows = [(str(r), _fmt(chosen[r.metric]), "yes" if r.shortfall(chosen[r.metric]) == 0
             else "no") for r in q.requirements]
    rows.append((f"{'maximise' if q.maximise else 'minimise'} {q.objective}",
                 _fmt(chosen[q.objective]), ""))
    how = (f"{len(design.grid):,} candidates on {design.paths:,} paths of seed {design.seed} "
           f"(common random numbers: the service simulated {design.services} time(s), the "
           f"contract alone for each candidate)")
    table = html_table([("requirement", "value there", "met")], rows, caption=how)
    return f"<p><b>{html.escape(said)}</b></p><div class='tables'>{table}</div>"


def _terms_text(design, row) -> str:
    return ", ".join(f"{a.key} = {_fmt(row[a.key])}" for a in design.question.axes)


def _fmt(x: Any) -> str:
    if not isinstance(x, int | float) or not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _heatmap(design) -> dict:
    """The objective over the first two terms (the best over any others), each
    requirement's boundary as a contour line, and the answer marked."""
    q = design.question
    xa, ya = q.axes[0].key, q.axes[1].key
    xs, ys = q.axes[0].values(), q.axes[1].values()
    best = _best_over_rest(design, xa, ya)
    traces = [{"type": "heatmap", "x": xs, "y": ys, "z": _surface(best, xa, ya, xs, ys,
                                                                  q.objective),
               "colorscale": "Viridis", "colorbar": {"title": {"text": q.objective}},
               "name": q.objective}]
    missed = [[None if f is None or f >= 0.5 else 1.0 for f in row]
              for row in _surface(best.assign(met=best["feasible"].astype(float)), xa, ya,
                                  xs, ys, "met")]
    traces.append({"type": "heatmap", "x": xs, "y": ys, "z": missed, "showscale": False,
                   "colorscale": [[0, "rgba(255,255,255,0.6)"], [1, "rgba(255,255,255,0.6)"]],
                   "hoverinfo": "skip", "name": "misses a requirement"})
    for r, colour in zip(q.requirements, _LINE_COLOURS * 4, strict=False):
        traces.append({"type": "contour", "x": xs, "y": ys,
                       "z": _surface(best, xa, ya, xs, ys, r.metric), "autocontour": False,
                       "contours": {"coloring": "none", "start": r.bound, "end": r.bound,
                                    "size": 1.0, "showlabels": False},
                       "line": {"color": colour, "width": 3}, "showscale": False,
                       "showlegend": True, "name": f"{r} (boundary)"})
    chosen = design.best if design.best is not None else design.nearest
    traces.append({"type": "scatter", "mode": "markers", "x": [chosen[xa]], "y": [chosen[ya]],
                   "marker": {"symbol": "x", "size": 14, "color": "white",
                              "line": {"color": "black", "width": 2}},
                   "name": "recommended" if design.best is not None else "nearest"})
    fig = figure_spec(traces, f"{q.objective} over the terms (pale: misses a requirement), and "
                          f"each requirement's boundary", xa, ya)
    fig["layout"]["legend"] = {"orientation": "h", "y": -0.3}
    fig["layout"]["height"] = 560
    return fig


def _best_over_rest(design, xa: str, ya: str):
    """The grid with one row per (xa, ya): the best objective over the other terms."""
    q = design.question
    grid = design.grid
    if len(q.axes) == 2:
        return grid
    order = grid.sort_values(q.objective, ascending=not q.maximise)
    return order.drop_duplicates([xa, ya])


def _surface(rows, xa, ya, xs, ys, metric) -> list[list[float | None]]:
    z = np.full((len(ys), len(xs)), np.nan)
    ix = {x: i for i, x in enumerate(xs)}
    iy = {y: i for i, y in enumerate(ys)}
    for x, y, v in zip(rows[xa], rows[ya], rows[metric], strict=True):
        z[iy[y], ix[x]] = v
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in z]


def _line(design, metric: str, requirement) -> dict:
    q = design.question
    key = q.axes[0].key
    grid = design.grid.sort_values(key)
    traces = [{"type": "scatter", "mode": "lines+markers", "x": list(grid[key]),
               "y": [None if not math.isfinite(v) else float(v) for v in grid[metric]],
               "name": metric, "line": {"color": BLUE}}]
    marks = [(requirement.bound, str(requirement), RED, 0)] if requirement else []
    title = f"{metric} against {key}" + (f" (requirement {requirement})" if requirement
                                         else " (the objective)")
    return figure_spec(traces, title, key, metric, hmarkers=marks)
