"""How a report page loads plotly.js (4.8 MB), the one place that decides it.

- ``inline``: in the page itself, which then works alone and offline (``sibsim run``'s
  default);
- ``file``: from one ``plotly.min.js`` in the results folder, by a relative path that
  stays inside it (``sibsim batch``'s default: a batch of 30 variants would otherwise
  carry 30 copies);
- ``cdn``: from plotly's CDN, at the version of the installed plotly (needs the internet).

A run records its choice in manifest.json (``plotlyjs``), so that ``sibsim report``
rebuilds the same page. Plain Python at import (plotly is imported when used), so the
command line can offer the choices without loading plotly.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

CHOICES = ("inline", "file", "cdn")
FILE_NAME = "plotly.min.js"
RUN_PAGE_TO_RESULTS = "../"   # report.html sits in <results>/<run>/
BATCH_PAGE_TO_RESULTS = ""    # batch_report.html sits in <results>/


@functools.lru_cache(maxsize=1)
def source() -> str:
    """plotly.js (read from plotly's package once a process: a batch writes a page for
    every variant)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def cdn_url() -> str:
    """The CDN address of the installed plotly's plotly.js, as plotly.io names it for
    ``include_plotlyjs='cdn'``."""
    from plotly.offline import get_plotlyjs_version

    return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"


def checked(plotlyjs: str) -> str:
    """``plotlyjs`` if it is one of CHOICES; otherwise ValueError, before any work."""
    if plotlyjs not in CHOICES:
        raise ValueError(f"plotlyjs must be one of {', '.join(CHOICES)}, not {plotlyjs!r}")
    return plotlyjs


def script(plotlyjs: str, to_results: str) -> str:
    """The page's <script> element that loads plotly.js (``to_results``: the relative
    path from the page to its results folder, which holds the ``file``)."""
    if plotlyjs == "inline":
        return f"<script type='text/javascript'>{source()}</script>"
    if plotlyjs == "file":
        return f"<script src='{to_results}{FILE_NAME}'></script>"
    checked(plotlyjs)
    return f"<script src='{cdn_url()}' charset='utf-8'></script>"


def provide(results: str | Path, plotlyjs: str) -> bool:
    """Write ``results/plotly.min.js`` if pages loading plotly.js ``plotlyjs`` need it
    (atomically, and only when its content differs); whether it wrote."""
    from .io import write_text_atomic

    if plotlyjs != "file":
        return False
    return write_text_atomic(Path(results) / FILE_NAME, source())


def results_of_run(run_folder: str | Path) -> Path:
    """The results folder a run's page reaches by RUN_PAGE_TO_RESULTS (as the browser
    follows ``..``: symbolic links not resolved)."""
    return Path(os.path.abspath(run_folder)).parent


def recorded(manifest: dict) -> str:
    """How a run's page loads plotly.js, from its manifest (runs written before the
    choice existed: inline)."""
    return manifest.get("plotlyjs", "inline")
