# KK99 Exchange — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
NATIVE_SOURCES := $(wildcard trading/native/*.c trading/native/*.h trading/native/build_ffi.py)

.PHONY: help install assets run migrate seed test test-native test-python test-tools lint coverage bench scale-demo clean

help:
	@echo "make run    - set up everything and start the demo exchange on http://$(HOST):$(PORT)"
	@echo "make test   - the whole suite (C + Python); PostgreSQL/Redis used when reachable"
	@echo "make lint   - ruff (also run by make test)"
	@echo "make bench  - benchmarks; results written to docs/benchmarks.md"
	@echo "make scale-demo - 2 web, 2 engines + standby, 2 Celery workers + beat; kills an owner and a web"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel

# Installing the project compiles the native order book (cffi_modules in setup.py).
$(VENV)/.installed: $(VENV)/bin/python pyproject.toml setup.py $(NATIVE_SOURCES)
	$(PIP) install --quiet -e '.[test]'
	@touch $@

install: $(VENV)/.installed assets

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# Front-end packages come from npm; they are copied (not committed) into static/vendor.
static/vendor/.copied: node_modules/.package-lock.json
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
	cp node_modules/htmx-ext-ws/dist/ws.min.js static/vendor/htmx-ext-ws.min.js
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js static/vendor/lightweight-charts.js
	@touch $@

assets: static/vendor/.copied

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

# The demo script starts the embedded PostgreSQL (no DATABASE_URL), migrates, seeds and runs.
run: install
	PY=$(PY) HOST=$(HOST) PORT=$(PORT) deploy/scripts/run-demo.sh

test-native:
	$(MAKE) -C trading/native test

# Tools the tests start themselves: a Vault-compatible server (bao), anvil + solc, litecoind
# (chains), Debian's chromium (browser end-to-end), promtool + pgbackrest + checkov (tests/ops).
# Installed by the project's own scripts.
test-tools: $(VENV)/.installed
	bash deploy/scripts/install-chain-tools.sh
	bash deploy/scripts/install-browser.sh
	bash deploy/scripts/install-ops-tools.sh
	bash deploy/scripts/install-nats.sh
	bash deploy/scripts/install-timescale.sh

# The suite runs under coverage.py; `coverage report` fails below [tool.coverage.report]
# fail_under in pyproject.toml (the floor; the measured total is in the README).
test-python: install test-tools
	@source deploy/scripts/test-env.sh && $(PY) -m coverage run -m pytest $(PYTEST_ARGS)
	$(PY) -m coverage report

coverage:
	$(PY) -m coverage report
	$(PY) -m coverage html -d var/coverage-html

# ruff, configured in pyproject.toml ([tool.ruff]); `make test` runs it first.
lint: install
	$(VENV)/bin/ruff check .

test: install lint test-native test-python

# Every benchmark in one go, each writing its own section of docs/benchmarks.md (run it on a
# quiet machine: the numbers are only as good as the cores are idle). PostgreSQL and Redis on
# 127.0.0.1 are used by the engine, HTTP and WebSocket benchmarks (each makes its own database).
bench: install
	$(PY) -m bench.orderbook --write docs/benchmarks.md
	$(PY) -m bench.engine --profile --write docs/benchmarks.md
	$(PY) -m bench.http_api --engine --write docs/benchmarks.md
	$(PY) -m bench.order_latency --write docs/benchmarks.md
	$(PY) -m bench.timeline --write docs/benchmarks.md
	$(PY) -m bench.ws --write docs/benchmarks.md
	$(PY) -m bench.quant_bench --write docs/benchmarks.md
	$(PY) -m bench.risk_bench --write docs/benchmarks.md
	$(PY) -m bench.halts_bench --write docs/benchmarks.md
	$(PY) -m bench.margin_bench --write docs/benchmarks.md
	$(PY) -m bench.events_bench --write docs/benchmarks.md

# Scale-out proof on one machine (docs/operations.md, docs/benchmarks.md): its own database.
scale-demo: install
	@source deploy/scripts/test-env.sh && $(PY) deploy/scale/scale_demo.py --write docs/benchmarks.md

clean:
	rm -rf $(VENV) node_modules static/vendor staticfiles build *.egg-info
	$(MAKE) -C trading/native clean
