"""Full quadratic-neuron benchmark: LeNet-5 (all forms) and ResNet-20 (linear, wider linear, efficient,
power) on Fashion-MNIST, 3 seeds, into docs/results/quadratic/. Resumable: runs already in
docs/results/quadratic/runs.jsonl are skipped. Run it as `/work/bin/cpuslot $PY bench/bench_quadratic.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from frugalnn.experiments.quadratic import cost_only, run

if __name__ == "__main__":
    torch.set_num_threads(1)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--cost-only" in sys.argv:  # params, MACs, timed images/s of each form, no training
        for model in args:
            print(json.dumps(cost_only(Path("docs/results/quadratic"), model), indent=1))
        sys.exit(0)
    models = tuple(args) or None  # e.g. `lenet5` to run one model
    # --report-only: no training, only the table / plot / record over the runs already logged
    heads = run(
        Path("docs/results/quadratic"),
        quick=False,
        seed=0,
        models=models,
        report_only="--report-only" in sys.argv,
    )
    print(json.dumps(heads, indent=1))
