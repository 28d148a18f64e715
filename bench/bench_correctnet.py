"""CorrectNet benchmark: the full σ sweep of `frugalnn reproduce correctnet` into docs/results/correctnet/.

python bench/bench_correctnet.py [lenet5] [vgg-small]    # default: both; resumable per row
"""

import sys
from pathlib import Path

import torch

from frugalnn.experiments.correctnet.protocol import run_protocol

if __name__ == "__main__":
    torch.set_num_threads(1)
    models = tuple(sys.argv[1:]) or ("lenet5", "vgg-small")
    timing: tuple[str, ...] = ()  # MC cost: measured separately on this shared machine (docs/crossbar.md)
    for row in run_protocol(
        Path("docs/results/correctnet"), quick=False, seed=0, models=models, timing_models=timing
    ):
        print(row)
