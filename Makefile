# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv as needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CODE   := $(wildcard src tests scripts bench)

.PHONY: demo demo-queue test lint typecheck unit format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-server: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,server]'
	touch $@ $(VENV)/.installed-server

demo: $(VENV)/.installed-server
	$(BIN)/mailout demo

demo-queue: $(VENV)/.installed-server
	$(BIN)/mailout queue demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src
	$(BIN)/python scripts/unasync.py --check

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test: lint typecheck unit

format: $(VENV)/.installed-dev
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
