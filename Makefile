# Every target sets up what it needs: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint format migrations-check bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP) ## Create the virtualenv and install every dependency

run: setup ## Migrate, create an admin (password printed), start demo upstreams, a Celery worker and beat, serve on :8000 (threaded runserver; production: gunicorn, docs/operations.md)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) manage.py run_demo 127.0.0.1:8000

test: setup migrations-check ## Run every test (SQLite unless DATABASE_URL says otherwise)
	$(PY) -m pytest

lint: setup ## ruff
	$(VENV)/bin/ruff check .

format: setup ## ruff format and import order
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

migrations-check: setup ## Fail when models and migrations disagree
	$(PY) manage.py makemigrations --check --dry-run

bench: setup ## Overhead and concurrency benchmarks (print tables; ~10 min, PostgreSQL if reachable)
	$(PY) bench/overhead.py
	$(PY) bench/concurrency.py

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) var db.sqlite3
