"""The bench's sweeps of the ``basis-sharing`` protocol (full data, 1 torch thread by default): perplexity
points, configuration selection on held-out Emma windows, compression time, forward throughput, and the
LoRA recovery after the refit. Each appends its rows to ``<results>/basis_sharing_<what>[_<tag>].json``
as soon as they exist, so a killed run keeps what it measured. Perplexity points reuse the dense model's
Gram matrices across ratios (with dense propagation they do not depend on the ratio)."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.llm import load_causal_lm, perplexity
from frugalnn.core.measure import fastest_seconds
from frugalnn.core.report import make_record, write_record
from frugalnn.experiments.basis_sharing.protocol import (
    CONFIGS,
    REFERENCE,
    decoder_projection_bytes,
    held_out_windows,
    protocol_data,
    run_point,
)
from frugalnn.methods.basis_sharing import BasisSharingConfig, compress


def _save(results: Path, what: str, tag: str, config: dict, identity: dict, rows: list) -> None:
    name = f"basis_sharing_{what}" + (f"_{tag}" if tag else "")
    write_record(
        results / f"{name}.json", make_record(name, config=config, seed=0, data=identity, results=rows)
    )


def load_cache(path: str) -> dict:
    """Dense Gram statistics persisted by an earlier sweep (``BS_WAIT_STATS``: wait for another process
    that is computing them)."""
    from frugalnn.methods.basis_sharing.compress import load_stats

    while path and os.environ.get("BS_WAIT_STATS") and not Path(path).is_file():
        time.sleep(10)
    return load_stats(path) if path and Path(path).is_file() else {}


def store_cache(path: str, cache: dict) -> None:
    from frugalnn.methods.basis_sharing.compress import save_stats

    if path and cache and not Path(path).is_file():
        tmp = f"{path}.{os.getpid()}.tmp"
        save_stats(cache, tmp)
        os.replace(tmp, path)


def sweep(
    results: Path,
    what: str,
    configs: list[str],
    ratios: list[float],
    *,
    tag: str = "",
    dense_point: bool = False,
    overrides: dict[str, Any] | None = None,
    variants: list[tuple[str, str, dict[str, Any]]] = (),
    held_out: int = 16,
    repeats: int = 7,
    logits: str = "all",
    stats_file: str = "",
    run_config: dict | None = None,
) -> list[dict]:
    """``what``: ``ppl`` (every config at every ratio), ``select`` (``variants`` (label, config, overrides)
    scored on held-out Emma windows only), ``time`` (compression at ``ratios[0]``) or ``throughput``
    (batch 8 x 512 forwards at ``ratios[0]``, fastest of ``repeats`` interleaved rounds)."""
    overrides = overrides or {}
    dense, tok = load_causal_lm("smollm2")
    calib, evaluation, identity = protocol_data(tok)
    config = {**(run_config or {}), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    rows: list[dict] = []
    if what == "ppl":
        if dense_point:
            ppl = perplexity(dense, evaluation)
            rows.append(
                {"config_name": "dense", "ratio": 0.0, "ppl": ppl, "reference_ppl": REFERENCE["dense"]}
            )
            print(f"dense ppl {ppl:.3f}", flush=True)
            _save(results, what, tag, config, identity, rows)
        cache = load_cache(stats_file)
        for name in configs:
            for ratio in ratios:
                row = run_point(dense, name, ratio, calib, evaluation, cache=cache, **overrides)
                rows.append(row)
                ref = row["reference_ppl"]
                gap = f" ({100 * (row['ppl'] / ref - 1):+.1f}% vs reference {ref})" if ref else ""
                print(
                    f"{name:14s} r={ratio:.2f} ppl {row['ppl']:.3f}{gap} [{row['compress_s']:.0f} s]",
                    flush=True,
                )
                _save(results, what, tag, config, identity, rows)
                store_cache(stats_file, cache)
    elif what == "select":  # held-out calibration-side text; Pride and Prejudice is never looked at
        held = held_out_windows(tok, held_out)
        cache = load_cache(stats_file)
        for label, name, extra in variants:
            for ratio in ratios:
                row = run_point(dense, name, ratio, calib, held, cache=cache, **{**overrides, **extra})
                row["variant"] = label
                rows.append(row)
                print(f"{label:50s} r={ratio:.2f} held-out Emma ppl {row['ppl']:.3f}", flush=True)
                _save(results, what, tag, config, identity, rows)
                store_cache(stats_file, cache)
    elif what == "time":
        for name in configs:
            model = copy.deepcopy(dense)
            start, cpu_start = time.perf_counter(), time.process_time()
            _, record = compress(
                model, BasisSharingConfig.preset(CONFIGS[name], ratio=ratios[0], **overrides), calib
            )
            total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            rows.append(
                {
                    "config_name": name,
                    "ratio": ratios[0],
                    "total_s": total,
                    "process_cpu_s": cpu,  # CPU seconds this process got: the machine is shared
                    "load_average_1min": os.getloadavg()[0],
                    "calibration_s": record["calibration_s"],
                    "factorization_s": record["factorization_s"],
                    "reference_total_s": 203 + 33,
                }
            )
            print(f"{name} r={ratios[0]}: {total:.1f} s (calibration {record['calibration_s']:.1f} s, "
                  f"factorisation {record['factorization_s']:.1f} s; CPU {cpu:.1f} s)", flush=True)  # fmt: skip
            _save(results, what, tag, config, identity, rows)
    elif what == "throughput":
        rows = throughput(
            dense, configs, ratios[0], calib, evaluation[:8], overrides, repeats, logits, stats_file
        )
        _save(results, what, tag, config, identity, rows)
    return rows


def throughput(
    dense: torch.nn.Module,
    configs: list[str],
    ratio: float,
    calib: torch.Tensor,
    batch: torch.Tensor,
    overrides: dict[str, Any],
    repeats: int,
    logits: str,
    stats_file: str = "",
) -> list[dict]:
    """Tokens/s of the dense and compressed forwards (``core.measure.fastest_seconds``: the fastest of
    ``repeats`` rounds interleaved between the models, so background load hits every model alike) and
    the bytes of the decoder layers."""
    models = {"dense": dense}
    cache = load_cache(stats_file)
    for name in configs:
        config = BasisSharingConfig.preset(CONFIGS[name], ratio=ratio, **overrides)
        models[name], _ = compress(copy.deepcopy(dense), config, calib, stats_cache=cache)
    keep = 0 if logits == "all" else 1
    calls = {
        k: (lambda m=m: m(input_ids=batch, use_cache=False, logits_to_keep=keep)) for k, m in models.items()
    }
    seconds = fastest_seconds(calls, rounds=repeats, repeats=1)
    dense_tps, dense_bytes = batch.numel() / seconds["dense"], decoder_projection_bytes(dense)
    rows = []
    for key, m in models.items():
        tps, nbytes = batch.numel() / seconds[key], decoder_projection_bytes(m)
        rows.append({
            "config_name": key, "ratio": 0.0 if key == "dense" else ratio, "tokens_per_s": tps,
            "speedup": tps / dense_tps, "fastest_s": seconds[key], "decoder_bytes": nbytes,
            "decoder_bytes_saved": 1 - nbytes / dense_bytes,
        })  # fmt: skip
        print(f"{key:14s} {tps:8.1f} tok/s  x{tps / dense_tps:.2f}  decoder bytes {nbytes / 1e6:.1f} MB "
              f"({100 * (1 - nbytes / dense_bytes):.1f}% fewer)", flush=True)  # fmt: skip
    return rows


def recovery(
    out: Path,
    ratios: list[float],
    lrs: list[float],
    epochs: int = 1,
    config_name: str = "improved",
    held_out: int = 16,
    skip_base: bool = False,
    run_config: dict | None = None,
) -> list[dict]:
    """For every ratio: compress with ``config_name``, measure perplexity on Pride and Prejudice (the
    protocol's 80 windows) and on held-out Emma windows, then train LoRA on the coefficient matrices with
    each learning rate (on the 64 calibration windows only) and measure both again. The learning rate is
    chosen on the held-out Emma windows, never on Pride and Prejudice. Rows are written to ``out`` as
    soon as they exist."""
    from frugalnn.methods.basis_sharing.recovery import lora_recover

    dense, tok = load_causal_lm("smollm2")
    calib, evaluation, identity = protocol_data(tok)
    held = held_out_windows(tok, held_out)
    identity = {**identity, "held_out_emma_windows": held_out}
    rows: list[dict] = []
    cache: dict = {}  # dense Gram statistics, shared by every ratio (dense propagation)
    config_record = {**(run_config or {}), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}

    def save() -> None:
        record = make_record(
            "basis_sharing_recovery", config=config_record, seed=0, data=identity, results=rows
        )
        write_record(out, record)

    for ratio in ratios:
        config = BasisSharingConfig.preset(CONFIGS[config_name], ratio=ratio)
        start = time.perf_counter()
        compressed, _ = compress(copy.deepcopy(dense), config, calib, stats_cache=cache)
        base = {
            "ratio": ratio,
            "config_name": config_name,
            "compress_s": time.perf_counter() - start,
            "reference_bs": REFERENCE["basis-sharing"].get(ratio),
            "reference_svdllm": REFERENCE["svd-llm"].get(ratio),
        }
        if not skip_base:
            rows.append({**base, "lora_lr": None, "ppl": perplexity(compressed, evaluation),
                         "held_out_emma_ppl": perplexity(compressed, held)})  # fmt: skip
            print(
                f"r={ratio} no LoRA: ppl {rows[-1]['ppl']:.3f} emma {rows[-1]['held_out_emma_ppl']:.3f}",
                flush=True,
            )
        save()
        for lr in lrs:
            lora_cfg = dataclasses.replace(config, lora_epochs=epochs, lora_lr=lr)
            with torch.enable_grad():
                model, lora = lora_recover(copy.deepcopy(compressed), lora_cfg, calib)
            rows.append({**base, "lora_lr": lr, "lora_epochs": epochs, "lora": lora,
                         "ppl": perplexity(model, evaluation), "held_out_emma_ppl": perplexity(model, held)})  # fmt: skip
            print(f"r={ratio} LoRA lr {lr:g}: ppl {rows[-1]['ppl']:.3f} emma {rows[-1]['held_out_emma_ppl']:.3f} "
                  f"({lora['seconds']:.0f} s)", flush=True)  # fmt: skip
            save()
            del model
    return rows
