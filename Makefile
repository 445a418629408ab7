# termdeposit — common tasks. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Tests read the reference data from ../shared/data when it is there, else from data/raw.
TEST_DATA ?= $(if $(wildcard ../shared/data/bank-additional-full.csv),$(abspath ../shared/data),$(abspath data/raw))
PORT ?= 8501
API_PORT ?= 8000

.PHONY: help setup run dashboard system-deps test test-fast lint format data train train-full \
        evaluate bench api retrain monitor weekly scheduler clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/.installed ## Create the virtual env and install everything (idempotent)

run: setup ## Set everything up (data, first model) and start the dashboard
	$(BIN)/termdeposit bootstrap
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

dashboard: setup ## Start the dashboard only
	$(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

system-deps: ## Debian packages the tests need (chromium, postgresql); run as root
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium postgresql

test: setup ## Run the whole test suite (browser and PostgreSQL tests included)
	@export TERMDEPOSIT_TEST_PG_URL="$$(scripts/start_test_postgres.sh | tail -n 1)"; \
	TERMDEPOSIT_DATA=$(TEST_DATA) $(BIN)/pytest

test-fast: setup ## Run the tests without the browser and PostgreSQL ones
	TERMDEPOSIT_DATA=$(TEST_DATA) $(BIN)/pytest -m "not browser and not postgres"

lint: setup ## Lint: ruff, formatting, architecture contracts (import-linter), mypy, hadolint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/hadolint --failure-threshold warning Dockerfile

format: setup ## Format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

data: setup ## Download and verify the UCI data, build data/processed/
	$(BIN)/termdeposit fetch-data
	$(BIN)/termdeposit prepare

train: setup ## Train the quick profile and promote it
	$(BIN)/termdeposit train --profile quick

train-full: setup ## Train the full profile (up to 20 minutes) and promote it
	$(BIN)/termdeposit train --profile full

evaluate: setup ## Re-measure the production model on both hold-outs
	$(BIN)/termdeposit evaluate

api: setup ## Start the HTTP scoring API
	$(BIN)/termdeposit serve-api --host 127.0.0.1 --port $(API_PORT)

retrain: setup ## Weekly: train a challenger and promote it only if it beats the champion
	$(BIN)/termdeposit retrain

monitor: setup ## Check drift and KPI alerts (non-zero exit when an alert fires)
	$(BIN)/termdeposit monitor --check

weekly: setup ## The week's work once: drops, upkeep, scoring, call lists, monitoring, alerts
	$(BIN)/termdeposit weekly

scheduler: setup ## Run the weekly job on its schedule (TERMDEPOSIT_WEEKLY_CRON), foreground
	$(BIN)/termdeposit scheduler

bench: setup ## Run every benchmark (prints figures and ratios)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; TERMDEPOSIT_DATA=$(TEST_DATA) $(BIN)/python $$script || exit 1; done

clean: ## Remove caches (keeps data/ and models/)
	rm -rf .pytest_cache .ruff_cache .mypy_cache artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
