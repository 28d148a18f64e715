"""Reference baselines on Fashion-MNIST (full test set): writes docs/results/baselines.{json,md,png}.

Builds any missing zoo model with its recipe (about 15-30 min each on 2 cores), then measures
accuracy, parameters, MACs and training / inference throughput with 1 torch thread.
Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_baselines.py
"""

from pathlib import Path

import torch

from frugalnn.experiments.baselines import run

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parent.parent / "docs" / "results"
    print(run(out, quick=False, seed=0))
