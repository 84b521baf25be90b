# Backbeat: `make run` serves the app, `make test` runs the whole suite.
# Both install what they need first and are safe to repeat.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run share test lint lint-js test-js bench fuzz screenshots clean chromium node redis postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# torch first and pinned (a CPU build), so lightning and keras never pull a CUDA torch
$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,torch,lightning,keras,tensorboard,hf]'
	touch $@

# The page's lint and unit tests run on Node.js (20 is on these machines; Debian's as a fallback).
node:
	@command -v npm >/dev/null 2>&1 || { \
	  echo "installing Debian's nodejs and npm for the page's lint and unit tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

node_modules/.installed: package.json package-lock.json | node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Browser tests drive the system Chromium (never a browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The scaling tests start Debian's redis-server on a free port (never a system service).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing Debian's redis-server for the scaling tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# The store tests start Debian's PostgreSQL from a fresh initdb on a free port (never the service).
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the store tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

run: $(VENV)/.installed
	$(BIN)/backbeat --host $(HOST) --port $(PORT) --no-browser

# Serve the room: every interface unless SHARE_HOST is given (make share SHARE_HOST=192.168.1.20);
# prints what is bound, the viewers' link and the presenter's link.
SHARE_HOST ?= 0.0.0.0
share: $(VENV)/.installed
	$(BIN)/backbeat --share --host $(SHARE_HOST) --port $(PORT) --no-browser

test: $(VENV)/.installed-test chromium redis postgres node_modules/.installed
	$(BIN)/ruff check app backbeat tests bench
	npx --no-install eslint static/js tests/js eslint.config.js
	npx --no-install prettier --check static/js tests/js eslint.config.js
	node --test tests/js/
	$(BIN)/python -m pytest -q -rfER

lint-js: node_modules/.installed
	npx --no-install eslint static/js tests/js eslint.config.js
	npx --no-install prettier --check static/js tests/js eslint.config.js

test-js: node_modules/.installed
	node --test tests/js/

lint: $(VENV)/.installed-test lint-js
	$(BIN)/ruff check app backbeat tests bench
	$(BIN)/ruff format --check app backbeat tests bench

bench: $(VENV)/.installed-test
	$(BIN)/python bench/engine.py

# About 7,500-9,000 schemathesis requests (every check, stateful links) against a real server;
# fails on any finding, 5xx or logged error. docs/benchmarks.md has the latest figures.
FUZZ_EXAMPLES ?= 600
fuzz: $(VENV)/.installed-test
	$(BIN)/python tests/_contract.py --examples $(FUZZ_EXAMPLES)

screenshots: $(VENV)/.installed-test chromium
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache node_modules
