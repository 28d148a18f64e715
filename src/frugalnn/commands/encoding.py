"""``frugalnn encoding search|apply``: EncodingNet encoder search and encoded-network fine-tuning."""

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

SEARCH_ONLY = (
    "bits", "threshold", "outputs", "kept_bits", "rows", "columns", "levels_back", "parents", "offspring",
    "tournament", "generations", "mutation_start", "mutation_end", "ridge", "init", "checkpoint_every", "seed",
)  # fmt: skip
APPLY_ONLY = ("position_weights", "finetune_epochs", "finetune_lr", "max_steps", "batch_size", "seed")


def register(sub: argparse._SubParsersAction) -> None:
    from frugalnn.methods.encoding_mac.config import EncodingConfig

    p = sub.add_parser(
        "encoding", help="EncodingNet: search logic encoders that replace multipliers, apply them"
    )
    esub = p.add_subparsers(dest="encoding_command", metavar="ENCODING_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = esub.add_parser(
        "search",
        help="search an encoder by Cartesian genetic programming (resumes from --out)",
        description="Evolve a gate-level encoder of (activation, weight) codes whose weighted output bits "
        "approximate the product; writes OUT/encoder.json (gates, kept bits, position weights, lut). "
        "A killed search resumes from OUT/search_state.json with the same flags.",
    )
    s.add_argument("--preset", choices=sorted(EncodingConfig.PRESETS), help="start from a named recipe")
    add_config_options(s, EncodingConfig, only=SEARCH_ONLY)
    add_out_option(s, "output folder (encoder.json, search.json, search_state.json)", resumable=True)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_search)

    a = esub.add_parser(
        "apply",
        help="encode a trained model with an encoder and fine-tune it",
        description="Swap every Linear / Conv2d of a checkpoint for encoded layers computing sum LUT[x, w], "
        "fine-tune with the exact-product gradient, and write a checkpoint `frugalnn eval` loads.",
    )
    a.add_argument("--model", required=True, help="checkpoint folder or zoo name (lenet5, resnet20)")
    a.add_argument("--encoder", required=True, help="folder with encoder.json (or the file)")
    a.add_argument("--data", default="fashion-mnist")
    a.add_argument("--data-root", help="folder for cifar10/cifar100/idx data")
    add_config_options(a, EncodingConfig, only=APPLY_ONLY)
    a.add_argument(
        "--eval-images", type=positive_int, help="test images for the reported accuracies (default all)"
    )
    a.add_argument("--threads", type=int, default=1, help="torch threads (1 is reliable on 2 cores)")
    add_out_option(a, "new checkpoint folder")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(func=_apply)


def _search(args: argparse.Namespace) -> int:
    from frugalnn.core.io import atomic_write_json
    from frugalnn.core.report import make_record
    from frugalnn.methods.encoding_mac.config import EncodingConfig
    from frugalnn.methods.encoding_mac.search import search

    cfg = config_from_args(EncodingConfig, args, args.preset)
    encoder, rec = search(cfg, args.out, progress=not args.no_progress)
    if not rec["finished"]:
        return 1
    encoder.save(args.out)
    atomic_write_json(
        Path(args.out) / "search.json",
        make_record("encoding-search", config=cfg.to_dict(), seed=cfg.seed, data=None, results=rec),
    )
    print(
        f"{cfg.bits}-bit encoder: maxRE {encoder.max_re:.4%} (threshold {cfg.threshold:.2%}), area {encoder.area:.2f}, "
        f"{len(encoder.kept)} kept bits, {rec['evaluations']} evaluations at {rec['evaluations_per_s']:.0f}/s "
        f"-> {Path(args.out) / 'encoder.json'}"
    )
    return 0


def _apply(args: argparse.Namespace) -> int:
    from frugalnn.commands._common import load_model
    from frugalnn.core.checkpoint import save_checkpoint
    from frugalnn.core.data import load_image_data
    from frugalnn.core.io import atomic_output_dir
    from frugalnn.errors import CheckpointError
    from frugalnn.methods.encoding_mac.config import EncodingConfig
    from frugalnn.methods.encoding_mac.encode import encodingnet
    from frugalnn.methods.encoding_mac.encoder import Encoder

    set_threads(args.threads)
    encoder = Encoder.load(args.encoder)
    cfg = config_from_args(EncodingConfig, args, None, bits=encoder.bits, init="random")
    model, spec, meta = load_model(args.model)
    if meta.get("transforms"):
        raise CheckpointError(
            f"{args.model} is already transformed ({meta['transforms']}); start from a plain model"
        )
    data = load_image_data(args.data, args.data_root, seed=0)
    if (data.in_channels, data.num_classes) != (spec.in_channels, spec.num_classes):
        raise CheckpointError(
            f"checkpoint {args.model} expects {spec.in_channels}-channel images and {spec.num_classes} classes; "
            f"{args.data} has {data.in_channels} and {data.num_classes}"
        )
    model, record = encodingnet(model, cfg, data=data, encoder=encoder, eval_images=args.eval_images,
                                progress=not args.no_progress)  # fmt: skip
    with atomic_output_dir(args.out, overwrite=args.overwrite) as tmp:
        save_checkpoint(tmp, model, spec, {"transforms": [record["transform"]], "encodingnet": {
            k: v for k, v in record.items() if k != "transform"}})  # fmt: skip
    print(json.dumps({k: record[k] for k in ("acc_before_finetune", "acc", "encoder_max_re") if k in record}))
    return 0
