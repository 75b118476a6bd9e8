# Targets named in the README. Everything installs into $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist); the suite is CPU-bound, one per core.
JOBS ?= 2

.PHONY: install demo test test-fast lint perf clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: the whole pipeline on the embedded digits (zoo -> export -> benchmark -> leaderboard)
demo: $(STAMP)
	$(BIN)/zoo-demo $(ARGS)

## test: lint and the whole test suite, slow tests included (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

## test-fast: the tests not marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## perf: speed benchmarks, each printing a ratio against its baseline
perf: $(STAMP)
	for f in perf/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs .pytest_cache
