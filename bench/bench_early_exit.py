"""Benchmark: class-exclusion early exit vs confidence exit vs no exit on Fashion-MNIST.

Runs the ``early-exit`` study on VGG-small and ResNet-20 (zoo baselines), with torch limited to ONE
thread, and writes docs/results/early_exit/early_exit*.json (make_record: config, seed, versions, data identity),
early_exit.md (tables) and the accuracy-vs-MACs and exit-histogram plots.

    .venv/bin/python bench/bench_early_exit.py [--quick] [--out docs/results] [--ablation]
    .venv/bin/python bench/bench_early_exit.py --joint 2 [--joint-images 20000] [--models vgg-small]
        # ablation: joint fine-tuning of backbone + heads -> docs/results/early_exit/early_exit_joint*
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from frugalnn.experiments.early_exit import run_study

# ResNet-20's default exits are after every residual block but the last (heads.default_exits); the
# ablation puts them after its first two stages only (the default of the first version of this study)
RESNET_STAGES = ("layer1", "layer2")
# ResNet-20 with an exit after every second block: fewer heads to pay for in wall time (each costs
# 10-20% of a block's time at one thread), more than the two stage exits for the MAC cut
RESNET_ALTERNATE = ("layer1.1", "layer2.0", "layer2.2", "layer3.1")
# VGG-small with an exit after the first conv of every stage as well as after every stage
VGG_FINE = ("blocks.0.2", "blocks.0", "blocks.1.2", "blocks.1", "blocks.2.2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="VGG-small only, small subsets")
    parser.add_argument("--out", default="docs/results")
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
    if args.joint:
        from frugalnn.core.data import load_fashion_mnist
        from frugalnn.experiments.early_exit_joint import study_joint, write_joint_report

        data = load_fashion_mnist(seed=0)
        names = [m.strip() for m in (args.models or "vgg-small").split(",")]
        previous = Path(args.out) / "early_exit_joint.json"  # keep other settings' results
        results = json.loads(previous.read_text())["results"] if previous.exists() else []
        for name in names:
            label = f"{name}-joint-e{args.joint}-lr{args.joint_lr:g}"
            res = study_joint(name, data, args.seed, args.joint, args.joint_images, label, lr=args.joint_lr)
            results = [r for r in results if r["model"] != label] + [res]
            config = {"runs": [r["joint"] | {"model": r["model"]} for r in results]}
            write_joint_report(results, Path(args.out), config, args.seed, data.identity)
        print(
            json.dumps({r["model"]: {m: r["main"][m]["mac_reduction"] for m in r["main"]} for r in results})
        )
        return
    plan = None
    if not args.quick:
        plan = [("vgg-small", "vgg-small", 4, None), ("resnet20", "resnet20", 4, None)]
        if args.ablation:
            plan += [
                ("vgg-small-gap", "vgg-small", 1, None, False),
                ("resnet20-stages", "resnet20", 4, RESNET_STAGES, False),
                ("vgg-small-fine", "vgg-small", 4, VGG_FINE, False),
                ("resnet20-alternate", "resnet20", 4, RESNET_ALTERNATE),  # timed as well
            ]
    if plan is not None and args.models:
        wanted = {m.strip() for m in args.models.split(",")}
        plan = [p for p in plan if p[0] in wanted]
    headline = run_study(Path(args.out), args.quick, args.seed, plan=plan, merge=bool(args.models))
    print(json.dumps(headline, indent=2))


if __name__ == "__main__":
    main()
