# Meeting-to-CRM. `make run` starts the service with sample data; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000

.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the service and its test tools

run: $(STAMP) ## Migrate, load sample data, start gunicorn + worker on SQLite (Ctrl-C stops)
	$(BIN)/flask --app wsgi serve --host $(HOST) --port $(PORT)

worker: $(STAMP) ## Run only the job worker
	$(BIN)/flask --app wsgi worker

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) ## Lint, then the whole suite on SQLite and on PostgreSQL + Redis
	tests/system-packages.sh
	$(MAKE) lint
	$(BIN)/pytest -n 2 -q
	tests/backends.sh $(BIN)/pytest -n 2 -q

test-sqlite: $(STAMP) ## The suite on SQLite only (fast loop)
	$(BIN)/pytest -n 2 -q

bench: $(STAMP) ## Run the benchmarks (figures go to docs/benchmarks.md)
	tests/system-packages.sh
	$(BIN)/python -m bench

.PHONY: help install run worker lint fmt test test-sqlite bench
