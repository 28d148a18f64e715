"""Reference baselines on Fashion-MNIST (full test set): a thin caller of frugalnn.experiments.baselines,
writing docs/results/baselines/baselines.{json,md,png}.

Builds any missing zoo model with its recipe (about 15-30 min each on 2 cores), then measures accuracy,
parameters, MACs and training / inference throughput with 1 torch thread, and training throughput again
with 2 threads (both cores; OMP_WAIT_POLICY=PASSIVE).
Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_baselines.py
"""

from pathlib import Path

import torch

from frugalnn.core.report import markdown_table
from frugalnn.experiments.baselines import run

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parents[1] / "docs" / "results" / "baselines"
    print(markdown_table(run(out, quick=False, seed=0, thread_counts=(1, 2))))
