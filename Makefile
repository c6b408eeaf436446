# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PATHS  ?=

.PHONY: install run test bench clean strip-notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sibsim run scenarios/essex_mst.yaml --out results $(if $(PATHS),--paths $(PATHS))

# the test suite and the notebooks (executed top to bottom by nbmake, not saved)
test: $(STAMP)
	$(BIN)/python -m pytest -q --nbmake tests notebooks

strip-notebooks: $(STAMP)
	$(BIN)/python tests/test_notebooks.py --strip

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) results .pytest_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
