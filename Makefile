# The two quick-start commands: `make serve` and `make test`.
# Both create .venv on first use and install what they need into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint bench loadtest-ci clean

# The CI load run: 1,000 simulated buyers for 30 s over SMPP with gateway faults; it fails the
# build on any lost or duplicated message (docs/performance.md).
LOADTEST_CI = --buyers 1000 --duration 30 --ramp-up 5 --faults drop=0.002,error=0.01

$(BIN)/intercept: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: $(BIN)/intercept
	$(BIN)/intercept serve

lint: $(BIN)/intercept
	$(BIN)/ruff check .

test: $(BIN)/intercept lint
	$(BIN)/pytest
	$(BIN)/intercept-loadtest $(LOADTEST_CI)

loadtest-ci: $(BIN)/intercept
	$(BIN)/intercept-loadtest $(LOADTEST_CI)

bench: $(BIN)/intercept
	$(BIN)/python -m loadtest.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
