# The two quick-start commands: `make serve` and `make test`.
# Both create .venv on first use and install what they need into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint bench clean

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

bench: $(BIN)/intercept
	$(BIN)/python -m loadtest.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
