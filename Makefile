# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PATHS  ?=

.PHONY: install run test test-oldest bench clean strip-notebooks

# Python 3.11 or later (pyproject.toml's requires-python), checked before anything is made:
# under Python 3.10, pip 23 did not refuse the package but searched on (over 15 minutes).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "sibsim needs Python \
	3.11 or later, and $(PYTHON) is " + sys.version.split()[0] + ": give make another, \
	e.g. make run PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# The package's bytecode, compiled again whenever a source changes. Python writes it on
# first import, but not where PYTHONDONTWRITEBYTECODE is set (as on the machines this
# project is built and tested on): every process then compiled the sources itself, a
# noticeable part of a command's start-up.
# Python checks each file's bytecode against the source's time stamp and size, and
# compiles a stale one in memory, so bytecode left behind costs time, never correctness.
BYTECODE := $(VENV)/.bytecode-stamp
$(BYTECODE): $(STAMP) $(wildcard simulator/*.py simulator/*/*.py)
	$(BIN)/python -m compileall -q simulator
	touch $(BYTECODE)

install: $(STAMP) $(BYTECODE)

run: $(STAMP) $(BYTECODE)
	$(BIN)/sibsim run scenarios/essex_mst.yaml --out results $(if $(PATHS),--paths $(PATHS))
	@echo "The report: results/essex_mst/report.html (open it in a browser)."
	@echo "sibsim is $(BIN)/sibsim: type that, or run '. $(BIN)/activate' first and then sibsim."

# ruff's lint first (pyproject.toml's [tool.ruff]; a finding fails the target before any
# test runs, and `ruff check --fix` mends most), then the test suite and the notebooks
# (executed top to bottom by nbmake, not saved), spread over TEST_WORKERS processes by
# pytest-xdist. Two by default, the CI machine's cores: most tests wait on a subprocess,
# a browser or the disk, or run the engine on one thread, so two processes take about
# half the time of one. A cold cache is compiled by both at once, in the time of one.
TEST_WORKERS ?= 2
test: $(STAMP) $(BYTECODE)
	$(BIN)/ruff check simulator tests benchmarks
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --nbmake tests notebooks

# The same suite against the oldest versions pyproject.toml allows (tests/oldest-versions.txt),
# in an environment and a numba cache of their own (an absolute path: the tests run some
# commands in other folders). Not part of CI: it installs and compiles the kernels afresh
# (several minutes on 2 cores).
OLDEST := .venv-oldest
test-oldest:
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c tests/oldest-versions.txt -e '.[test]'
	NUMBA_CACHE_DIR=$(CURDIR)/$(OLDEST)/numba-cache $(OLDEST)/bin/python -m pytest -q --nbmake tests notebooks

strip-notebooks: $(STAMP)
	$(BIN)/python tests/test_notebooks.py --strip

bench: $(STAMP) $(BYTECODE)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) $(OLDEST) results .pytest_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
