"""Benchmark: PowerPruning on the zoo's Fashion-MNIST LeNet-5 and ResNet-20 (8-bit MAC, OSU018), K in
{256, 64, 32, 16, 8}, with and without the delay step and voltage scaling, plus the power model's
cross-check against a direct gate-level simulation. Writes docs/results/power_pruning/.

Runs at 1 torch thread. Resumable: every (model, K, delay step) run is saved under runs/ as it finishes
and reused on the next start. Characterisations are cached under docs/results/power_pruning/cache
(not committed).

  .venv/bin/python bench/bench_power_pruning.py [--models lenet5 resnet20] [--keeps 256 64 32 16 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from frugalnn.experiments.power_pruning import run

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "power_pruning"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=("lenet5", "resnet20"))
    parser.add_argument("--keeps", nargs="+", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = {k: v for k, v in (("models", args.models), ("keeps", args.keeps)) if v}
    for row in run(OUT, quick=False, seed=args.seed, **options):
        print(row)
