"""The notebooks are committed without outputs (they are executed by `make test` through
nbmake, at SIBSIM_NOTEBOOK_PATHS paths) and use the package's public API only (what
``simulator`` exports), not its modules or copies of its code.

    python tests/test_notebooks.py --strip    # remove outputs in place (make strip-notebooks)
"""
import json
import re
import sys
from pathlib import Path

import pytest

import simulator

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_essex_case_study.ipynb",
                                           "02_investor_stress_test.ipynb",
                                           "03_commissioner_budget.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: outputs in code cells {dirty}: run `make strip-notebooks`"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "SIBSIM_NOTEBOOK_PATHS" in source and "import simulator" in source
    assert "@njit" not in source and "def simulate" not in source  # the package's API only
    used = set(re.findall(r"\bsimulator\.(\w+)", source))
    assert used <= set(simulator.__all__), f"{path.name}: not the public API: {used}"
    assert not re.search(r"from simulator\b|import simulator\.", source), path.name


def strip(paths) -> None:
    for path in paths:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--strip"]:
    strip(NOTEBOOKS)
