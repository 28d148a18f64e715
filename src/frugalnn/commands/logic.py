"""``frugalnn logic train | export | verify``: flattened logic networks (arXiv 2309.10510)."""

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

TRAIN_FIELDS = (
    "data", "hidden", "downsample", "weight_bits", "act_bits", "input_bits", "requant_bits",
    "epochs", "qat_epochs", "lr", "batch_size", "csd_penalty", "seed",
)  # fmt: skip
EXPORT_FIELDS = ("multiplier", "pipeline_ns", "retime", "requant_bits", "max_adders")


def register(sub: argparse._SubParsersAction) -> None:
    from frugalnn.methods.logic_flatten.config import DATASETS, LogicFlattenConfig

    p = sub.add_parser("logic", help="flattened logic networks: train, export Verilog, verify bit-exactness")
    lsub = p.add_subparsers(dest="logic_command", metavar="LOGIC_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = lsub.add_parser("train", help="train a small quantised MLP (optionally hardware-aware)")
    add_config_options(t, LogicFlattenConfig, only=TRAIN_FIELDS)
    add_out_option(t, "checkpoint folder")
    t.add_argument("--threads", type=int, default=1)
    t.set_defaults(func=run_train)

    e = lsub.add_parser(
        "export",
        help="write DIR/top.v, DIR/io.json and a synthesis report",
        description="Every neuron as dedicated logic (constant weights, adder trees, ReLU, requantisation); "
        "combinational, or pipelined to --pipeline-ns; synthesised onto OSU018 and timed with OpenSTA.",
    )
    e.add_argument("--model", required=True, help="checkpoint folder from `frugalnn logic train`")
    add_out_option(e, "design folder")
    add_config_options(e, LogicFlattenConfig, only=EXPORT_FIELDS)
    e.add_argument("--no-synth", action="store_true", help="write the Verilog only (combinational)")
    e.set_defaults(func=run_export)

    v = lsub.add_parser("verify", help="simulate DIR/top.v against the integer model on real inputs")
    v.add_argument("design", help="design folder from `frugalnn logic export`")
    v.add_argument("--data", required=True, choices=DATASETS)
    v.add_argument("--simulator", choices=["verilator", "iverilog"], default="verilator")
    v.add_argument("--limit", type=positive_int, help="check only the first N inputs")
    v.set_defaults(func=run_verify)


def run_train(args: argparse.Namespace) -> int:
    from frugalnn.methods.logic_flatten import load_features, save_logic_mlp, to_integer, train_logic_mlp
    from frugalnn.methods.logic_flatten.config import LogicFlattenConfig
    from frugalnn.methods.logic_flatten.train import accuracy

    set_threads(args.threads)
    cfg = config_from_args(LogicFlattenConfig, args)
    data = load_features(cfg.data, cfg.downsample, cfg.seed)
    model = train_logic_mlp(cfg, data)
    net = to_integer(model, cfg.requant_bits)
    pred = net.forward(model.input_codes(data.x_test).numpy())["pred"]
    acc = float((pred == data.y_test.numpy()).mean())
    meta = {
        "config": cfg.to_dict(),
        "data": data.identity,
        "test_accuracy_fake_quant": accuracy(model, data.x_test, data.y_test),
        "test_accuracy_integer": acc,
    }
    save_logic_mlp(model, args.out, meta)
    print(f"{cfg.data} MLP {'-'.join(map(str, model.sizes))}: integer test accuracy {acc:.4f} -> {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from frugalnn.core.config import FieldError
    from frugalnn.errors import ConfigError
    from frugalnn.methods.logic_flatten import (
        LogicFlattenConfig,
        flatten,
        load_features,
        load_logic_mlp,
        write_design,
    )

    model, meta = load_logic_mlp(args.model)
    trained = meta.get("config", {})
    fixed = {
        k: trained[k] for k in ("data", "downsample", "weight_bits", "act_bits", "input_bits") if k in trained
    }
    cfg = config_from_args(LogicFlattenConfig, args, **fixed)
    data = load_features(cfg.data, cfg.downsample, trained.get("seed", 0))
    try:
        design, record = flatten(model, cfg, measure_inputs=data.x_test, synthesize=not args.no_synth)
    except FieldError as err:  # checks that need the model or the library: name the flag
        raise ConfigError(f"--{err.field.replace('_', '-')} {err.problem}") from None
    design.io["data"] = {"name": cfg.data, "downsample": cfg.downsample, "seed": trained.get("seed", 0)}
    write_design(design, record, Path(args.out))
    print((Path(args.out) / "report.md").read_text(), end="")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from frugalnn.core.io import atomic_write_json
    from frugalnn.errors import ConfigError
    from frugalnn.methods.logic_flatten import IntegerMLP, load_features
    from frugalnn.methods.logic_flatten.sim import simulate_design

    folder = Path(args.design)
    need = [folder / n for n in ("top.v", "io.json", "integer_model.json")]
    missing = [p.name for p in need if not p.is_file()]
    if missing:
        raise ConfigError(
            f"{folder} lacks {', '.join(missing)}; write it with `frugalnn logic export --out {folder}`"
        )
    io = json.loads(need[1].read_text())
    net = IntegerMLP.from_dict(json.loads(need[2].read_text()))
    src = io.get("data", {})
    if src.get("name", args.data) != args.data:
        raise ConfigError(f"{folder} was trained on {src['name']}; verify it with --data {src['name']}")
    data = load_features(args.data, src.get("downsample", 4), src.get("seed", 0))
    x = data.x_check[: args.limit] if args.limit else data.x_check
    if x.shape[1] != io["input"]["features"]:
        raise ConfigError(
            f"the design takes {io['input']['features']} features, {args.data} gives {x.shape[1]}"
        )
    lo = torch.tensor(io["input"]["lo"], dtype=torch.float32)
    scale = torch.tensor(io["input"]["scale"], dtype=torch.float32)
    top = 2 ** io["input"]["bits_per_feature"] - 1
    codes = torch.clamp(torch.round((x - lo) / scale), 0, top).to(torch.int64).numpy()
    ref = net.forward(codes)
    sim = simulate_design(need[0].read_text(), codes, io, args.simulator)
    mismatches = int(((sim.pred != ref["pred"]) | (sim.logits != ref["logits"]).any(axis=1)).sum())
    result = {
        "inputs_checked": len(codes),
        "inputs": data.check_source if not args.limit else f"first {len(codes)} of: {data.check_source}",
        "mismatches": mismatches,
        "simulator": args.simulator,
        "build_s": round(sim.build_s, 2),
        "run_s": round(sim.run_s, 3),
        "inputs_per_s": round(sim.inputs_per_s, 1),
        "predicted_equals_integer_model": bool(np.array_equal(sim.pred, ref["pred"])),
    }
    atomic_write_json(folder / f"verify_{args.simulator}.json", result)
    print(json.dumps(result, indent=1))
    return 0 if mismatches == 0 else 1
