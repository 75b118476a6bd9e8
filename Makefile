# Targets named in the README. Everything installs into $(VENV) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes (pytest-xdist); the suite is CPU-bound, one per core. Tests
# marked xdist_group share a worker (and so their module fixtures).
JOBS ?= 2
XDIST = -n $(JOBS) --dist loadgroup

# Debian packages the tests use for real: bubblewrap (the benchmark sandbox),
# Chromium and its driver (the web leaderboard's browser test; a browser
# download at install time would fail offline, Debian's packages do not).
SYSTEM_PACKAGES ?= bubblewrap chromium chromium-driver
SYSTEM_COMMANDS ?= bwrap chromium chromedriver
APT := $(shell [ "$$(id -u)" = 0 ] || echo sudo) apt-get -q -y

.PHONY: install system demo test test-fast lint perf clean

## system: the Debian packages above, when missing (apt-get; skipped without it)
system:
	@( for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || exit 1; done ) || \
	  ! command -v apt-get >/dev/null || \
	  $(APT) install $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	  { $(APT) update >/dev/null 2>&1 && $(APT) install $(SYSTEM_PACKAGES) >/dev/null; } || \
	  echo "note: could not install $(SYSTEM_PACKAGES); the sandbox and browser tests need them"

$(STAMP): setup.py | system
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: the whole pipeline on the embedded digits (zoo -> export -> benchmark -> leaderboard)
demo: $(STAMP)
	$(BIN)/zoo-demo $(ARGS)

## test: lint, the whole test suite (slow tests included) and, beside it, the
## benchmark gate against .ci/baseline.json (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check .
	@BIN=$(BIN) bash .ci/gate > $(VENV)/gate.log 2>&1 & gate=$$!; \
	  $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); tests=$$?; \
	  wait $$gate; status=$$?; echo "== benchmark gate (.ci/gate, run beside the tests) =="; \
	  cat $(VENV)/gate.log; [ $$tests = 0 ] && [ $$status = 0 ]

## test-fast: the tests not marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## perf: speed benchmarks, each printing a ratio against its baseline
perf: $(STAMP)
	for f in perf/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs .pytest_cache
