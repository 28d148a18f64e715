# Two commands a user needs: `make demo` and `make test`. Each builds what it needs on a fresh
# machine: .venv with the pinned CPU torch first, then the package, the Debian tools and the data.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export FRUGALNN_CACHE ?= $(HOME)/.cache/frugalnn
TORCH_SPEC := torch==2.13.0

.PHONY: setup assets tools demo test bench lint format clean-venv

$(VENV)/.torch-ok:
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q $(TORCH_SPEC) 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import torch" && touch $@

$(VENV)/.pkg-ok: $(VENV)/.torch-ok pyproject.toml
	$(PY) -m pip install -q -e ".[dev]" $(TORCH_SPEC) 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import frugalnn, transformers" && touch $@

setup: $(VENV)/.pkg-ok

assets: setup
	PYTHON=$(PY) bash scripts/fetch_assets.sh all

tools:
	bash scripts/install_tools.sh

demo: setup assets tools
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/frugalnn reproduce --all --quick --out reports/demo

test: setup assets tools
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -p no:cacheprovider tests

bench: setup assets tools
	for b in bench/bench_*.py; do OMP_WAIT_POLICY=PASSIVE $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check src tests bench && $(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff format src tests bench && $(VENV)/bin/ruff check --fix src tests bench
