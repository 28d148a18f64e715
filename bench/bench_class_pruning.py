"""Benchmark: class-aware vs L1 vs Taylor filter pruning at equal MACs on Fashion-MNIST, plus CPU throughput.

Runs at 1 torch thread. Resumable: rows already in the JSON are skipped, and the JSON is rewritten after
every run, so partial results survive. Pruned checkpoints go to $FRUGALNN_CACHE/bench/class_pruning.

  .venv/bin/python bench/bench_class_pruning.py grid --models resnet20 vgg-small --targets 0.2 --seeds 0
  .venv/bin/python bench/bench_class_pruning.py speed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from frugalnn.core.assets import cache_dir
from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.class_pruning import BUDGETS, FULL_BUDGET, VARIANTS, run_one, speed, write_report
from frugalnn.methods.class_pruning import load_pruned

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
GRID_JSON = RESULTS / "class_pruning.json"
SPEED_JSON = RESULTS / "class_pruning_throughput.json"
SAVE_DIR = cache_dir() / "bench" / "class_pruning"


def _key(r: dict) -> tuple:
    return (r["model"], r["method"], r["target_flops"], r["seed"], r.get("round_to", 4))


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]["rows"] if path.exists() else []


def _grid_rows(tags: list[str] | None = None) -> list[dict]:
    """Rows of the per-tag grid files class_pruning_<tag>.json (every tag when None; never the throughput /
    widths files). Tags differ in starting model and budget, so merge one comparable set at a time."""
    files = [
        p
        for p in sorted(RESULTS.glob("class_pruning_*.json"))
        if "throughput" not in p.stem
        and "widths" not in p.stem
        and (tags is None or p.stem.removeprefix("class_pruning_") in tags)
    ]
    return [r for p in files for r in _rows(p)]


def grid(args: argparse.Namespace) -> None:
    data = load_fashion_mnist(seed=0)
    path = RESULTS / f"class_pruning_{args.tag}.json" if args.tag else GRID_JSON
    rows = _rows(path)
    done = {_key(r) for r in rows}
    budget = {**BUDGETS[args.budget]}
    if args.distill is not None:
        budget["distill_weight"] = args.distill
    save_dir = SAVE_DIR / args.tag if args.tag else SAVE_DIR
    config = {"budget": budget, "budget_name": args.budget, "threads": 1, "equal_budget": True}
    for seed in args.seeds:
        for target in args.targets:
            for model in args.models:
                for method in args.methods:
                    key = (model, method, target, seed, args.round_to)
                    if key in done:
                        continue
                    print(f"== {key}", flush=True)
                    base = SAVE_DIR / f"base-{model}" if args.base == "snapshot" else None
                    row = run_one(
                        model, method, target, seed, data, budget, save_dir, True, args.round_to, base
                    )
                    row["base"] = str(base or "zoo")
                    row["budget"] = budget
                    rows.append(row)
                    print(
                        f"   test {row['test_accuracy']:.4f} (dense {row['dense_test_accuracy']:.4f}, "
                        f"drop {row['accuracy_drop_points']:.2f} pts) MAC cut {row['mac_reduction']:.1%} "
                        f"params {row['params']:,} in {row['seconds']:.0f} s",
                        flush=True,
                    )
                    report = write_report(RESULTS, rows, path.stem, plots=False)
                    record = make_record(
                        "class_pruning", config=config, seed=None, data=data.identity,
                        results={"rows": rows, "table": report["table"]},
                    )  # fmt: skip
                    write_record(path, record)
    print(markdown_table(write_report(RESULTS, rows, path.stem, plots=False)["table"], digits=2))


def merge(args: argparse.Namespace) -> None:
    """Join the per-tag grids (--tags) into class_pruning.json / .md / plots."""
    rows = _grid_rows(args.tags)
    report = write_report(RESULTS, rows)
    config = {
        "budget": FULL_BUDGET,
        "threads": 1,
        "equal_budget": True,
        "merged_from": [f"class_pruning_{t}.json" for t in args.tags],
    }
    data = load_fashion_mnist(seed=0)
    record = make_record(
        "class_pruning",
        config=config,
        seed=None,
        data=data.identity,
        results={"rows": rows, "table": report["table"]},
    )
    write_record(GRID_JSON, record)
    print(markdown_table(report["table"], digits=2))


def speed_bench(args: argparse.Namespace) -> None:
    """Throughput of every saved pruned model against its dense baseline, batch 64, 1 thread."""
    rows = _grid_rows(args.tags)
    x = torch.randn(args.batch, 1, 28, 28)
    out = json.loads(SPEED_JSON.read_text())["results"] if SPEED_JSON.exists() else []
    measured_keys = {_key(r) for r in out}
    for model_name in sorted({r["model"] for r in rows}):
        base = SAVE_DIR / f"base-{model_name}"
        dense, _, _ = load_pruned(base) if base.exists() else load_pretrained(model_name)
        mine = [
            r
            for r in rows
            if r["model"] == model_name and r.get("checkpoint") and _key(r) not in measured_keys
        ]
        for r in mine:
            pruned, _, _ = load_pruned(r["checkpoint"])
            ips = speed({"dense": dense, "pruned": pruned}, x, rounds=args.rounds)
            promised = r["dense_macs"] / r["macs"]
            measured = ips["pruned"] / ips["dense"]
            out.append(
                {
                    "model": model_name, "method": r["method"], "target_flops": r["target_flops"],
                    "seed": r["seed"], "round_to": r.get("round_to", 4), "mac_reduction": r["mac_reduction"],
                    "dense_img_per_s": ips["dense"], "pruned_img_per_s": ips["pruned"],
                    "speedup": measured, "mac_promise": promised, "share_of_promise": measured / promised,
                    "widths": r["record"]["widths"],
                }
            )  # fmt: skip
            print(
                f"{model_name} {r['method']} keep {r['target_flops']} r{r.get('round_to', 4)}: "
                f"{measured:.2f}x of promised {promised:.2f}x ({measured / promised:.0%})",
                flush=True,
            )
            record = make_record(
                "class_pruning_throughput", config={"batch": args.batch, "threads": 1, "rounds": args.rounds},
                seed=None, data=None, results=out,
            )  # fmt: skip
            write_record(SPEED_JSON, record)
    cols = [
        "model",
        "method",
        "target_flops",
        "round_to",
        "mac_reduction",
        "speedup",
        "mac_promise",
        "share_of_promise",
    ]
    write_markdown(RESULTS / "class_pruning_throughput.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def widths(args: argparse.Namespace) -> None:
    """Throughput vs MAC cut of L1-uniform pruned architectures (no fine-tuning: speed depends on the
    widths only) for round_to 1 / 4 / 8, so the effect of CPU-friendly channel counts shows."""
    import copy

    from torch.fx.experimental.optimization import fuse

    from frugalnn.core.measure import count_macs
    from frugalnn.errors import ConfigError
    from frugalnn.methods.class_pruning import ChannelGraph, MacModel, l1_scores, prune_channels
    from frugalnn.methods.class_pruning.prune import allocate_uniform, group_scores

    x = torch.randn(args.batch, 1, 28, 28)
    out = []
    for model_name in args.models:
        base = SAVE_DIR / f"base-{model_name}"
        dense, _, _ = load_pruned(base) if base.exists() else load_pretrained(model_name)
        dense.eval()
        dense_macs = count_macs(dense, x[:1])
        for keep in args.keeps:
            for round_to in args.round_tos:
                graph = ChannelGraph(dense, x[:1])
                scores = group_scores(graph, l1_scores(dense))
                try:
                    removals = allocate_uniform(scores, MacModel(graph), keep * dense_macs, round_to)
                except ConfigError:
                    print(f"{model_name} keep {keep} round_to {round_to}: unreachable", flush=True)
                    continue
                pruned = prune_channels(copy.deepcopy(dense), x[:1], removals)
                macs = count_macs(pruned, x[:1])
                timed = {"dense": dense, "pruned": pruned}
                if args.fold_bn:  # deployment form: BN folded into the conv before it (both models alike)
                    timed = {k: fuse(copy.deepcopy(m).eval()) for k, m in timed.items()}
                ips = speed(timed, x, rounds=args.rounds)
                row = {
                    "model": model_name, "keep_target": keep, "round_to": round_to,
                    "mac_reduction": 1 - macs / dense_macs, "dense_img_per_s": ips["dense"],
                    "pruned_img_per_s": ips["pruned"], "speedup": ips["pruned"] / ips["dense"],
                    "mac_promise": dense_macs / macs,
                    "widths": {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)},
                }  # fmt: skip
                row["share_of_promise"] = row["speedup"] / row["mac_promise"]
                out.append(row)
                print(
                    f"{model_name} keep {keep} round_to {round_to}: MAC cut {row['mac_reduction']:.1%}, "
                    f"speedup {row['speedup']:.2f}x of {row['mac_promise']:.2f}x ({row['share_of_promise']:.0%})",
                    flush=True,
                )
                config = {
                    "batch": args.batch, "threads": 1, "rounds": args.rounds, "pruner": "l1-uniform",
                    "fold_bn": args.fold_bn, "torch": torch.__version__,
                }  # fmt: skip
                record = make_record("class_pruning_widths", config=config, seed=None, data=None, results=out)
                write_record(RESULTS / f"{args.stem}.json", record)
    cols = ["model", "keep_target", "round_to", "mac_reduction", "speedup", "mac_promise", "share_of_promise"]
    write_markdown(RESULTS / f"{args.stem}.md", markdown_table(out, cols, digits=2))
    print(markdown_table(out, cols, digits=2))


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="phase", required=True)
    g = sub.add_parser("grid")
    g.add_argument("--models", nargs="+", default=["resnet20", "vgg-small"])
    g.add_argument(
        "--methods", nargs="+", default=["class-aware", "l1", "taylor"], choices=[*VARIANTS, "dense"]
    )
    g.add_argument("--base", choices=("zoo", "snapshot"), default="zoo", help="snapshot: SAVE_DIR/base-MODEL")
    g.add_argument("--targets", nargs="+", type=float, default=[0.2])
    g.add_argument("--seeds", nargs="+", type=int, default=[0])
    g.add_argument("--round-to", type=int, default=4)
    g.add_argument("--tag", default="", help="write docs/results/class_pruning_TAG.json (parallel runs)")
    g.add_argument(
        "--budget", choices=sorted(BUDGETS), default="full", help="full: 700 steps; long: 1,400 + KD"
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
    s = sub.add_parser("speed")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--tags", nargs="+", default=None, help="grid files to measure (default: all)")
    args = p.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    {"grid": grid, "speed": speed_bench, "merge": merge, "widths": widths}[args.phase](args)


if __name__ == "__main__":
    main()
