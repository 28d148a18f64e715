"""``frugalnn correctnet train|place|eval``: CorrectNet (arXiv 2211.14917) on a checkpoint."""

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


def register(sub: argparse._SubParsersAction) -> None:
    from frugalnn.commands.crossbar import add_crossbar_options
    from frugalnn.methods.correctnet.config import CorrectNetConfig

    p = sub.add_parser(
        "correctnet", help="CorrectNet: Lipschitz fine-tune + placed error compensation for RRAM"
    )
    csub = p.add_subparsers(dest="correctnet_command", metavar="CORRECTNET_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    for name, helptext, fn in (
        (
            "train",
            "Lipschitz fine-tune, place and train compensation; save the compensated checkpoint",
            run_train,
        ),
        ("place", "only the REINFORCE placement search; print the scored placements", run_place),
    ):
        t = csub.add_parser(name, help=helptext)
        t.add_argument("--model", required=True, help="checkpoint folder, or a zoo name (lenet5, vgg-small)")
        t.add_argument("--preset", choices=sorted(CorrectNetConfig.PRESETS), help="start from a named recipe")
        t.add_argument("--data", default="fashion-mnist", help="image data set (default fashion-mnist)")
        t.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
        t.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
        add_out_option(t, "output folder (checkpoint + record)", required=(name == "train"))
        add_config_options(t, CorrectNetConfig)
        t.set_defaults(func=fn)
    e = csub.add_parser(
        "eval", help="Monte-Carlo accuracy of a CorrectNet checkpoint, with and without compensation"
    )
    e.add_argument("--model", required=True, help="CorrectNet checkpoint folder (or any checkpoint)")
    add_crossbar_options(e)
    e.set_defaults(func=run_eval)


def _setup(args: argparse.Namespace):
    from frugalnn.commands._common import load_model
    from frugalnn.core.data import load_image_data
    from frugalnn.methods.correctnet.config import CorrectNetConfig

    set_threads(args.threads)
    config = config_from_args(CorrectNetConfig, args, preset=args.preset)
    model, spec, meta = load_model(args.model)
    data = load_image_data(args.data, args.data_root, seed=config.seed)
    return config, model, spec, data


def run_train(args: argparse.Namespace) -> int:
    from frugalnn.core.checkpoint import save_checkpoint
    from frugalnn.core.report import make_record, write_record
    from frugalnn.methods.correctnet import correct, transform_entry

    config, model, spec, data = _setup(args)
    out = Path(args.out)
    compensated, record = correct(model, config, data)
    save_checkpoint(
        out, compensated, spec, {"transforms": [transform_entry(compensated, config)], "correctnet": record}
    )
    write_record(out / "correctnet.json", make_record("correctnet-train", config=config.to_dict(), seed=config.seed,
                                                      data=data.identity, results=record, model=args.model))  # fmt: skip
    print(json.dumps({"placement": record["placement"], **{k: record["overhead"][k] for k in
                      ("overhead_macs_pct", "overhead_params_pct")}, "out": str(out)}, indent=2))  # fmt: skip
    return 0


def run_place(args: argparse.Namespace) -> int:
    from frugalnn.core.io import atomic_write_json
    from frugalnn.methods.correctnet.correct import search_placement

    config, model, _, data = _setup(args)
    best, search = search_placement(model, config, data)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out) / "placement.json", {"config": config.to_dict(), **search})
    print(json.dumps({"best": list(best), "scored": search["scored"][:8]}, indent=2))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from frugalnn.commands._common import load_model
    from frugalnn.commands.crossbar import crossbar_from_args, evaluate
    from frugalnn.core.io import atomic_write_json
    from frugalnn.methods.correctnet.compensation import compensations, strip_compensation

    set_threads(args.threads)
    config = crossbar_from_args(args)
    model, _, _ = load_model(args.model)
    rows = {"compensated": evaluate(model, args, config)}
    if compensations(model):
        rows["bare"] = evaluate(strip_compensation(model), args, config)
    if args.json:
        atomic_write_json(args.json, {"model": args.model, "crossbar": config.__dict__, **rows})
    print(json.dumps({k: {f: v[f] for f in ("mean", "p5", "worst")} for k, v in rows.items()}, indent=2))
    return 0
