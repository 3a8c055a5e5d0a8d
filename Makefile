# The two quick-start commands: `make serve` and `make test`.
# Both create .venv on first use and install into it exactly what uv.lock pins, with hashes
# (uv itself comes from requirements-uv.txt, also pinned with hashes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
LATEST ?= .venv-latest
LOWEST ?= .venv-lowest

# uv installs into our venv, never downloads a Python of its own, and leaves uv.lock alone
# unless `make lock` asks: `--locked` stops with an error when pyproject.toml and uv.lock differ.
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never
SYNC = $(UV) sync --locked --extra test

# The CI load run: 1,000 simulated buyers for 30 s over SMPP with gateway faults; it fails the
# build on any lost or duplicated message (docs/performance.md).
LOADTEST_CI = --buyers 1000 --duration 30 --ramp-up 5 --faults drop=0.002,error=0.01

# ruff, the test suite, the quick fault matrix and the CI load run, with the tools in the bin
# folder $(1) (docs/reliability.md, docs/performance.md).
define suite
	$(1)/ruff check .
	$(1)/pytest
	$(1)/python -m loadtest.faults --quick
	$(1)/intercept-loadtest $(LOADTEST_CI)
endef

# A new venv $(1) with the project and its test tools resolved from pyproject.toml alone, with
# uv's resolution strategy $(2) (highest, or lowest-direct), ignoring uv.lock.
define unlocked
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(UV) pip install --quiet --python $(1)/bin/python "hatchling>=1.21" "editables>=0.5"
	$(UV) pip install --quiet --python $(1)/bin/python --resolution $(2) --no-build-isolation \
		-e '.[test]'
endef

# The console's browser tests (tests/test_console_browser.py) drive Debian's chromium through
# Playwright (whose own browser download is not used): installed here when it is missing,
# with sudo unless we are root.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# tests/test_ops.py checks the alert rules and the scrape example under ops/prometheus/ with
# promtool, from Debian's prometheus package (where the test looks for it): installed here when
# it is missing, without the packages it only recommends. The package also enables a Prometheus
# service on port 9090; `systemctl disable --now prometheus` if this machine should not run one.
PROMTOOL := /usr/bin/promtool

.PHONY: serve test lint bench loadtest-ci lock test-latest test-lowest clean

$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-uv.txt
	touch $@

# The build backend (the locked `build` group) goes in first: the project is then installed
# without build isolation, so nothing unlocked is fetched to build it.
$(BIN)/intercept: $(UV) pyproject.toml uv.lock
	$(SYNC) --no-install-project
	$(SYNC)
	touch $@

serve: $(BIN)/intercept
	$(BIN)/intercept serve

lint: $(BIN)/intercept
	$(BIN)/ruff check .

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(PROMTOOL):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		prometheus

test: $(BIN)/intercept $(CHROMIUM) $(PROMTOOL)
	$(call suite,$(BIN))

loadtest-ci: $(BIN)/intercept
	$(BIN)/intercept-loadtest $(LOADTEST_CI)

bench: $(BIN)/intercept
	$(BIN)/python -m loadtest.bench

# Re-resolve uv.lock to the newest versions pyproject.toml's ranges allow; then run `make test`
# and commit uv.lock. To move uv itself, edit its version and run:
#   echo uv==X.Y.Z | $(UV) pip compile - --generate-hashes --no-header -o requirements-uv.txt
lock: $(UV)
	$(UV) lock --upgrade

# The suite on the newest versions pyproject.toml allows, without the lock, in $(LATEST):
# drift in a dependency shows here before it reaches a user.
test-latest: $(UV) $(CHROMIUM) $(PROMTOOL)
	$(call unlocked,$(LATEST),highest)
	$(call suite,$(LATEST)/bin)

# The suite on the lowest versions pyproject.toml's ranges name for our direct dependencies:
# the lower bounds stay ones the suite has passed with.
test-lowest: $(UV) $(CHROMIUM) $(PROMTOOL)
	$(call unlocked,$(LOWEST),lowest-direct)
	$(call suite,$(LOWEST)/bin)

clean:
	rm -rf $(VENV) $(LATEST) $(LOWEST) .pytest_cache .ruff_cache
