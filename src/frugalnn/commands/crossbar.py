"""``frugalnn crossbar eval``: Monte-Carlo accuracy of any checkpoint on RRAM crossbars (many chips)."""

from __future__ import annotations

import argparse
import json

from frugalnn.commands._common import load_model, positive_int, set_threads


def add_crossbar_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sigma", type=float, default=0.3, help="lognormal variation σ of the cells (default 0.3)"
    )
    p.add_argument("--draws", type=int, default=100, help="chips (variation draws) to sample (default 100)")
    p.add_argument("--cell-bits", type=int, default=4, help="bits per cell (default 4)")
    p.add_argument("--dac-bits", type=int, default=7, help="DAC bits (default 7)")
    p.add_argument("--adc-bits", type=int, default=9, help="ADC bits (default 9)")
    p.add_argument("--out-noise", type=float, default=0.06, help="output noise std (default 0.06)")
    p.add_argument("--images", type=positive_int, help="evaluate on the first N test images (default all)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="images per chip and pass")
    p.add_argument("--chips-per-pass", type=positive_int, help="chips run as one batch (default: auto)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seeds the chips (default 0)")
    p.add_argument("--data", default="fashion-mnist", help="image data set (default fashion-mnist)")
    p.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", help="also write the result to this JSON file")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crossbar", help="RRAM crossbar Monte-Carlo evaluation of a checkpoint")
    csub = p.add_subparsers(dest="crossbar_command", metavar="CROSSBAR_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    e = csub.add_parser(
        "eval",
        help="accuracy over many variation draws: mean, 5th percentile, worst",
        description="Map every Linear/Conv2d of a checkpoint onto crossbars, sample --draws chips and "
        "report the accuracy statistics (compensation modules of CorrectNet stay digital).",
    )
    e.add_argument("--model", required=True, help="checkpoint folder, or a zoo name (lenet5, vgg-small)")
    add_crossbar_options(e)
    e.set_defaults(func=run_eval)


def crossbar_from_args(args: argparse.Namespace):
    """Validated CrossbarConfig and draws from the flags (errors name the flag)."""
    from frugalnn.errors import ConfigError
    from frugalnn.hw.crossbar import CrossbarConfig

    if not args.sigma >= 0:
        raise ConfigError(f"--sigma must be >= 0 (0 turns variation off), got {args.sigma}")
    if args.draws < 1:
        raise ConfigError(f"--draws must be >= 1 (the number of chips to sample), got {args.draws}")
    try:
        return CrossbarConfig(
            variation_sigma=args.sigma, cell_bits=args.cell_bits, dac_bits=args.dac_bits,
            adc_bits=args.adc_bits, out_noise=args.out_noise, seed=args.seed,
        )  # fmt: skip
    except ConfigError as err:
        msg = str(err).removeprefix("CrossbarConfig: ")
        for field in ("cell_bits", "dac_bits", "adc_bits", "out_noise"):
            msg = msg.replace(f"{field}=", f"--{field.replace('_', '-')}=")
        raise ConfigError(msg) from None


def evaluate(model, args: argparse.Namespace, config) -> dict:
    import torch

    from frugalnn.core.data import load_image_data
    from frugalnn.core.train import check_device
    from frugalnn.errors import UnsupportedModelError
    from frugalnn.hw.crossbar_mc import monte_carlo_accuracy
    from frugalnn.methods.correctnet.compensation import mappable_layers

    if not mappable_layers(model):
        raise UnsupportedModelError(f"{args.model} holds no Linear/Conv2d layer a crossbar can map")
    check_device(args.device)
    data = load_image_data(args.data, args.data_root)
    x, y = data.x_test, data.y_test
    if args.images:
        x, y = x[: args.images], y[: args.images]
    mc = monte_carlo_accuracy(
        model.eval(), x, y, args.draws, config, torch.Generator().manual_seed(args.seed), args.batch_size,
        progress=True, chips_per_pass=args.chips_per_pass, device=args.device,
    )  # fmt: skip
    return {"sigma": args.sigma, "draws": args.draws, "images": len(x), "mean": mc["mean"], "p5": mc["p5"],
            "worst": mc["min"], "std": mc["std"], "per_draw": mc["per_draw"], "data": data.identity.get("sha256")}  # fmt: skip


def run_eval(args: argparse.Namespace) -> int:
    from frugalnn.core.io import atomic_write_json

    set_threads(args.threads)
    config = crossbar_from_args(args)
    model, _, _ = load_model(args.model)
    result = evaluate(model, args, config)
    if args.json:
        atomic_write_json(args.json, {"model": args.model, "crossbar": config.__dict__, **result})
    brief = {k: v for k, v in result.items() if k != "per_draw"}
    print(json.dumps(brief, indent=2))
    return 0
