"""report.html and batch_report.html in a real browser: headless Chromium (Debian's
`chromium` package, installed by .ci/run) loads each page from disk with no network, logs
no console message (errors included), and draws every chart with data. A screenshot of
each page is kept in test-artifacts/ (gitignored).

Chromium is driven from the command line (--dump-dom, --screenshot): no WebDriver or
DevTools client needed. Skipped, saying why, where no Chromium binary exists.
"""
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from simulator import reports
from simulator.batch import plan_batch, run_batch
from simulator.loader import load_scenario
from simulator.run import run_scenario

from helpers import ROOT, with_money

ARTIFACTS = ROOT / "test-artifacts"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def chromium() -> str | None:
    for name in (os.environ.get("SIBSIM_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


pytestmark = pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium binary (install Debian's `chromium` package, as .ci/run does, or set "
           "SIBSIM_CHROMIUM): the headless-browser check of report.html is skipped")


def headless(*args, page: Path) -> subprocess.CompletedProcess:
    # --virtual-time-budget lets the page's scripts run to completion before the dump
    cmd = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
           "--host-resolver-rules=MAP * ~NOTFOUND",   # no network: every name unresolvable
           "--window-size=1400,2400", *args, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(page.parent)})


class Charts(HTMLParser):
    """Per chart div (id chart-N): is it a plotly plot, has it an SVG, and how many drawn
    shapes (path elements with geometry) lie inside its traces."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None, bool]] = []  # (tag, chart id, inside a trace)
        self.charts: dict[str, dict] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        chart, in_trace = (self.stack[-1][1], self.stack[-1][2]) if self.stack else (None, False)
        if (a.get("id") or "").startswith("chart-"):
            chart = a["id"]
            self.charts[chart] = {"plotly": "js-plotly-plot" in classes, "svg": False,
                                  "drawn": 0}
        if chart:
            if "main-svg" in classes:
                self.charts[chart]["svg"] = True
            if any(c in ("trace", "trace bars", "boxes") or c.startswith("trace") for c in classes):
                in_trace = True
            d = a.get("d") or ""
            if tag == "path" and in_trace and len(d) > 3 and d not in ("M0,0Z",):
                self.charts[chart]["drawn"] += 1
        if tag not in VOID:
            self.stack.append((tag, chart, in_trace))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):  # tolerate unclosed elements
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def check_in_browser(page: Path, shot: Path) -> int:
    source = page.read_text()
    expected = source.count("class='sib-chart'")
    assert expected > 0
    dom = headless("--dump-dom", page=page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages:\n" + "\n".join(console)
    parser = Charts()
    parser.feed(dom.stdout)
    assert len(parser.charts) == expected
    for chart_id, c in parser.charts.items():
        assert c["plotly"] and c["svg"], (chart_id, c)   # plotly drew it
        assert c["drawn"] > 0, (chart_id, c)             # with data: bars, lines or boxes
    ARTIFACTS.mkdir(exist_ok=True)
    png = headless(f"--screenshot={shot}", page=page)
    assert png.returncode == 0, png.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return expected


def test_run_report_renders_in_headless_chromium(tmp_path):
    f = tmp_path / "browser.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "browser"}, sort_keys=False))
    out = run_scenario(load_scenario(f), tmp_path / "out", paths=200, seed=2, progress=False)
    n = check_in_browser(out.folder / reports.REPORT_FILE, ARTIFACTS / "report.png")
    assert n == 15


def test_batch_pages_load_plotly_js_from_the_batch_folder_in_headless_chromium(tmp_path):
    base = with_money()
    base["simulation"]["paths"] = 60
    base["stresses"] = {"fewer": {"referrals.per_team_per_month": {"scale": 0.7}}}
    base["sweeps"] = {"price": {"contract.price_per_care_day_saved": [40, 80]}}
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "small.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    out = tmp_path / "out"
    run_batch(plan_batch([scen]), out)   # plotly.js as a file in the batch folder (the default)
    batch_page = out / reports.BATCH_REPORT_FILE
    variant_page = out / "small__fewer" / reports.REPORT_FILE
    assert "<script src='plotly.min.js'>" in batch_page.read_text()
    assert "<script src='../plotly.min.js'>" in variant_page.read_text()
    assert check_in_browser(batch_page, ARTIFACTS / "batch_report.png") >= 5
    assert check_in_browser(variant_page, ARTIFACTS / "batch_variant_report.png") == 15


def test_static_images_with_kaleido(tmp_path):
    pytest.importorskip("kaleido", reason="static images need kaleido (pip install "
                                          "'sibsim[images]')")
    f = tmp_path / "images.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "images"}, sort_keys=False))
    out = run_scenario(load_scenario(f), tmp_path / "out", paths=40, seed=2, progress=False)
    _, _, sections = reports.run_sections(reports.load_run(out.folder))
    files = reports.export_images(sections, out.folder / "figures")
    assert len(files) == 15
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files)
