"""``frugalnn early-exit train|search|eval``: class-exclusion early exit (and the confidence baseline)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalnn.commands._common import (
    add_config_options,
    add_out_option,
    config_from_args,
    positive_int,
    set_threads,
)
from frugalnn.errors import ConfigError
from frugalnn.methods.early_exit.config import EarlyExitConfig


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist", help="image data set (fashion-mnist, digits, ...)")
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")


def register(sub: argparse._SubParsersAction) -> None:
    top = sub.add_parser("early-exit", help="class-exclusion early exit: train heads, search β, evaluate")
    verbs = top.add_subparsers(dest="verb", required=True)

    t = verbs.add_parser("train", help="attach exit heads to a trained model and train them")
    t.add_argument("--model", required=True, help="checkpoint folder, or a zoo name (vgg-small, resnet20)")
    add_config_options(
        t,
        EarlyExitConfig,
        exclude=("betas", "thresholds", "tolerance", "step", "backoff_steps"),
        aliases={"head_epochs": ("--epochs",), "head_lr": ("--lr",), "train_subset": ("--subset",)},
    )
    add_out_option(t, "early-exit checkpoint folder")
    _common(t)
    t.set_defaults(func=_train)

    s = verbs.add_parser("search", help="search per-exit β (or confidence thresholds) on validation data")
    s.add_argument("--model", required=True, help="early-exit checkpoint folder")
    s.add_argument(
        "--tolerance", type=float, default=0.001, help="accuracy to give up, fraction (0.005 = 0.5 pt)"
    )
    s.add_argument("--rule", choices=("ratio", "absolute"), help="switch the exclusion rule before searching")
    s.add_argument(
        "--drop-costly-exits",
        action="store_true",
        help="then time segments and exits here and switch off the exits that cost more time than they save",
    )
    add_out_option(s, "write here (default: update --model in place)", required=False)
    _common(s)
    s.set_defaults(func=_search)

    e = verbs.add_parser("eval", help="accuracy, MACs per image (heads included), exit histogram")
    e.add_argument("--model", required=True, help="early-exit checkpoint folder")
    e.add_argument("--split", choices=("val", "test"), default="test")
    e.add_argument("--batch-size", type=positive_int, default=64, help="64: activations stay in cache")
    e.add_argument("--throughput", action="store_true", help="also time skipping vs plain forward")
    e.add_argument(
        "--rebatch",
        action="store_true",
        help="time the re-batching forward (survivors queued into full batches)",
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    _common(e)
    e.set_defaults(func=_eval)


def _data_for(args: argparse.Namespace, spec):  # noqa: ANN001, ANN202 - ModelSpec/ImageData
    from frugalnn.core.data import load_image_data

    data = load_image_data(args.data, args.data_root, seed=getattr(args, "seed", None) or 0)
    if (data.in_channels, data.num_classes, data.image_size) != (
        spec.in_channels,
        spec.num_classes,
        spec.image_size,
    ):
        raise ConfigError(
            f"the model expects {spec.in_channels}x{spec.image_size}x{spec.image_size} images and "
            f"{spec.num_classes} classes, {args.data} has {data.in_channels}x{data.image_size}x{data.image_size} "
            f"and {data.num_classes}; use the data the model was trained on"
        )
    return data


def _train(args: argparse.Namespace) -> int:
    from frugalnn.core.checkpoint import load_checkpoint
    from frugalnn.core.zoo import RECIPES, load_pretrained
    from frugalnn.methods.early_exit import attach_exits, save_early_exit, train_heads, train_joint

    set_threads(args.threads)
    if not Path(args.model).exists() and args.model in RECIPES:
        backbone, spec, _ = load_pretrained(args.model, args.data)
    else:
        backbone, spec, _ = load_checkpoint(args.model)
    data = _data_for(args, spec)
    config = config_from_args(
        EarlyExitConfig, args, input_shape=(spec.in_channels, spec.image_size, spec.image_size)
    )
    model, record = attach_exits(backbone, config)
    print(f"exits: {', '.join(model.exit_names)}  (backbone {record['backbone_macs']:,} MACs/image)")
    history = train_heads(model, data)
    if config.joint_epochs:
        train_joint(model, data)
        history["joint"] = True
    save_early_exit(args.out, model, spec, {"data": data.identity, "heads": history})
    accs = ", ".join(f"{a:.4f}" for a in history.get("head_val_accuracy", []))
    print(f"head validation accuracy (argmax): {accs}  -> {args.out}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from frugalnn.core.checkpoint import read_meta
    from frugalnn.methods.early_exit import load_early_exit, save_early_exit, search

    if args.tolerance is not None and not 0 <= args.tolerance < 1:  # before the model runs
        raise ConfigError(f"--tolerance must lie in [0, 1) (0.005 = 0.5 point), got {args.tolerance}")
    set_threads(args.threads)
    model, spec, _ = load_early_exit(args.model)
    if args.rule:
        model.config.rule = args.rule
    data = _data_for(args, spec)
    result = search(
        model, data.x_val, data.y_val, args.tolerance, progress=True, drop_costly=args.drop_costly_exits
    )
    what = "threshold" if model.config.mode == "confidence" else "beta"
    print(f"{what} per exit: " + ", ".join(f"{n}={v:g}" for n, v in zip(model.exit_names, result.values)))
    if model.config.mode == "hybrid":
        taus = model.thresholds.tolist()
        print("tau per exit: " + ", ".join(f"{n}={v:g}" for n, v in zip(model.exit_names, taus)))
    print(
        f"validation accuracy {result.accuracy:.4f} (baseline {result.baseline_accuracy:.4f}, floor {result.floor:.4f}); "
        f"{result.macs_per_image:,.0f} MACs/image"
    )
    meta = read_meta(args.model)
    meta.pop("spec", None)
    meta.pop("early_exit", None)
    meta["search"] = {
        "tolerance": args.tolerance,
        "values": result.values,
        "val_accuracy": result.accuracy,
        "drop_costly_exits": args.drop_costly_exits,
    }
    if model.config.mode == "hybrid":
        meta["search"]["taus"] = model.thresholds.tolist()
    save_early_exit(args.out or args.model, model, spec, meta)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from frugalnn.core.measure import throughput
    from frugalnn.core.report import markdown_table
    from frugalnn.methods.early_exit import evaluate, load_early_exit, skipping_forward

    set_threads(args.threads)
    model, spec, _ = load_early_exit(args.model)
    data = _data_for(args, spec)
    x, y = data.split(args.split)
    if len(x) == 0:
        raise ConfigError(f"the {args.split} split is empty; choose another split")
    model.eval()
    result = evaluate(model, x, y, args.batch_size)
    with torch.no_grad():
        base = torch.cat(
            [model.backbone(x[i : i + args.batch_size]) for i in range(0, len(x), args.batch_size)]
        )
    result["backbone_accuracy"] = float((base.argmax(1) == y).double().mean())
    if args.throughput:
        n = min(len(x), 2048)
        xs = x[:n]

        def plain() -> None:
            with torch.no_grad():
                for i in range(0, n, args.batch_size):
                    model.backbone(xs[i : i + args.batch_size])

        result["throughput_skipping"] = throughput(
            lambda: skipping_forward(model, xs, args.batch_size, rebatch=args.rebatch), n, repeats=3
        )["items_per_s"]
        result["throughput_backbone"] = throughput(plain, n, repeats=3)["items_per_s"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{model.config.mode} early exit on {args.data}/{args.split} ({len(y)} images): accuracy {result['accuracy']:.4f} "
        f"(no exit {result['backbone_accuracy']:.4f})"
    )
    print(
        f"MACs per image (heads included) {result['macs_per_image']:,.0f} vs {result['backbone_macs']:,} "
        f"without exits: {100 * result['mac_reduction']:.1f}% fewer"
    )
    rows = [
        {"exit": k, "images": v, "share": result["exit_share"][k]}
        for k, v in result["exit_histogram"].items()
    ]
    print(markdown_table(rows), end="")
    if args.throughput:
        print(
            f"throughput: {result['throughput_skipping']:.0f} images/s skipping vs "
            f"{result['throughput_backbone']:.0f} plain ({torch.get_num_threads()} thread(s))"
        )
    return 0
