"""``frugalnn prune``: physically thinner CNNs by class-aware, L1 or Taylor filter pruning."""

from __future__ import annotations

import argparse
import json
import sys

from frugalnn.commands._common import (
    add_config_options,
    add_out_option,
    config_from_args,
    load_model,
    set_threads,
    unit_interval,
)
from frugalnn.errors import CheckpointError, ConfigError
from frugalnn.methods.class_pruning.config import ClassPruningConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="prune filters of a CNN (class-aware, l1 or taylor) to a MAC target and fine-tune it",
        description="Iterative filter pruning: score → remove (physically, dependency-aware) → fine-tune. "
        "Writes a normal checkpoint (safetensors + JSON with the pruned layer widths) to --out.",
    )
    p.add_argument("--model", required=True, help="checkpoint folder or zoo name (resnet20, vgg-small)")
    p.add_argument("--data", default="fashion-mnist", help="image data set the model was trained on")
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    add_config_options(p, ClassPruningConfig)
    p.add_argument(
        "--target-flops",
        type=unit_interval,
        help="deprecated (use --ratio): share of the MACs to keep; --target-flops 0.4 = --ratio 0.6",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")
    add_out_option(p, "new checkpoint folder")
    p.set_defaults(func=_prune)


def layer_table(before: list, after: list) -> list[dict]:
    """Per-layer before/after rows (layers keep their names when pruned)."""
    post = {r.name: r for r in after}
    rows = []
    for r in before:
        a = post.get(r.name)
        rows.append(
            {
                "layer": r.name,
                "type": r.kind,
                "out before": "x".join(map(str, r.output_shape)),
                "out after": "x".join(map(str, a.output_shape)) if a else "removed",
                "params before": r.params,
                "params after": a.params if a else 0,
                "MACs before": r.macs,
                "MACs after": a.macs if a else 0,
            }
        )
    return rows


def _prune(args: argparse.Namespace) -> int:
    from frugalnn.core.data import load_image_data
    from frugalnn.core.io import atomic_output_dir, atomic_write_json
    from frugalnn.core.measure import accuracy, mac_profile
    from frugalnn.core.report import markdown_table, write_markdown
    from frugalnn.methods.class_pruning import prune_and_finetune, save_pruned

    set_threads(args.threads)
    fixed = {}
    if args.target_flops is not None:
        if args.ratio is not None:
            raise ConfigError(
                "give --ratio (share of MACs removed) or the deprecated --target-flops, not both"
            )
        print("warning: --target-flops is deprecated; use --ratio (share of MACs removed)", file=sys.stderr)
        fixed["ratio"] = round(1.0 - args.target_flops, 12)
    config = config_from_args(ClassPruningConfig, args, **fixed)
    model, spec, _ = load_model(args.model)
    data = load_image_data(args.data, args.data_root, seed=0)
    if (data.in_channels, data.image_size, data.num_classes) != (
        spec.in_channels,
        spec.image_size,
        spec.num_classes,
    ):
        raise CheckpointError(
            f"checkpoint {args.model} expects {spec.in_channels}x{spec.image_size}x{spec.image_size} images and "
            f"{spec.num_classes} classes, {args.data} has {data.in_channels}x{data.image_size}x{data.image_size} "
            f"and {data.num_classes}; prune it on the data it was trained on"
        )
    example = data.x_test[:1]
    before = mac_profile(model, example)
    pruned, record = prune_and_finetune(model, config, data)
    record["test_accuracy"] = accuracy(pruned, data.x_test, data.y_test)
    rows = layer_table(before, mac_profile(pruned, example))
    table = markdown_table(rows)
    print(table, end="")
    d = record["dense"]
    summary = (
        f"MACs {d['macs']:,} -> {record['macs']:,} ({record['mac_reduction']:.1%} fewer), "
        f"params {d['params']:,} -> {record['params']:,}, val acc {d['val_accuracy']:.4f} -> "
        f"{record['val_accuracy'] or float('nan'):.4f}, test acc {record['test_accuracy']:.4f} ({record['stop_reason']})"
    )
    print(summary)
    with atomic_output_dir(args.out, overwrite=args.overwrite) as tmp:
        save_pruned(tmp, pruned, spec, {"prune": record, "data": data.identity, "source": str(args.model)})
        atomic_write_json(tmp / "prune_record.json", record)
        write_markdown(tmp / "layers.md", table + "\n" + summary + "\n")
    print(f"-> {args.out}")
    print(json.dumps({"test_accuracy": record["test_accuracy"], "mac_reduction": record["mac_reduction"]}))
    return 0
