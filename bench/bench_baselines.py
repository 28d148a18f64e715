"""Reference baselines on Fashion-MNIST (full test set): a thin caller of frugalnn.experiments.baselines,
writing docs/results/baselines/baselines.{json,md,png}.

Builds any missing zoo model with its recipe (about 15-30 min each on 2 cores), then measures accuracy,
parameters, MACs and training / inference throughput with 1 torch thread, and training throughput again
with 2 threads (both cores; OMP_WAIT_POLICY=PASSIVE).
Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_baselines.py [--quick] [--seed S] [--out DIR]
"""

import argparse
from pathlib import Path

import torch

from frugalnn.core.report import markdown_table
from frugalnn.experiments.baselines import run


def _threads(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(t) for t in text.split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2, got {text!r}") from None
    if not counts or any(not 1 <= c <= 1024 for c in counts):
        raise argparse.ArgumentTypeError(f"thread counts lie in [1, 1024], got {text!r}")
    return counts


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"a seed lies in [0, 2**32), got {value}")
    return value


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="bundled weights, 2,000 test images, short runs")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--thread-counts", type=_threads, default=(1, 2), help="training throughput at these (1,2)"
    )
    p.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "results" / "baselines"
    )
    args = p.parse_args()
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out {args.out} is a file; give a folder")
    torch.set_num_threads(1)
    print(markdown_table(run(args.out, quick=args.quick, seed=args.seed, thread_counts=args.thread_counts)))
