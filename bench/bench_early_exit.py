"""Benchmark: class-exclusion early exit vs confidence exit vs no exit on Fashion-MNIST.

Runs the ``early-exit`` experiment (frugalnn.experiments.early_exit) with the full settings on VGG-small
and ResNet-20 (zoo baselines), torch limited to ONE thread, writing docs/results/early_exit/: early_exit*.json
(make_record: config, seed, versions, data identity), early_exit.md (tables) and the accuracy-vs-MACs and
exit-histogram plots.

    .venv/bin/python bench/bench_early_exit.py [--quick] [--models vgg-small,resnet20] [--ablation]
    .venv/bin/python bench/bench_early_exit.py --joint 2 [--joint-images 20000] [--models vgg-small]
        # ablation: joint fine-tuning of backbone + heads -> docs/results/early_exit/early_exit_joint*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from frugalnn.core.report import markdown_table
from frugalnn.experiments.early_exit import run
from frugalnn.experiments.early_exit.joint import run_joint

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "early_exit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="VGG-small only, small subsets")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--models", help="comma-separated labels to run now (others already in --out are kept in the report)"
    )
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="also: the paper's global-average-pool heads, ResNet-20 with exits after its first two "
        "stages only or after every second block (timed), VGG-small with exits after the first conv-BN-ReLU of "
        "every stage as well",
    )
    parser.add_argument(
        "--joint", type=int, default=0, help="run only the joint fine-tuning ablation with this many epochs"
    )
    parser.add_argument("--joint-images", type=int, default=20000, help="training images per joint epoch")
    parser.add_argument("--joint-lr", type=float, default=0.005, help="SGD learning rate of the fine-tuning")
    args = parser.parse_args()
    torch.set_num_threads(1)  # benchmark figures are single-thread (the machine is shared)
    models = tuple(m.strip() for m in args.models.split(",")) if args.models else None
    out = Path(args.out)
    if args.joint:
        results = run_joint(
            out, args.seed, args.joint, models or ("vgg-small",), args.joint_images, args.joint_lr
        )
        print({r["model"]: {m: r["main"][m]["mac_reduction"] for m in r["main"]} for r in results})
        return
    rows = run(out, args.quick, args.seed, models=models, ablation=args.ablation, merge=bool(models))
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
