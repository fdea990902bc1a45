# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py src/kubehawk/_linescreen.c src/kubehawk/_needles.c
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml setup.py src/kubehawk/_linescreen.c src/kubehawk/_needles.c
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

demo: install
	$(BIN)/kubehawk detect --format table --min-level medium --config examples/kubehawk.yaml examples/sample-audit.log

test: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: dev
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/bench_detect.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
