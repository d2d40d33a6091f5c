# Two commands do everything on a fresh machine with python3 (make test: also node 20.14+, npm):
#   make run   - create .venv, initialise ./data on first use, start the server on 127.0.0.1:8008
#   make test  - create .venv (and tests/e2e_js/node_modules with npm), run ruff and the
#                whole test suite with the coverage gate
# The interpreter the venv is made from: the system's python3 when it is 3.11+ and can
# make venvs, else python3 on PATH (PYTHON=... picks any other). Distributions (Debian,
# Raspberry Pi OS) build their python3 with profile-guided optimisation and LTO and link
# it statically; pyenv's default build has neither, and the server used 10-20 % more CPU
# on it on this machine (bench/RESULTS.md, twenty-sixth session).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; exit 0; }; done; echo python3)
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Test processes side by side (pytest-xdist, a file per worker at a time): the suite mostly
# waits on server subprocesses, so two keep a 2-core machine busy. PYTEST_WORKERS=0: serial.
PYTEST_WORKERS ?= 2
# The E2EE client test (tests/e2e/test_js_e2ee.py) runs matrix-js-sdk under Node 20.14+.
JS_DIR := tests/e2e_js
JS_STAMP := $(JS_DIR)/node_modules/.installed
# The real OpenID provider of the upstream-provider tests (npm oidc-provider).
OIDC_DIR := tests/oidc_provider
OIDC_STAMP := $(OIDC_DIR)/node_modules/.installed

.PHONY: run test lint format typecheck bench clean chromium

# The server alone (what a Raspberry Pi needs); the test tools come on top for make test.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

$(OIDC_STAMP): $(OIDC_DIR)/package.json $(OIDC_DIR)/package-lock.json
	cd $(OIDC_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(OIDC_STAMP)

# The OAuth pages' browser tests drive Debian's chromium through Playwright (never
# `playwright install`: its browser download does not work everywhere).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

run: $(STAMP)
	test -f $(DATA)/config.toml || $(BIN)/dendrite-lite init --data-dir $(DATA) \
		--server-name localhost --listen 127.0.0.1:8008 --open-registration
	$(BIN)/dendrite-lite run --data-dir $(DATA)

test: $(TEST_STAMP) $(JS_STAMP) $(OIDC_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --cov --cov-report=term $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: $(TEST_STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

bench: $(TEST_STAMP)
	$(BIN)/python bench/bench_foundation.py

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules $(OIDC_DIR)/node_modules .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
