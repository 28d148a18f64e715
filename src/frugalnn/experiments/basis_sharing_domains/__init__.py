"""Experiment ``basis-sharing-domains``: does a compressed SmolLM2 stay a general model off its
calibration domain? Perplexity on three held-out domains (Pride and Prejudice, the Jargon File, Lee
news) for Basis Sharing and SVD-LLM at several ratios, calibrated on one novel (*Emma*) or on the mixed
set, with no recovery, the per-layer refit, or refit + one LoRA epoch on the same calibration windows.

The Gram statistics depend only on the dense model and the calibration windows, so each calibration
set's statistics are computed once and shared by every method, ratio and recovery (``stats_cache``).
Rows are appended to ``rows.jsonl`` as they finish; a rerun into the same folder skips them.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from frugalnn.core.io import atomic_write_json
from frugalnn.experiments import register
from frugalnn.experiments.basis_sharing_domains.report import headline, write_report

WINDOW = 512
CALIB_SEED = 2023
RECOVERIES = {"none": {}, "refit": {"refit": True}, "refit+lora": {"refit": True, "lora_epochs": 1},
              "lora": {"lora_epochs": 1}}  # fmt: skip


def _grid(methods, ratios, calibs, recoveries, baseline_recoveries):
    """Cells in the order given: calibration, then ratio, then method, so that a partial run already
    compares the methods at its first ratios."""
    for calib in calibs:
        for ratio in ratios:
            for method in methods:
                # the refit re-solves shared-basis coefficients: Basis Sharing only
                for recovery in recoveries if method == "basis-sharing" else baseline_recoveries:
                    yield calib, method, ratio, recovery


@register(
    "basis-sharing-domains",
    "Basis Sharing off its calibration domain: perplexity on 3 held-out domains, one novel vs a mix",
    order=32,
    headline=lambda record: headline(record["results"]["rows"], record["results"]["dense"]),
)
def run(
    out_dir: Path,
    quick: bool,
    seed: int,
    methods: tuple[str, ...] | None = None,
    ratios: tuple[float, ...] | None = None,
    calibs: tuple[str, ...] = ("austen:emma", "mix"),
    recoveries: tuple[str, ...] | None = None,
    baseline_recoveries: tuple[str, ...] = ("none",),
    calib_windows: int | None = None,
    eval_windows: int | None = None,
    model: str = "smollm2",
    report_only: bool = False,
) -> list[dict[str, Any]]:
    from frugalnn.core.data.calib import EVAL_DOMAINS, calibration_windows, evaluation_windows
    from frugalnn.core.llm import encode_text, load_causal_lm, perplexity
    from frugalnn.methods.basis_sharing import BasisSharingConfig, compress

    methods = methods or (("basis-sharing",) if quick else ("basis-sharing", "svd-llm"))
    ratios = ratios or ((0.3,) if quick else (0.2, 0.3, 0.4, 0.5))
    recoveries = recoveries or (("none", "refit") if quick else tuple(RECOVERIES))
    calib_windows = calib_windows or (8 if quick else 64)
    eval_windows = eval_windows or (4 if quick else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "rows.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["calib"], r["method"], r["ratio"], r["recovery"]) for r in rows}

    dense, tok = load_causal_lm(model)
    encode = lambda text: encode_text(tok, text)  # noqa: E731
    evals = {d: evaluation_windows(encode, d, WINDOW)[:eval_windows] for d in EVAL_DOMAINS}
    dense_log = out_dir / "dense.json"  # the dense perplexities, kept for a resumed run
    key = f"{model}:{eval_windows}"
    cached = json.loads(dense_log.read_text()) if dense_log.exists() else {}
    if key not in cached:
        cached[key] = {d: perplexity(dense, w) for d, w in evals.items()}
        atomic_write_json(dense_log, cached)
    dense_ppl = cached[key]
    print("dense: " + ", ".join(f"{d} {p:.2f}" for d, p in dense_ppl.items()), flush=True)
    identities = {}
    for calib in calibs:
        windows, identities[calib] = calibration_windows(encode, calib, calib_windows, WINDOW, CALIB_SEED)
        cache: dict = {}
        for _, method, ratio, recovery in _grid(methods, ratios, (calib,), recoveries, baseline_recoveries):
            if (calib, method, ratio, recovery) in done or report_only:
                continue
            preset = "paper" if method == "basis-sharing" else method
            config = BasisSharingConfig.preset(preset, ratio=ratio, **RECOVERIES[recovery])
            start = time.perf_counter()
            compressed, record = compress(
                copy.deepcopy(dense), config, windows, progress=False, stats_cache=cache
            )
            seconds = time.perf_counter() - start
            ppl = {d: perplexity(compressed, w) for d, w in evals.items()}
            row = {"calib": calib, "method": method, "ratio": ratio, "recovery": recovery,
                   "compress_s": seconds, "calibration_s": record["calibration_s"],
                   **{f"ppl:{d}": p for d, p in ppl.items()},
                   **{f"x_dense:{d}": ppl[d] / dense_ppl[d] for d in ppl}}  # fmt: skip
            rows.append(row)
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"{calib} {method} {ratio:.0%} {recovery}: " + ", ".join(f"{p:.1f}" for p in ppl.values()),
                flush=True,
            )
            del compressed
    setting = {"methods": methods, "ratios": ratios, "calibs": calibs, "recoveries": recoveries,
               "baseline_recoveries": baseline_recoveries, "calib_windows": calib_windows, "eval_windows": eval_windows, "window": WINDOW,
               "calib_seed": CALIB_SEED, "quick": quick, "model": model,
               "cells_measured": len(rows)}  # fmt: skip
    data = {"calibration": identities, "evaluation": {d: int(w.numel()) for d, w in evals.items()}}
    return write_report(out_dir, rows, dense_ppl, setting, data, seed)
