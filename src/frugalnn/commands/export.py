"""``frugalnn export --model CKPT --format onnx|torchscript|torch.export --out FILE``: a CNN checkpoint
(zoo, trained, pruned, early-exit) as a file other runtimes load, checked against PyTorch on real images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalnn.commands._common import check_creatable, positive_int, set_threads
from frugalnn.errors import ConfigError

FORMATS = ("onnx", "torchscript", "torch.export")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a CNN checkpoint to ONNX, TorchScript or torch.export, checked on real images",
        description="Writes FILE, then runs it with its own runtime (ONNX Runtime, torch.jit, torch.export) "
        "on real test images and prints the largest difference to PyTorch. Early-exit models export their "
        "full-depth path with every head's logits (the exit rule and its β/τ go to FILE.exits.json).",
    )
    p.add_argument(
        "--model", required=True, help="checkpoint folder (trained, pruned, early-exit) or zoo name"
    )
    p.add_argument(
        "--format", required=True, choices=FORMATS, dest="fmt", help="onnx, torchscript or torch.export"
    )
    p.add_argument("--out", required=True, help="file to write (.onnx, .pt, .pt2 for torch.export)")
    p.add_argument(
        "--data", default="fashion-mnist", help="real images for the check (default fashion-mnist)"
    )
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    p.add_argument(
        "--check-images", type=positive_int, default=256, help="test images compared (default 256)"
    )
    p.add_argument(
        "--tolerance", type=float, default=1e-3, help="largest allowed |difference| (default 1e-3)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=run)


def _load(name: str):  # noqa: ANN202 - (model, spec, early-exit config or None)
    from frugalnn.core.checkpoint import load_checkpoint, read_meta, transform_config
    from frugalnn.core.zoo import RECIPES, load_pretrained

    if not Path(name).exists():
        if name in RECIPES:
            model, spec, _ = load_pretrained(name)
            return model, spec, None
        raise ConfigError(
            f"--model {name!r} is neither a checkpoint folder nor a zoo name ({', '.join(RECIPES)})"
        )
    if transform_config(read_meta(name), "early_exit") is not None:
        from frugalnn.methods.early_exit import load_early_exit
        from frugalnn.methods.early_exit.export import FullDepth

        ee, spec, _ = load_early_exit(name)
        return FullDepth(ee), spec, ee
    model, spec, _ = load_checkpoint(name)
    return model, spec, None


def run(args: argparse.Namespace) -> int:
    from frugalnn.core.data import load_image_data
    from frugalnn.core.export import export_model, max_abs_difference
    from frugalnn.core.io import atomic_write_json

    out = Path(args.out)
    if not args.tolerance > 0:
        raise ConfigError(f"--tolerance must be positive, got {args.tolerance}")
    if str(args.out).strip() == "" or out.is_dir():
        raise ConfigError(f"--out {args.out!r} must be a file path, not a folder or empty")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it or choose another --out")
    check_creatable(args.out)
    if args.fmt == "torch.export" and out.suffix != ".pt2":
        raise ConfigError(f"torch.export writes a .pt2 archive; use --out {out.with_suffix('.pt2')}")
    set_threads(args.threads)
    model, spec, early_exit = _load(args.model)
    data = load_image_data(args.data, args.data_root)
    if (data.in_channels, data.image_size) != (spec.in_channels, spec.image_size):
        raise ConfigError(
            f"the model takes {spec.in_channels}x{spec.image_size}x{spec.image_size} images, {args.data} has "
            f"{data.in_channels}x{data.image_size}x{data.image_size}; check on the data it was trained on"
        )
    x = data.x_test[: args.check_images]
    export_model(model, x[:2], args.fmt, out)
    diff = max_abs_difference(model, out, args.fmt, x)
    if early_exit is not None:
        from frugalnn.methods.early_exit.export import exit_rule

        atomic_write_json(out.with_name(out.name + ".exits.json"), exit_rule(early_exit))
    ok = diff <= args.tolerance
    print(
        json.dumps(
            {"out": str(out), "format": args.fmt, "images_checked": len(x), "max_abs_difference": diff}
        )
    )
    if not ok:
        raise ConfigError(
            f"the exported model differs from PyTorch by {diff:.3g} > --tolerance {args.tolerance}; "
            "try another --format"
        )
    return 0
