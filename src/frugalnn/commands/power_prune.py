"""``frugalnn power-prune``: PowerPruning of a CNN (weights and activations chosen for low MAC power and
short delays, retraining, voltage scaling); writes a checkpoint ``frugalnn eval`` loads plus the record."""

from __future__ import annotations

import argparse

from frugalnn.commands._common import (
    add_config_options,
    add_out_option,
    config_from_args,
    load_model,
    set_threads,
)
from frugalnn.errors import CheckpointError


def register(sub: argparse._SubParsersAction) -> None:
    from frugalnn.methods.power_pruning import PowerPruningConfig

    p = sub.add_parser(
        "power-prune",
        help="PowerPruning: keep the K lowest-power 8-bit weight values (and short-delay activations), "
        "retrain, scale Vdd",
        description="Characterise the 8-bit MAC under the model's own per-layer activation streams, keep "
        "the K cheapest weight values, drop slow weight/activation values, retrain onto them, pick the "
        "lowest supply voltage meeting the clock. --out gets a checkpoint (weights = allowed codes x scale) "
        "and power_pruning.json.",
    )
    p.add_argument("--model", required=True, help="checkpoint folder or zoo name (lenet5, resnet20)")
    p.add_argument("--data", default="fashion-mnist", help="image data set the model was trained on")
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    p.add_argument("--preset", choices=tuple(PowerPruningConfig.PRESETS), help="start from a named recipe")
    add_config_options(p, PowerPruningConfig)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")
    add_out_option(p, "new checkpoint folder")
    p.set_defaults(func=_power_prune)


def _power_prune(args: argparse.Namespace) -> int:
    from frugalnn.core.checkpoint import save_checkpoint
    from frugalnn.core.data import load_image_data
    from frugalnn.core.io import atomic_output_dir
    from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
    from frugalnn.methods.power_pruning import PowerPruningConfig, power_prune

    set_threads(args.threads)
    config = config_from_args(PowerPruningConfig, args, args.preset)
    model, spec, meta = load_model(args.model)
    if meta.get("transforms"):
        raise CheckpointError(
            f"--model {args.model} was already transformed ({meta['transforms'][0].get('name')}); "
            "start from a plain float checkpoint"
        )
    data = load_image_data(args.data, args.data_root, seed=0)
    if (data.in_channels, data.image_size, data.num_classes) != (
        spec.in_channels,
        spec.image_size,
        spec.num_classes,
    ):
        raise CheckpointError(
            f"checkpoint {args.model} expects {spec.in_channels}x{spec.image_size}px images and "
            f"{spec.num_classes} classes, {args.data} has {data.in_channels}x{data.image_size}px and "
            f"{data.num_classes}; prune it on the data it was trained on"
        )
    pruned, record = power_prune(model, config, data)
    with atomic_output_dir(args.out, overwrite=args.overwrite) as tmp:
        save_checkpoint(
            tmp,
            pruned,
            spec,
            {
                "transforms": [record["transform"]],
                "source": str(args.model),
                "data": data.identity,
                "power_pruning": {k: record[k] for k in ("accuracy", "power_reduction", "vdd_v")},
            },
        )
        write_record(
            tmp / "power_pruning.json",
            make_record(
                "power-pruning", config=config.to_dict(), seed=config.seed, data=data.identity, results=record
            ),
        )
        write_markdown(tmp / "layers.md", "# Per-layer MAC energy\n\n" + markdown_table(record["layers"]))
    sel = record["selection"]
    print(markdown_table(record["layers"]), end="")
    print(
        f"weights kept ({len(sel['weight_codes'])}): {sel['weight_codes']}\n"
        f"activations kept: {len(sel['activation_codes'])} of 255; worst delay "
        f"{sel['max_delay_ns']:.2f} ns (baseline {sel['baseline_delay_ns']:.2f} ns, clock {record['clock_ns']:.2f} ns)\n"
        f"accuracy {record['accuracy']:.4f} (int8 baseline {record['accuracy_int8']:.4f}, "
        f"loss {record['accuracy_loss_pt']:.2f} pt)\n"
        f"MAC-array power reduction {100 * record['power_reduction']:.1f}% "
        f"(nominal Vdd {100 * record['power_reduction_nominal']:.1f}%), Vdd {record['vdd_v']:.2f} V\n"
        f"-> {args.out}"
    )
    return 0
