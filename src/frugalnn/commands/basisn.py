"""``frugalnn basisn train|eval``: global-basis networks for RRAM crossbars (BasisN, arXiv 2407.03738)."""

from __future__ import annotations

import argparse
import json

from frugalnn.commands._common import (
    add_config_options,
    add_out_option,
    config_from_args,
    load_model,
    non_negative_int,
    positive_int,
    set_threads,
)
from frugalnn.errors import CheckpointError, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    from frugalnn.methods.basisn.config import BasisNConfig

    p = sub.add_parser(
        "basisn", help="BasisN: kernels as quantised combinations of one crossbar-resident basis"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    t = verbs.add_parser(
        "train",
        help="convert a trained CNN to basis layers and train basis + coefficients",
        description="Truncated decomposition of all kernel columns into one global basis, then training "
        "of basis and quantised coefficients. Writes a checkpoint `frugalnn eval` loads.",
    )
    t.add_argument(
        "--model", required=True, help="checkpoint folder or zoo name (lenet5, resnet20, vgg-small)"
    )
    t.add_argument("--data", default="fashion-mnist", help="image data set the model was trained on")
    t.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    t.add_argument("--preset", choices=tuple(BasisNConfig.PRESETS), help="start from a named recipe")
    add_config_options(t, BasisNConfig)
    t.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")
    add_out_option(t, "new checkpoint folder")
    t.set_defaults(func=_train)

    e = verbs.add_parser(
        "eval",
        help="accuracy (digital and on simulated crossbars) and cost against reprogramming",
        description="Digital accuracy, mean / worst accuracy over chips with variation on the basis "
        "conductances, and cycles / energy / EDP per inference against reprogramming the same crossbars.",
    )
    e.add_argument("--model", required=True, help="checkpoint folder written by `frugalnn basisn train`")
    e.add_argument("--data", default="fashion-mnist")
    e.add_argument("--data-root")
    add_config_options(e, BasisNConfig, only=("crossbars",))
    e.add_argument("--sigma", type=float, default=0.1, help="lognormal variation of the basis cells (0: off)")
    e.add_argument("--read-noise", type=float, default=0.0, help="read noise, fraction of g_max - g_min")
    e.add_argument("--draws", type=non_negative_int, default=5, help="chips to sample (0: no analog run)")
    e.add_argument("--test-images", type=positive_int, default=1000, help="test images for the analog run")
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(func=_eval)


def _data_for(spec, name: str, root: str | None):  # noqa: ANN001, ANN202
    from frugalnn.core.data import load_image_data

    data = load_image_data(name, root)
    if (data.in_channels, data.image_size, data.num_classes) != (
        spec.in_channels,
        spec.image_size,
        spec.num_classes,
    ):
        raise ConfigError(
            f"the model expects {spec.in_channels}x{spec.image_size}px input and {spec.num_classes} classes, "
            f"{name} has {data.in_channels}x{data.image_size}px and {data.num_classes}; use the data it was trained on"
        )
    return data


def _train(args: argparse.Namespace) -> int:
    from frugalnn.core.measure import accuracy
    from frugalnn.methods.basisn import BasisNConfig, save_basisn, to_basisn
    from frugalnn.methods.basisn.cost import basisn_cost

    set_threads(args.threads)
    config = config_from_args(BasisNConfig, args, preset=args.preset)
    model, spec, _ = load_model(args.model)
    data = _data_for(spec, args.data, args.data_root)
    basis_model, record = to_basisn(model, config, data=data, progress=True)
    record["test_accuracy"] = accuracy(basis_model, data.x_test, data.y_test)
    record["float_test_accuracy"] = accuracy(model, data.x_test, data.y_test)
    cost = basisn_cost(basis_model, config, data.x_test[:1])
    record["cost"] = {k: cost[k] for k in ("cycles_ratio", "energy_ratio", "edp_ratio")}
    save_basisn(args.out, basis_model, spec, config, {"basisn": record, "data": data.identity})
    keys = ("n_basis", "init_relative_error", "test_accuracy", "float_test_accuracy", "cost")
    print(json.dumps({k: record[k] for k in keys} | {"out": args.out}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from frugalnn.core.checkpoint import load_checkpoint
    from frugalnn.core.measure import accuracy
    from frugalnn.methods.basisn import BasisNConfig
    from frugalnn.methods.basisn.analog import analog_accuracy
    from frugalnn.methods.basisn.convert import TRANSFORM
    from frugalnn.methods.basisn.cost import basisn_cost

    set_threads(args.threads)
    if args.sigma < 0 or args.read_noise < 0:
        raise ConfigError("--sigma and --read-noise must be >= 0 (0 turns them off)")
    model, spec, meta = load_checkpoint(args.model)
    entries = [t for t in meta.get("transforms", []) if isinstance(t, dict) and t.get("name") == TRANSFORM]
    if not entries:
        raise CheckpointError(f"{args.model} holds no BasisN model; make one with `frugalnn basisn train`")
    config = BasisNConfig.from_dict(entries[-1]["config"])
    if args.crossbars is not None:
        config.crossbars = args.crossbars
        config = config_from_args(BasisNConfig, argparse.Namespace(**config.__dict__))
    data = _data_for(spec, args.data, args.data_root)
    cost = basisn_cost(model, config, data.x_test[:1])
    out = {
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "crossbars": config.crossbars,
        "cycles": cost["basisn"]["cycles"],
        "cycles_reprogram": cost["reprogram"]["cycles"],
        "edp_pj_ns": cost["basisn"]["edp_pj_ns"],
        "edp_reprogram_pj_ns": cost["reprogram"]["edp_pj_ns"],
        **{k: cost[k] for k in ("cycles_ratio", "energy_ratio", "edp_ratio")},
    }
    if args.draws:
        xbar = config.crossbar_config(variation_sigma=args.sigma, read_noise_std=args.read_noise)
        n = args.test_images
        out["analog"] = analog_accuracy(model, data.x_test[:n], data.y_test[:n], xbar, args.draws)
        out["analog"]["sigma"] = args.sigma
    print(json.dumps(out, indent=2))
    return 0
