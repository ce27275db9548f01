# Every target sets up what it needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# manage.py defaults to production settings (they refuse a missing or weak
# secret); the targets here run locally, so they name the local settings.
LOCAL := DJANGO_SETTINGS_MODULE=fallbackproject.settings.local
# `make run PORT=8080 SIM_PORT=18201` when 8000 or 18101-18103 are taken;
# `make run DEMO_FLAGS=--no-traffic` for a demo that waits for you.
PORT ?= 8000
SIM_PORT ?= 18101
DEMO_FLAGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint format migrations-check bench bench-peer clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP) ## Create the virtualenv and install every dependency

run: setup ## The demo: admin and client key printed, upstreams that fail by themselves, traffic, worker, beat, web on :8000 (PORT=, SIM_PORT=; threaded runserver: production runs gunicorn, docs/operations.md)
	@$(LOCAL) $(PY) manage.py migrate --noinput --verbosity 0
	@$(LOCAL) $(PY) manage.py demo_setup --sim-port $(SIM_PORT)
	@$(LOCAL) $(PY) manage.py run_demo 127.0.0.1:$(PORT) --sim-port $(SIM_PORT) $(DEMO_FLAGS)

test: setup migrations-check ## Run every test (SQLite unless DATABASE_URL says otherwise); -rs says why any were skipped (e.g. no Chromium for tests/browser)
	$(PY) -m pytest -rs

lint: setup ## ruff
	$(VENV)/bin/ruff check .

format: setup ## ruff format and import order
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

migrations-check: setup ## Fail when models and migrations disagree
	$(LOCAL) $(PY) manage.py makemigrations --check --dry-run

bench: setup ## Every benchmark: overhead, concurrency, provider faults and the side-by-side tables against LiteLLM (its side runs when `make bench-peer` installed it); prints tables, ~25 min
	$(PY) bench/overhead.py
	$(PY) bench/chat_cpu.py
	$(PY) bench/concurrency.py
	$(PY) bench/provider_faults.py
	$(PY) bench/all.py

PEER_VENV := bench/.peer-venv

$(PEER_VENV)/.installed: bench/requirements-peer.txt
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	LITELLM_LOCAL_MODEL_COST_MAP=True $(PEER_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-peer.txt
	touch $(PEER_VENV)/.installed

bench-peer: $(PEER_VENV)/.installed ## Install LiteLLM (the benchmarks' peer) in its own venv, bench/.peer-venv

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) var db.sqlite3
