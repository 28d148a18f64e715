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
	$(VENV)/bin/frugalnn assets fetch all

tools:
	bash scripts/install_tools.sh

demo: setup assets tools
	OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/frugalnn reproduce --all --quick --out reports/demo

test: setup assets tools
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -p no:cacheprovider tests

# Every benchmark, 1 torch thread each (several hours on 2 cores: run on a quiet machine).
BENCH := OMP_WAIT_POLICY=PASSIVE $(PY)
bench: setup assets tools
	$(BENCH) bench/bench_baselines.py
	$(BENCH) bench/bench_hw.py
	$(BENCH) bench/bench_crossbar.py
	$(BENCH) bench/bench_early_exit.py --models vgg-small
	$(BENCH) bench/bench_early_exit.py --models resnet20
	$(BENCH) bench/bench_class_pruning.py grid --targets 0.4 0.2 0.1
	$(BENCH) bench/bench_class_pruning.py merge
	$(BENCH) bench/bench_class_pruning.py widths
	$(BENCH) bench/bench_basis_sharing.py --what ppl
	$(BENCH) bench/bench_basis_sharing.py --what time --threads 2 --set calib_dtype=bfloat16 --tag bf16_2threads
	$(BENCH) bench/bench_basis_sharing_recovery.py --ratios 0.2 0.3 0.4 0.5
	$(BENCH) bench/bench_basis_sharing.py --what throughput
	$(BENCH) bench/bench_basis_sharing.py --what report
	$(BENCH) bench/bench_livemind.py latency
	$(BENCH) bench/bench_livemind.py latency --answer-mode choice --answer-format ""
	$(BENCH) bench/bench_livemind.py steps
	$(BENCH) bench/bench_basis_sharing_domains.py
	$(BENCH) bench/bench_quadratic.py
	$(BENCH) bench/bench_power_pruning.py
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash docs/results/encodingnet/run_searches.sh
	$(BENCH) bench/bench_encodingnet.py
	$(BENCH) bench/bench_logic_flatten.py
	$(BENCH) bench/bench_basisn.py
	$(BENCH) bench/bench_correctnet.py lenet5
	$(BENCH) bench/bench_correctnet.py vgg-small
	$(VENV)/bin/frugalnn reproduce --index docs/results

lint: setup
	$(VENV)/bin/ruff check src tests bench && $(VENV)/bin/ruff format --check src tests bench

format: setup
	$(VENV)/bin/ruff format src tests bench && $(VENV)/bin/ruff check --fix src tests bench
