"""``frugalnn train``, ``frugalnn eval``, ``frugalnn info`` and ``frugalnn zoo``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from frugalnn.commands._common import (
    add_out_option,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    set_threads,
)
from frugalnn.core.data import IMAGE_DATASETS
from frugalnn.core.models import MODEL_NAMES
from frugalnn.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model on an image data set (resumes if --out has a state)")
    p.add_argument("--model", required=True, help=f"one of {', '.join(MODEL_NAMES)}")
    p.add_argument("--data", default="fashion-mnist", help=f"one of {', '.join(IMAGE_DATASETS)}")
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    p.add_argument("--epochs", type=non_negative_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=positive_float, default=0.1)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--no-augment", action="store_true", help="no random crop / flip")
    p.add_argument(
        "--grad-clip-norm",
        type=non_negative_float,
        default=0.0,
        help="rescale each step's gradient to at most this L2 norm (0: off; steadies quadratic forms)",
    )
    p.add_argument(
        "--checkpoint-every", type=non_negative_int, default=200, help="steps between resumable states"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")
    add_out_option(
        p,
        "checkpoint folder (safetensors + JSON); a folder holding an unfinished run resumes it",
        resumable=True,
    )
    p.add_argument(
        "--quadratic", metavar="FORM", help="swap layers for quadratic neurons (efficient, square, ...)"
    )
    p.add_argument("--quadratic-rank", type=int, help="shared projections of the efficient form")
    p.add_argument("--quadratic-layers", help="layer types to swap: all, linear or conv")
    p.add_argument("--quadratic-width", type=float, help="width multiplier of the swapped hidden layers")
    p.set_defaults(func=_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint: accuracy, parameters, MACs")
    e.add_argument("--model", required=True, help="checkpoint folder or zoo baseline name (e.g. lenet5)")
    e.add_argument("--data", default="fashion-mnist")
    e.add_argument("--data-root")
    e.add_argument("--split", choices=("val", "test"), default="test")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(func=_eval)

    i = sub.add_parser("info", help="parameter and MAC table per layer of a zoo model or a checkpoint")
    i.add_argument("model", help="zoo name (resnet20, ...) or checkpoint folder")
    i.add_argument("--in-channels", type=positive_int, default=1)
    i.add_argument("--image-size", type=positive_int, default=28)
    i.add_argument("--num-classes", type=positive_int, default=10)
    i.set_defaults(func=_info)

    z = sub.add_parser("zoo", help="trained reference baselines: list or (re)build them")
    z.add_argument("action", choices=("list", "build"))
    z.add_argument("models", nargs="*", help="models to build (default: all)")
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--threads", type=int, default=1)
    z.set_defaults(func=_zoo)


def _train(args: argparse.Namespace) -> int:
    import torch

    from frugalnn.core.data import load_image_data
    from frugalnn.core.measure import count_macs, count_params
    from frugalnn.core.models import ModelSpec, build_model
    from frugalnn.core.train import TrainConfig, init_distributed, train

    set_threads(args.threads)
    init_distributed()  # no-op unless launched by torchrun
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        weight_decay=args.weight_decay,
        augment=not args.no_augment,
        seed=args.seed,
        checkpoint_every_steps=args.checkpoint_every,
        grad_clip_norm=args.grad_clip_norm,
    )
    config.validate()
    given = [
        f for f in ("quadratic_rank", "quadratic_layers", "quadratic_width") if getattr(args, f) is not None
    ]
    if given and args.quadratic is None:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} needs --quadratic FORM; add it or drop {flag}")
    data = load_image_data(args.data, args.data_root, seed=args.seed)
    spec = ModelSpec(args.model, data.num_classes, data.in_channels, data.image_size)
    torch.manual_seed(args.seed)  # the initial weights too: the same --seed gives the same model
    model = build_model(spec)
    transforms = [] if args.quadratic is None else [_quadratize(model, args)]
    result = train(model, data, config, out_dir=args.out, spec=spec)
    if transforms:  # the checkpoint records the swap so eval / info rebuild the same layers
        from frugalnn.core.checkpoint import read_meta, save_checkpoint

        meta = {k: v for k, v in read_meta(args.out).items() if k != "spec"}
        save_checkpoint(args.out, model, spec, {**meta, "transforms": transforms})
    macs = count_macs(model, data.x_test[:1])
    print(
        f"test accuracy {result.test_accuracy:.4f}  params {count_params(model):,}  MACs {macs:,}  -> {args.out}"
    )
    return 0


def _quadratize(model: object, args: argparse.Namespace) -> dict:
    """Apply --quadratic* to ``model`` in place; field errors name the flags. -> the transform entry."""
    from frugalnn.core.config import FieldError
    from frugalnn.methods.quadratic import QuadraticConfig, quadratize

    flags = {
        "form": "quadratic",
        "rank": "quadratic_rank",
        "layers": "quadratic_layers",
        "width": "quadratic_width",
    }
    given = {f: getattr(args, a) for f, a in flags.items() if getattr(args, a) is not None}
    try:
        return quadratize(model, QuadraticConfig(**given))[1]["transform"]
    except FieldError as err:
        flag = "--" + flags.get(err.field, err.field).replace("_", "-")
        raise ConfigError(f"{flag} {err.problem}") from None


def _eval(args: argparse.Namespace) -> int:
    from frugalnn.commands._common import load_model
    from frugalnn.core.data import load_image_data
    from frugalnn.core.measure import accuracy, count_macs, count_params

    set_threads(args.threads)
    model, spec, _ = load_model(args.model)
    data = load_image_data(args.data, args.data_root)
    want = (spec.in_channels, spec.image_size, spec.num_classes)
    if (data.in_channels, data.image_size, data.num_classes) != want:
        raise ConfigError(
            f"checkpoint expects {want[0]}x{want[1]}px input and {want[2]} classes, {args.data} has "
            f"{data.in_channels}x{data.image_size}px and {data.num_classes}; evaluate on the data it was trained on"
        )
    x, y = data.split(args.split)
    result = {
        "accuracy": accuracy(model, x, y),
        "params": count_params(model),
        "macs_per_image": count_macs(model, x[:1]),
        "split": args.split,
        "data": data.identity.get("sha256"),
    }
    print(json.dumps(result, indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    import torch

    from frugalnn.core.checkpoint import load_checkpoint
    from frugalnn.core.measure import count_params, mac_profile
    from frugalnn.core.models import build_model
    from frugalnn.core.report import markdown_table

    if Path(args.model).exists():
        model, spec, _ = load_checkpoint(args.model)
        shape = (1, spec.in_channels, spec.image_size, spec.image_size)
    else:
        model = build_model(
            args.model, in_channels=args.in_channels, image_size=args.image_size, num_classes=args.num_classes
        )
        shape = (1, args.in_channels, args.image_size, args.image_size)
    rows = [
        {
            "layer": r.name,
            "type": r.kind,
            "output": "x".join(map(str, r.output_shape)),
            "params": r.params,
            "MACs": r.macs,
        }
        for r in mac_profile(model, torch.zeros(shape))
    ]
    print(markdown_table(rows), end="")
    total = sum(r["MACs"] for r in rows)
    print(f"\ntotal: {count_params(model):,} parameters, {total:,} MACs per image ({total / 1e6:.2f} M)")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from frugalnn.core.data import load_fashion_mnist
    from frugalnn.core.zoo import RECIPES, build_baseline, recipe, zoo_path

    unknown = [m for m in args.models if m not in RECIPES]
    if unknown:
        raise ConfigError(f"unknown zoo model {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    if args.action == "list" and args.models:
        raise ConfigError("zoo list takes no model names; use `frugalnn zoo build NAME ...` to build them")
    if args.action == "list":
        for name in RECIPES:
            folder = zoo_path(name)
            status = "missing (frugalnn zoo build " + name + ")"
            if folder is not None:
                meta = json.loads((folder / "checkpoint.json").read_text())
                status = f"test acc {meta['result']['test_accuracy']:.4f}  {folder}"
            print(f"{name:10s} {status}")
        return 0
    set_threads(args.threads)
    names = args.models or list(RECIPES)
    data = load_fashion_mnist(seed=0)
    for name in names:
        print(f"building {name} with {asdict(recipe(name, args.seed))}")
        result = build_baseline(name, args.seed, data)
        print(f"{name}: test accuracy {result.test_accuracy:.4f}")
    return 0
