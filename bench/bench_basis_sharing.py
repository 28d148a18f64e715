"""Benchmark Basis Sharing and its baselines on SmolLM2-135M with the issue's protocol (1 torch thread).

    .venv/bin/python bench/bench_basis_sharing.py --what ppl --configs basis-sharing svd-llm --ratios 0.2 0.3 0.4 0.5
    .venv/bin/python bench/bench_basis_sharing.py --what time          # calibration + factorisation at 20%
    .venv/bin/python bench/bench_basis_sharing.py --what throughput    # batch 8 x 512 forward, 50%

Each measured figure is appended to docs/results/basis_sharing/basis_sharing_<what>[_<tag>].json as soon as it exists,
so a killed run keeps what it measured. Perplexity points reuse the dense model's Gram matrices across
ratios (they do not depend on the ratio with dense propagation), so calibration runs once per sweep.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from frugalnn.core.llm import load_causal_lm, perplexity  # noqa: E402
from frugalnn.core.report import make_record, write_record  # noqa: E402
from frugalnn.experiments.basis_sharing import (  # noqa: E402
    CONFIGS,
    REFERENCE,
    decoder_projection_bytes,
    held_out_windows,
    protocol_data,
    run_point,
)
from frugalnn.methods.basis_sharing import Config, compress  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _save(what: str, tag: str, config: dict, identity: dict, rows: list) -> None:
    name = f"basis_sharing_{what}" + (f"_{tag}" if tag else "")
    write_record(
        RESULTS / f"{name}.json", make_record(name, config=config, seed=0, data=identity, results=rows)
    )


def _load_cache(path: str) -> dict:
    from frugalnn.methods.basis_sharing.compress import load_stats

    while path and os.environ.get("BS_WAIT_STATS") and not Path(path).is_file():
        time.sleep(10)  # another bench process is computing the same dense statistics

    return load_stats(path) if path and Path(path).is_file() else {}


def _store_cache(path: str, cache: dict) -> None:
    from frugalnn.methods.basis_sharing.compress import save_stats

    if path and cache and not Path(path).is_file():
        tmp = f"{path}.{os.getpid()}.tmp"
        save_stats(cache, tmp)
        os.replace(tmp, path)


def report() -> int:
    """Merge every basis_sharing_ppl*.json into one table (docs/results/basis_sharing/basis_sharing.md) and a plot."""
    import json

    from frugalnn.core.report import line_plot, markdown_table, write_markdown

    best: dict[tuple[str, float], dict] = {}
    for path in sorted(RESULTS.glob("basis_sharing_ppl*.json")):
        record = json.loads(path.read_text())
        suffix = " (bf16 calibration)" if "calib_dtype=bfloat16" in record["config"].get("set", []) else ""
        for row in record["results"]:
            name = row["config_name"] + suffix
            best[(name, row["ratio"])] = {**row, "config_name": name, "file": path.name}
    for path in sorted(RESULTS.glob("basis_sharing_recovery*.json")):  # refit + LoRA (the CLI default)
        for row in json.loads(path.read_text())["results"]:
            if row.get("lora_lr") == 1e-4:
                name = f"{row['config_name']}+lora"
                best[(name, row["ratio"])] = {**row, "config_name": name, "file": path.name}
    rows = sorted(best.values(), key=lambda r: (r["config_name"] != "dense", r["config_name"], r["ratio"]))
    table = [
        {
            "config": r["config_name"],
            "ratio": r["ratio"],
            "ppl": r["ppl"],
            "reference ppl": r.get("reference_ppl"),
            "gap %": 100 * (r["ppl"] / r["reference_ppl"] - 1) if r.get("reference_ppl") else None,
            "removed": r.get("ratio_achieved"),
        }
        for r in rows
    ]
    write_markdown(
        RESULTS / "basis_sharing.md",
        "# Basis Sharing, SmolLM2-135M (Pride and Prejudice, 40,960 tokens)\n\n" + markdown_table(table),
    )
    series: dict[str, tuple[list, list]] = {}
    for r in rows:
        if r["config_name"] != "dense":
            xs, ys = series.setdefault(r["config_name"], ([], []))
            xs.append(r["ratio"])
            ys.append(r["ppl"])
    for name in ("basis-sharing", "svd-llm"):
        ref = REFERENCE[name]
        series[f"reference {name}"] = (list(ref), list(ref.values()))
    line_plot(
        RESULTS / "basis_sharing.png",
        series,
        xlabel="share of projection parameters removed",
        ylabel="perplexity",
        title="SmolLM2-135M-Instruct",
        logy=True,
    )
    print(markdown_table(table))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=("ppl", "time", "throughput", "select", "report"), default="ppl")
    p.add_argument(
        "--variants",
        nargs="*",
        default=[],
        help="select: candidates NAME[:key=value,...] scored on held-out Emma windows only",
    )
    p.add_argument("--configs", nargs="+", default=["basis-sharing", "svd-llm"], choices=sorted(CONFIGS))
    p.add_argument("--ratios", nargs="+", type=float, default=[0.2, 0.3, 0.4, 0.5])
    p.add_argument("--dense", action="store_true", help="also measure the dense model's perplexity")
    p.add_argument("--tag", default="", help="suffix of the result file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7, help="throughput: timed forwards per model")
    p.add_argument(
        "--logits",
        choices=("all", "last"),
        default="all",
        help="throughput: logits at every position (a plain forward) or only the last (a generation prefill)",
    )
    p.add_argument("--held-out", type=int, default=16, help="select: held-out Emma windows scored")
    p.add_argument(
        "--stats-file", default="", help="persist/reuse the dense Gram statistics (dense propagation)"
    )
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value (e.g. refit=true)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(overrides[key], str):
            try:
                overrides[key] = float(value) if "." in value else int(value)
            except ValueError:
                pass
    if args.what == "report":
        return report()
    dense, tok = load_causal_lm("smollm2")
    calib, evaluation, identity = protocol_data(tok)
    run_config = {**vars(args), "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    rows: list[dict] = []
    if args.what == "ppl":
        if args.dense:
            rows.append(
                {
                    "config_name": "dense",
                    "ratio": 0.0,
                    "ppl": perplexity(dense, evaluation),
                    "reference_ppl": REFERENCE["dense"],
                }
            )
            print(f"dense ppl {rows[-1]['ppl']:.3f}", flush=True)
            _save("ppl", args.tag, run_config, identity, rows)
        cache = _load_cache(args.stats_file)
        for name in args.configs:
            for ratio in args.ratios:
                row = run_point(dense, name, ratio, calib, evaluation, cache=cache, **overrides)
                rows.append(row)
                ref = row["reference_ppl"]
                gap = f" ({100 * (row['ppl'] / ref - 1):+.1f}% vs reference {ref})" if ref else ""
                print(
                    f"{name:14s} r={ratio:.2f} ppl {row['ppl']:.3f}{gap} [{row['compress_s']:.0f} s]",
                    flush=True,
                )
                _save("ppl", args.tag, run_config, identity, rows)
                _store_cache(args.stats_file, cache)
    elif args.what == "select":
        # held-out calibration-side text; Pride and Prejudice is never looked at while choosing
        held = held_out_windows(tok, args.held_out)
        cache = _load_cache(args.stats_file)
        for variant in args.variants:
            name, _, rest = variant.partition(":")
            extra = dict(overrides)
            for kv in filter(None, rest.split(",")):
                key, _, value = kv.partition("=")
                extra[key] = {"true": True, "false": False}.get(value.lower(), value)
                if isinstance(extra[key], str) and value.replace(".", "").isdigit():
                    extra[key] = float(value) if "." in value else int(value)
            for ratio in args.ratios:
                row = run_point(dense, name, ratio, calib, held, cache=cache, **extra)
                row["variant"] = variant
                rows.append(row)
                print(f"{variant:50s} r={ratio:.2f} held-out Emma ppl {row['ppl']:.3f}", flush=True)
                _save("select", args.tag, run_config, identity, rows)
                _store_cache(args.stats_file, cache)
    elif args.what == "time":
        for name in args.configs:
            ratio = args.ratios[0]
            model = copy.deepcopy(dense)
            start, cpu_start = time.perf_counter(), time.process_time()
            _, record = compress(model, Config(ratio=ratio, **{**CONFIGS[name], **overrides}), calib)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            rows.append(
                {
                    "config_name": name,
                    "ratio": ratio,
                    "total_s": total,
                    "process_cpu_s": cpu,  # CPU seconds this process got: the machine is shared
                    "load_average_1min": os.getloadavg()[0],
                    "calibration_s": record["calibration_s"],
                    "factorization_s": record["factorization_s"],
                    "reference_total_s": 203 + 33,
                }
            )
            print(
                f"{name} r={ratio}: {total:.1f} s (calibration {record['calibration_s']:.1f} s, "
                f"factorisation {record['factorization_s']:.1f} s; CPU {cpu:.1f} s) with {args.threads} thread(s)",
                flush=True,
            )
            _save("time", args.tag, run_config, identity, rows)
    else:
        batch = evaluation[:8]
        models = {"dense": dense}
        cache = _load_cache(args.stats_file)
        for name in args.configs:
            config = Config(ratio=args.ratios[0], **{**CONFIGS[name], **overrides})
            m, _ = compress(copy.deepcopy(dense), config, calib, stats_cache=cache)
            models[name] = m
        times: dict[str, list[float]] = {k: [] for k in models}
        with torch.no_grad():
            for _ in range(args.repeats):  # interleaved, so background load hits every model alike
                for key, m in models.items():
                    start = time.perf_counter()
                    m(input_ids=batch, use_cache=False, logits_to_keep=0 if args.logits == "all" else 1)
                    times[key].append(time.perf_counter() - start)
        dense_tps = batch.numel() / statistics.median(times["dense"])
        dense_bytes = decoder_projection_bytes(dense)
        for key, m in models.items():
            tps = batch.numel() / statistics.median(times[key])
            nbytes = decoder_projection_bytes(m)
            rows.append(
                {
                    "config_name": key,
                    "ratio": 0.0 if key == "dense" else args.ratios[0],
                    "tokens_per_s": tps,
                    "speedup": tps / dense_tps,
                    "runs_s": times[key],
                    "decoder_bytes": nbytes,
                    "decoder_bytes_saved": 1 - nbytes / dense_bytes,
                }
            )
            print(
                f"{key:14s} {tps:8.1f} tok/s  x{tps / dense_tps:.2f}  decoder bytes {nbytes / 1e6:.1f} MB "
                f"({100 * (1 - nbytes / dense_bytes):.1f}% fewer)",
                flush=True,
            )
        _save("throughput", args.tag, run_config, identity, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
