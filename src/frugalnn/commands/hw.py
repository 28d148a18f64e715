"""``frugalnn hw characterize-mac`` and ``frugalnn hw synth``: the gate-level hardware substrate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalnn.commands._common import add_out_option, non_negative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hw", help="gate-level hardware: MAC characterisation, synthesis and timing")
    hsub = p.add_subparsers(dest="hw_command", metavar="HW_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    c = hsub.add_parser(
        "characterize-mac",
        help="energy and delay of a weight-stationary MAC for every weight value",
        description="Synthesise the MAC onto OSU018, stream activations / partial sums through it for every "
        "weight value, and write JSON + heat-map / bar plots of energy and delay per weight.",
    )
    c.add_argument("--bits", type=positive_int, default=8, help="weight and activation width (default 8)")
    c.add_argument("--psum-bits", type=positive_int, default=22, help="partial-sum width (default 22)")
    c.add_argument("--unsigned-weights", action="store_true", help="unsigned weights (default signed)")
    c.add_argument(
        "--unsigned-activations", action="store_true", help="unsigned activations (default signed)"
    )
    c.add_argument(
        "--activations", help=".npy file with a layer's activations (codes or floats); default uniform"
    )
    c.add_argument(
        "--transitions", type=positive_int, default=65536, help="zero-delay stream per weight (x64)"
    )
    c.add_argument(
        "--timed-transitions",
        type=non_negative_int,
        default=4096,
        help="glitch-aware / delay stream per weight (x64; 0 skips it)",
    )
    c.add_argument("--delay-model", choices=["liberty", "unit"], default="liberty")
    c.add_argument(
        "--time-step-ns", type=positive_float, default=0.05, help="timed-simulation grid (default 0.05)"
    )
    c.add_argument(
        "--psum-terms",
        type=non_negative_int,
        default=16,
        help="partial sums as sums of this many random products (0: uniform)",
    )
    c.add_argument(
        "--clock-ns", type=positive_float, default=10.0, help="clock period for leakage (default 10)"
    )
    c.add_argument("--liberty", help="Liberty file (default: the bundled OSU018 library)")
    c.add_argument("--seed", type=int, default=0)
    add_out_option(c, "output folder")
    c.set_defaults(func=run_characterize)

    s = hsub.add_parser(
        "synth",
        help="synthesise a Verilog file: area, cells, critical path",
        description="yosys + abc onto the Liberty library, then OpenSTA for the critical path.",
    )
    s.add_argument("file", help="Verilog file")
    s.add_argument("--top", help="top module (default: the last module in the file)")
    s.add_argument("--liberty", help="Liberty file (default: the bundled OSU018 library)")
    s.add_argument(
        "--clock-ns", type=positive_float, default=10.0, help="clock period for OpenSTA (default 10)"
    )
    s.add_argument("--json", help="also write the figures to this JSON file")
    s.set_defaults(func=run_synth)


def run_characterize(args: argparse.Namespace) -> int:
    from frugalnn.core.assets import file_sha256
    from frugalnn.core.io import atomic_output_dir
    from frugalnn.hw.mac import (
        CharacterizeConfig,
        MacConfig,
        characterize_mac,
    )
    from frugalnn.hw.mac_report import load_activations, save_characterisation

    mac = MacConfig(args.bits, args.psum_bits, not args.unsigned_weights, not args.unsigned_activations)
    cfg = CharacterizeConfig(
        mac=mac,
        transitions=args.transitions,
        timed_transitions=args.timed_transitions,
        delay_model=args.delay_model,
        time_step_ns=args.time_step_ns,
        psum_terms=args.psum_terms,
        clock_ns=args.clock_ns,
        seed=args.seed,
        liberty=args.liberty,
    )
    cfg.validate()
    acts = load_activations(args.activations) if args.activations else None
    data = (
        {"activations_file": args.activations, "sha256": file_sha256(args.activations)}
        if args.activations
        else None
    )
    result = characterize_mac(cfg, activations=acts)
    with atomic_output_dir(Path(args.out), overwrite=args.overwrite) as tmp:
        headline = save_characterisation(result, tmp, args.seed, data)
    print(json.dumps(headline, indent=2))
    print(f"wrote {args.out}/mac_characterisation.json and plots")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from frugalnn.core.io import atomic_write_json
    from frugalnn.hw.synth import sta_timing, synthesize_file
    from frugalnn.hw.timed import electrical

    mapped = synthesize_file(args.file, args.top, args.liberty)
    ours = electrical(mapped.netlist).critical_path_ns()
    sta = sta_timing(mapped, clock_ns=args.clock_ns)
    out = {
        "top": mapped.top,
        "area": mapped.area,
        "cells": mapped.n_cells,
        "cell_counts": mapped.cell_counts,
        "critical_path_ns_opensta": sta.critical_path_ns,
        "critical_path_start": sta.startpoint,
        "critical_path_end": sta.endpoint,
        "critical_path_ns_ours": round(ours, 4),
    }
    print(f"{mapped.top}: area {mapped.area:g}, {mapped.n_cells} cells")
    print("  " + ", ".join(f"{k} {v}" for k, v in mapped.cell_counts.items()))
    print(
        f"  critical path {sta.critical_path_ns:.3f} ns (OpenSTA, {sta.startpoint} -> {sta.endpoint}); "
        f"{ours:.3f} ns by our NLDM timing (worst of rise/fall per arc)"
    )
    if args.json:
        atomic_write_json(args.json, out)
    return 0
