"""BasisN benchmark: ResNet-20 and VGG-small on Fashion-MNIST, 2/4/8-bit coefficients, 1-16 crossbars.

Run (about an hour on one shared core): ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_basisn.py``;
writes docs/results/basisn/ (resumes per trained run from docs/results/basisn/runs/).
"""

from pathlib import Path

import torch

from frugalnn.experiments.basisn.protocol import run_protocol

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parent.parent / "docs" / "results" / "basisn"
    out.mkdir(parents=True, exist_ok=True)
    for row in run_protocol(out, quick=False, seed=0):
        print(row)
