"""Benchmark: class-aware vs L1 vs Taylor filter pruning at equal MACs on Fashion-MNIST, plus CPU throughput:
a thin caller of frugalnn.experiments.class_pruning (grid.py, timing.py), writing docs/results/class_pruning/.

Runs at 1 torch thread. Resumable: rows already in the JSON are skipped, and the JSON is rewritten after
every run, so partial results survive. Pruned checkpoints go to $FRUGALNN_CACHE/bench/class_pruning.

  .venv/bin/python bench/bench_class_pruning.py grid --models resnet20 vgg-small --targets 0.2 --seeds 0
  .venv/bin/python bench/bench_class_pruning.py speed
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from frugalnn.experiments.class_pruning.grid import grid, import_rows, merge, plan
from frugalnn.experiments.class_pruning.protocol import BUDGETS, VARIANTS
from frugalnn.experiments.class_pruning.timing import speed_bench, stage_search, widths

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results" / "class_pruning"


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="phase", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--models", nargs="+", default=["resnet20", "vgg-small"])
    g.add_argument(
        "--methods", nargs="+", default=["class-aware", "l1", "taylor"], choices=[*VARIANTS, "dense"]
    )
    g.add_argument(
        "--base",
        dest="base_kind",
        choices=("zoo", "snapshot"),
        default="zoo",
        help="snapshot: SAVE_DIR/base-MODEL",
    )
    g.add_argument("--targets", nargs="+", type=float, default=[0.2])
    g.add_argument("--seeds", nargs="+", type=int, default=[0])
    g.add_argument("--round-to", type=int, default=4)
    g.add_argument(
        "--tag", default="", help="write docs/results/class_pruning/class_pruning_TAG.json (parallel runs)"
    )
    g.add_argument(
        "--budget",
        dest="budget_name",
        choices=sorted(BUDGETS),
        default="full",
        help="full: 700 steps; long: 1,400 + KD; xlong: 4,200 + KD",
    )
    g.add_argument("--distill", type=float, default=None, help="override the budget's distill_weight")
    m = sub.add_parser("merge")
    m.add_argument(
        "--tags", nargs="+", default=["resnet20", "vgg-small"], help="session 1: the snapshot grids"
    )
    w = sub.add_parser("widths")
    w.add_argument("--models", nargs="+", default=["resnet20", "vgg-small"])
    w.add_argument("--keeps", nargs="+", type=float, default=[0.4, 0.2, 0.1])
    w.add_argument("--round-tos", nargs="+", type=int, default=[1, 4, 8])
    w.add_argument("--batch", type=int, default=64)
    w.add_argument("--rounds", type=int, default=3)
    w.add_argument("--stem", default="class_pruning_widths", help="docs/results/STEM.json / .md")
    w.add_argument("--fold-bn", action="store_true", help="fold BN into the convs (torch.fx) before timing")
    w.add_argument(
        "--runtime",
        choices=("eager", "channels-last", "torchscript", "onnxruntime"),
        default="eager",
        help="where both models run: PyTorch eager (default), BN folded + channels-last, frozen TorchScript, "
        "or ONNX Runtime; always 1 thread",
    )
    w.add_argument(
        "--clock",
        choices=("thread", "wall"),
        default="thread",
        help="thread: CPU time of the computing thread (robust on a shared machine); wall: perf_counter",
    )
    ss = sub.add_parser("stage-search", help="best CPU share of the MAC promise over ResNet-20 stage widths")
    ss.add_argument("--keeps", nargs="+", type=float, default=[0.2])
    ss.add_argument("--slack", type=float, default=0.07, help="allocations within this share under budget")
    ss.add_argument("--batch", type=int, default=64)
    ss.add_argument("--top", type=int, default=10, help="re-time the best N allocations")
    ss.add_argument("--rounds", type=int, default=5, help="interleaved rounds when re-timing")
    pl = sub.add_parser("plan", help="run a JSON list of grid cells on several processes (GPU machine)")
    pl.add_argument("--plan", dest="plan_file", required=True)
    pl.add_argument(
        "--rows", dest="rows_file", required=True, help="JSON-lines file the finished rows are appended to"
    )
    pl.add_argument("--workers", type=int, default=2)
    pl.add_argument("--device", default="cpu")
    ir = sub.add_parser("import-rows", help="JSON lines from plan -> class_pruning_PREFIX-BUDGET.json")
    ir.add_argument("--rows", dest="rows_file", required=True)
    ir.add_argument("--prefix", default="gpu")
    s = sub.add_parser("speed")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tags", nargs="+", default=None, help="grid files to measure (default: all)")
    args = vars(p.parse_args())
    RESULTS.mkdir(parents=True, exist_ok=True)
    phases = {"grid": grid, "speed": speed_bench, "merge": merge, "widths": widths, "plan": plan,
              "import-rows": import_rows, "stage-search": stage_search}  # fmt: skip
    phases[args.pop("phase")](RESULTS, **args)


if __name__ == "__main__":
    main()
