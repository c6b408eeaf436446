"""report.html and batch_report.html in a real browser: headless Chromium (Debian's
`chromium` package, installed by .ci/run) loads each page from disk with no network, logs
no console message (errors included), and draws every chart with data. A screenshot of
each page is kept in test-artifacts/ (gitignored).

Chromium is driven from the command line (--dump-dom, --screenshot): no WebDriver or
DevTools client needed. Skipped, saying why, where no Chromium binary exists.
"""
import os
import re
import shutil
import subprocess
import sys
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
    assert n == 17


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


# written into a copy of a page: the widths once its scripts have run (charts drawn)
MEASURE = ("<script>addEventListener('load',()=>setTimeout(()=>{const d=document.documentElement;"
           "d.dataset.scrollWidth=d.scrollWidth;d.dataset.clientWidth=d.clientWidth},500));"
           "</script>")


def page_widths(page: Path) -> tuple[int, int]:
    """(scroll width, window width) of ``page`` in a 1400-pixel-wide window."""
    probe = page.with_name(f"measured_{page.name}")   # beside it: its relative links hold
    probe.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    dom = headless("--dump-dom", page=probe)
    assert dom.returncode == 0, dom.stderr[-2000:]
    scroll = re.search(r'data-scroll-width="(\d+)"', dom.stdout)
    client = re.search(r'data-client-width="(\d+)"', dom.stdout)
    assert scroll and client, "the measuring script did not run"
    return int(scroll[1]), int(client[1])


def test_the_batch_table_fits_a_1400_pixel_page_in_headless_chromium(tmp_path):
    base = with_money()
    base["name"] = "a_scenario_with_a_rather_long_name"
    base["description"] = ("A bond described at length, as the shipped adoption and Essex "
                           "scenarios are: who is referred, what the service does, how the "
                           "outcomes contract pays and which values are assumptions. ") * 2
    base["simulation"]["paths"] = 30
    base["stresses"] = {"every_cost_line_twenty_per_cent_higher": {
        f"costs.{k}": {"scale": 1.2} for k in ("per_team_per_quarter", "flexible_fund_per_family",
                                               "set_up", "licence_per_team_per_year",
                                               "management_fee_per_quarter")}}
    base["sweeps"] = {"price_and_cap": {"contract.price_per_care_day_saved": [40, 80],
                                        "contract.cap": [2_000_000, 3_000_000]}}
    scen = tmp_path / "scen"
    scen.mkdir()
    (scen / "long.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    run_batch(plan_batch([scen]), tmp_path / "out")
    page = tmp_path / "out" / reports.BATCH_REPORT_FILE
    assert "Changed: costs.per_team_per_quarter={scale: 1.2}" in page.read_text()
    scroll, window = page_widths(page)
    assert window == 1400
    assert scroll <= window, f"the page is {scroll} pixels wide in a {window}-pixel window"


def test_static_images_with_kaleido(tmp_path):
    pytest.importorskip("kaleido", reason="static images need kaleido (pip install "
                                          "'sibsim[images]')")
    f = tmp_path / "images.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "images"}, sort_keys=False))
    out = run_scenario(load_scenario(f), tmp_path / "out", paths=40, seed=2, progress=False)
    _, _, sections = reports.run_sections(reports.load_run(out.folder))
    files = reports.export_images(sections, out.folder / "figures")
    assert len(files) == 17
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files)


RENDERED = """<script>
for (const id of ['in-brief', 'contract']) {
  const box = document.getElementById(id).getBoundingClientRect();
  document.body.setAttribute('data-' + id + '-height', Math.round(box.height));
}
document.body.setAttribute('data-brief-items', document.querySelectorAll('#in-brief li').length);
document.body.setAttribute('data-input-rows', document.querySelectorAll('table.inputs tr').length);
</script>"""


def test_the_summary_and_the_contract_section_render_in_headless_chromium(tmp_path):
    f = tmp_path / "brief.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "brief"}, sort_keys=False))
    out = run_scenario(load_scenario(f), tmp_path / "out", paths=200, seed=2, progress=False)
    page = out.folder / reports.REPORT_FILE
    check_in_browser(page, ARTIFACTS / "report_summary.png")   # also a screenshot
    probe = page.with_name("measured_report.html")
    probe.write_text(page.read_text().replace("</body>", RENDERED + "</body>"))
    dom = headless("--dump-dom", page=probe)
    found = {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', dom.stdout)}
    assert found.get("in-brief-height", 0) > 100 and found.get("contract-height", 0) > 300
    assert found["brief-items"] >= 5 and found["input-rows"] >= 9, found   # 7 terms, 2 heads


def test_the_design_page_renders_in_headless_chromium(tmp_path):
    import simulator
    f = tmp_path / "design.yaml"
    f.write_text(yaml.safe_dump({**with_money(), "name": "design"}, sort_keys=False))
    found = simulator.design_contract(
        simulator.load_scenario(f), {"contract.price_per_care_day_saved": (20, 100, 5),
                                     "contract.cap": (1e6, 3e6, 3)},
        require=["investor.multiple.p50 >= 1"], maximise="commissioner.net_saving.p50",
        paths=40)
    page = found.write(tmp_path / "out") / "design.html"
    dom = headless("--dump-dom", page=page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages:\n" + "\n".join(console)
    parser = Charts()
    parser.feed(dom.stdout)
    assert parser.charts and all(c["plotly"] and c["svg"] for c in parser.charts.values())
    assert headless(f"--screenshot={ARTIFACTS / 'design.png'}", page=page).returncode == 0


def test_the_shipped_batch_stays_small_and_its_report_draws_every_chart(tmp_path):
    """`sibsim batch scenarios/` as the README runs it: plotly.js once in the folder, the
    whole folder under 20 MB, and its report drawing every chart."""
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "simulator", "batch", "scenarios/", "--out",
                           str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 20e6, f"the shipped batch's folder is {size / 1e6:.1f} MB"
    n = check_in_browser(out / reports.BATCH_REPORT_FILE, ARTIFACTS / "shipped_batch.png")
    assert n >= 5
