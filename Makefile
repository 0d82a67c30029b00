# Two commands for a newcomer: `make run` (set up, then run the daemon) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run demo test lint bench

$(BIN)/sfstripe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## Set up (once) and run the daemon; with no SFSTRIPE_DATABASE_URL it runs its own PostgreSQL.
run: $(BIN)/sfstripe
	$(BIN)/sfstripe run

## The daemon against the built-in Stripe Billing emulator, with a sample customer's story.
demo: $(BIN)/sfstripe
	$(BIN)/sfstripe demo

## Set up (once), then lint, type-check and run every test.
test: $(BIN)/sfstripe lint
	$(BIN)/python -m pytest

lint: $(BIN)/sfstripe
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/sfstripe
	$(BIN)/python -m bench append --events 200000
