"""``frugalnn llm compress|eval|info|generate``: compress a causal LM (Basis Sharing, SVD-LLM, ASVD, SVD),
measure its perplexity, describe it, chat with it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from frugalnn.commands._common import (
    add_config_options,
    add_out_option,
    config_from_args,
    positive_int,
    set_threads,
)
from frugalnn.errors import ConfigError
from frugalnn.methods.basis_sharing.config import BasisSharingConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "llm",
        help="compress, evaluate and run causal language models",
        description="Causal LMs: Hugging Face folders, .gguf files or the bundled 'smollm2'.",
    )
    llm_sub = p.add_subparsers(dest="llm_command", metavar="ACTION")

    c = llm_sub.add_parser(
        "compress",
        help="compress a model with Basis Sharing or an SVD baseline",
        description="Low-rank compression of every decoder projection; writes a folder that "
        "`frugalnn llm eval` and load_causal_lm() read back.",
    )
    c.add_argument(
        "--model", default="smollm2", help="'smollm2', a Hugging Face model folder or a .gguf file"
    )
    add_config_options(c, BasisSharingConfig, exclude=("share",), required=("ratio",))
    c.add_argument(
        "--share",
        nargs="+",
        default=None,
        help="matrix types or roles that share a basis (e.g. q up gate); default: by family",
    )
    c.add_argument(
        "--calib",
        default="mix",
        help="calibration text: mix (Austen's Emma, the Jargon File and Lee news, a third each; the "
        "default), one source (austen:emma, jargon, lee, file:PATH, dir:PATH of .txt files), or "
        "weighted sources austen:emma=0.5,jargon=0.5",
    )
    c.add_argument("--calib-windows", type=positive_int, default=64, help="number of windows (default 64)")
    c.add_argument("--window", type=positive_int, default=512, help="tokens per window (default 512)")
    c.add_argument("--calib-seed", type=int, default=2023, help="window selection seed (default 2023)")
    c.add_argument(
        "--reference",
        action="store_true",
        help="the paper's settings exactly (= --preset paper): reproduces the reference perplexities",
    )
    add_out_option(c, "output folder (a new or empty one; --overwrite replaces a full one)")
    c.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    c.set_defaults(func=cmd_compress)

    e = llm_sub.add_parser(
        "eval",
        help="perplexity of a model on a text",
        description="exp(mean of per-window mean NLL) over non-overlapping windows.",
    )
    e.add_argument("--model", required=True, help="'smollm2', a model folder (compressed or not) or a .gguf")
    e.add_argument(
        "--data",
        default="austen:prideprejudice",
        help="text, or several comma-separated (austen:prideprejudice,jargon,lee: the held-out evaluation "
        "slices; other texts: their first --tokens tokens); default austen:prideprejudice",
    )
    e.add_argument(
        "--tokens", type=positive_int, default=40960, help="at most N tokens per text (default 40960)"
    )
    e.add_argument(
        "--baseline", help="also evaluate this model (e.g. the dense one) and print the ratio to it"
    )
    e.add_argument("--json", action="store_true", help="print the table as JSON")
    e.add_argument("--window", type=positive_int, default=512, help="window length (default 512)")
    e.add_argument("--batch-size", type=positive_int, default=4, help="windows per forward (default 4)")
    e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    e.set_defaults(func=cmd_eval)

    i = llm_sub.add_parser("info", help="parameters and compressed modules of a model")
    i.add_argument("--model", required=True, help="'smollm2', a model folder or a .gguf")
    i.set_defaults(func=cmd_info)

    g = llm_sub.add_parser("generate", help="answer one chat message (greedy)")
    g.add_argument("--model", required=True, help="'smollm2', a model folder or a .gguf")
    g.add_argument("--prompt", required=True, help="the user message")
    g.add_argument("--max-new-tokens", type=positive_int, default=64)
    g.add_argument("--threads", type=int, default=1)
    g.set_defaults(func=cmd_generate)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def cmd_compress(args: argparse.Namespace) -> int:
    from frugalnn.core.data.calib import calibration_windows, parse_calib
    from frugalnn.core.llm import encode_text, load_causal_lm, save_causal_lm
    from frugalnn.methods.basis_sharing import compress

    out = Path(args.out)
    set_threads(args.threads)
    # default recipe: "ours" for basis-sharing, the plain setting for a baseline; --reference: the paper's
    method = args.method or "basis-sharing"
    preset = args.preset or ("paper" if args.reference else "ours" if method == "basis-sharing" else method)
    share = {"share": tuple(args.share)} if args.share else {}
    # fail on impossible combinations before loading the model
    config = config_from_args(BasisSharingConfig, args, preset=preset, **share)
    parse_calib(args.calib)
    start = time.perf_counter()
    model, tok = load_causal_lm(args.model)
    calib, identity = calibration_windows(
        lambda text: encode_text(tok, text), args.calib, args.calib_windows, args.window, args.calib_seed
    )
    drawn = ", ".join(f"{s['source']} {s['windows']}" for s in identity["sources"])
    print(f"calibration: {len(calib)} windows of {args.window} tokens ({drawn})", flush=True)
    model, record = compress(model, config, calib)
    record["calibration_data"] = {**identity, "windows": len(calib)}
    record["source_model"] = str(args.model)
    # the record goes in before the folder appears: a killed run leaves no folder without it
    save_causal_lm(
        model, tok, out, overwrite=args.overwrite, extra_json={"frugalnn_compress_record.json": record}
    )
    print(
        f"projection parameters: {record['projection_params_before']:,} -> {record['projection_params_after']:,} "
        f"(removed {100 * record['ratio_achieved']:.2f}%, asked {100 * args.ratio:.0f}%)"
    )
    print(f"model parameters: {record['params_before']:,} -> {record['params_after']:,}")
    print(
        f"time: calibration {record['calibration_s']:.1f} s, factorisation {record['factorization_s']:.1f} s, "
        f"total {time.perf_counter() - start:.1f} s; saved to {out}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from frugalnn.core.data.calib import evaluation_windows, parse_calib
    from frugalnn.core.llm import (
        check_model_source,
        count_parameters,
        encode_text,
        load_causal_lm,
        perplexity,
    )
    from frugalnn.core.report import markdown_table

    set_threads(args.threads)
    domains = [d.strip() for d in args.data.split(",") if d.strip()]
    if not domains:
        raise ConfigError("--data is empty; give a text such as austen:prideprejudice")
    for domain in domains:
        parse_calib(domain)  # an unknown text fails before any model loads
    names = [args.model] + ([args.baseline] if args.baseline is not None else [])
    for name in names:  # both models must exist before the first one is evaluated
        check_model_source(name)
    rows: dict[str, dict] = {d: {"data": d} for d in domains}
    for label, name in zip(("perplexity", "baseline_perplexity"), names):
        model, tok = load_causal_lm(name)
        start = time.perf_counter()
        for domain in domains:
            windows = evaluation_windows(
                lambda t, tok=tok: encode_text(tok, t), domain, args.window, args.tokens
            )
            rows[domain][label] = perplexity(model, windows, batch_size=args.batch_size)
            rows[domain]["tokens"] = windows.numel()
        print(
            f"{name}: {count_parameters(model):,} parameters; {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        del model
    for row in rows.values():
        if args.baseline:
            row["ratio_to_baseline"] = row["perplexity"] / row["baseline_perplexity"]
    table = list(rows.values())
    print(
        json.dumps(table, indent=2) if args.json else markdown_table(table), end="" if not args.json else "\n"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from frugalnn.core.llm import count_parameters, load_causal_lm

    model, _ = load_causal_lm(args.model)
    cfg = model.config
    print(
        f"{type(model).__name__} ({cfg.model_type}): {count_parameters(model):,} parameters, "
        f"{getattr(cfg, 'num_hidden_layers', '?')} layers, hidden {getattr(cfg, 'hidden_size', '?')}"
    )
    spec = getattr(model, "frugalnn_compression", None)
    if spec:
        groups = {m["group"] for m in spec["modules"]}
        print(
            f"compressed ({spec.get('method')}, ratio {spec.get('ratio')}): {len(spec['modules'])} factorised "
            f"linears sharing {len(groups)} bases"
        )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from frugalnn.core.llm import generate_chat, load_causal_lm

    set_threads(args.threads)
    model, tok = load_causal_lm(args.model)
    print(
        generate_chat(
            model, tok, [{"role": "user", "content": args.prompt}], max_new_tokens=args.max_new_tokens
        )
    )
    return 0
