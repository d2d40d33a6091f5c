# Two commands do everything on a fresh machine that has python3:
#   make run   - create .venv, initialise ./data on first use, start the server on 127.0.0.1:8008
#   make test  - create .venv, run ruff and the whole test suite with the coverage gate
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
STAMP := $(VENV)/.installed

.PHONY: run test lint format typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	test -f $(DATA)/config.toml || $(BIN)/dendrite-lite init --data-dir $(DATA) \
		--server-name localhost --listen 127.0.0.1:8008 --open-registration
	$(BIN)/dendrite-lite run --data-dir $(DATA)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest --cov --cov-report=term $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
