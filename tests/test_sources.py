"""Every citation resolves inside the repository, in docs/sources.md.

The scenarios, tests and notebooks cite their sources by a key in square brackets and
the section, page or table where the figure is ("[REES2019] Section 5, Table 2"); each
key is defined in docs/sources.md. Nothing may point at files a reader who clones the
repository does not have: the folder of seed documents the project was started from,
its brief, or a seed document's file name.
"""
import re
import subprocess
from pathlib import Path

from helpers import ROOT

SOURCES = ROOT / "docs" / "sources.md"
# What git tracks or would track, where a citation can be written.
SCANNED = ["scenarios", "tests", "notebooks", "simulator", "benchmarks", "docs",
           "Makefile", "pyproject.toml", "README.md", "ARCHITECTURE.md"]
# Where a key counts as used (this file only names keys to test them).
USED_IN = ["scenarios", "tests", "notebooks", "simulator", "docs", "README.md",
           "ARCHITECTURE.md"]
# Joined at run time, so that neither this file nor its compiled form matches itself.
OUTSIDE = [
    ("the seed folder outside the repository", re.compile(re.escape("".join(["shared", "/"])))),
    ("the project brief outside the repository", re.compile("".join(["BRI", "EF"]))),
    ("a seed document's file name", re.compile("[0-9a-f]{16}" + r"\.txt")),
]
SEED_NUMBER = re.compile(r"(?<![\w\]\[])\[00[0-9]\]")   # the old "[001]" citations
KEY = re.compile(r"(?<![\w\]\[])\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\]")
DEFINED = re.compile(r"^#{2,4} \[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\]", re.MULTILINE)
FACT_CITED = re.compile(r"\[FACTS\] (F\d+)")
FACT_DEFINED = re.compile(r"^- \*\*(F\d+)\.\*\*", re.MULTILINE)
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache", "records"}
THIS = Path(__file__).resolve()   # names patterns and keys only to test them


def _files(paths):
    """The files under ``paths`` (relative to the root) that git tracks or would track;
    walked directly, skipping caches, where git cannot say."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard", "--", *paths],
                             cwd=ROOT, capture_output=True, check=True).stdout
        found = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for p in paths:
            top = ROOT / p
            if top.is_file():
                found.append(top)
            elif top.is_dir():
                found += [f for f in top.rglob("*") if f.is_file()
                          and not SKIP_DIRS & set(f.relative_to(ROOT).parts)]
    return sorted(f for f in set(found) if f.is_file())


def _texts(paths, exclude=()):
    for f in _files(paths):
        if f in exclude:
            continue
        try:
            yield f, f.read_text(encoding="utf-8")
        except UnicodeDecodeError:   # images and other binary files cite nothing
            continue


def _where(f, text, pattern):
    return [f"{f.relative_to(ROOT)}:{n}: {line.strip()[:110]}"
            for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_the_files_scanned_include_the_ones_that_cite():
    names = {f.relative_to(ROOT).as_posix() for f in _files(SCANNED)}
    assert {"scenarios/essex_mst.yaml", "scenarios/stress/essex_start_like.yaml",
            "tests/test_published.py", "notebooks/02_investor_stress_test.ipynb",
            "docs/sources.md", "README.md", "ARCHITECTURE.md"} <= names


def test_nothing_points_outside_the_repository():
    """No mention of the seed folder, the brief or a seed file's name, in any file
    scanned: the scenarios, tests, notebooks, package, benchmarks, docs, Makefile,
    pyproject.toml, README.md and ARCHITECTURE.md."""
    found = []
    for f, text in _texts(SCANNED):
        for what, pattern in OUTSIDE:
            found += [f"{hit}   <- {what}" for hit in _where(f, text, pattern)]
    assert not found, ("cite a key of docs/sources.md instead:\n" + "\n".join(found))


def test_no_citation_by_seed_file_number():
    """The old citations by seed file number ("[001]") are replaced by keys."""
    found = []
    for f, text in _texts(SCANNED, exclude={THIS}):
        found += _where(f, text, SEED_NUMBER)
    assert not found, ("cite a key of docs/sources.md instead:\n" + "\n".join(found))


def _defined():
    return DEFINED.findall(SOURCES.read_text(encoding="utf-8"))


def test_each_key_is_defined_once():
    keys = _defined()
    assert len(keys) >= 10
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)


def test_every_key_cited_in_scenarios_tests_and_notebooks_is_defined():
    defined = set(_defined())
    missing = []
    for f, text in _texts(["scenarios", "tests", "notebooks"], exclude={THIS}):
        missing += [f"{f.relative_to(ROOT)}: [{k}]" for k in sorted(set(KEY.findall(text)))
                    if k not in defined]
    assert not missing, ("not defined in docs/sources.md:\n" + "\n".join(missing))
    scenario_keys = {k for _, text in _texts(["scenarios"]) for k in KEY.findall(text)}
    assert {"SF2014", "REES2019", "CASE2019", "SF-ESSEX", "FACTS"} <= scenario_keys


def test_every_key_defined_is_used():
    used = set()
    for _, text in _texts(USED_IN, exclude={SOURCES, THIS}):
        used |= set(KEY.findall(text))
    unused = sorted(set(_defined()) - used)
    assert not unused, f"defined in docs/sources.md but cited nowhere: {unused}"


def test_every_fact_cited_is_recorded():
    """"[FACTS] F2" names a numbered fact of the [FACTS] section of docs/sources.md."""
    recorded = set(FACT_DEFINED.findall(SOURCES.read_text(encoding="utf-8")))
    missing = []
    for f, text in _texts(USED_IN, exclude={SOURCES, THIS}):
        missing += [f"{f.relative_to(ROOT)}: {n}" for n in sorted(set(FACT_CITED.findall(text)))
                    if n not in recorded]
    assert recorded and not missing, missing


def test_the_scenario_headers_point_at_the_keys():
    """A scenario that lists its sources lists keys and says where they are defined."""
    for name in ["essex_mst.yaml", "essex_targets.yaml", "essex_ex_ante.yaml",
                 "essex_uncertain.yaml", "adoption_iaam.yaml"]:
        header = []
        for line in (ROOT / "scenarios" / name).read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
        assert "docs/sources.md" in "\n".join(header), name
