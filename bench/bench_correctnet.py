"""CorrectNet benchmark: the full σ sweep of `frugalnn reproduce correctnet` into docs/results/correctnet/.

OMP_NUM_THREADS=1 .venv/bin/python bench/bench_correctnet.py [lenet5] [vgg-small]   # default: both; resumable per row
"""

import argparse
from pathlib import Path

import torch

from frugalnn.experiments.correctnet.protocol import run_protocol

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="lenet5 and/or vgg-small (default: both)")
    args = p.parse_args()
    args.models = args.models or ["lenet5", "vgg-small"]
    if set(args.models) - {"lenet5", "vgg-small"}:
        p.error(f"models are lenet5 and vgg-small, got {args.models}")
    torch.set_num_threads(1)
    timing: tuple[str, ...] = ()  # MC cost: measured separately on this shared machine (docs/crossbar.md)
    out = Path("docs/results/correctnet")
    run_protocol(out, quick=False, seed=0, models=tuple(args.models), timing_models=timing)
    # the table, plot and record always cover both models (rows of a model not run now come from rows.jsonl)
    for row in run_protocol(out, quick=False, seed=0, timing_models=timing, report_only=True):
        print(row)
