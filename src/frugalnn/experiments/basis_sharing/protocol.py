"""The protocol of the ``basis-sharing`` experiment: SmolLM2-135M perplexity against compression ratio for Basis Sharing,
SVD-LLM, ASVD and SVD, with the benchmark's measurement protocol (the reference code's, measured here):

- tokenizer without BOS; each novel's lines joined with "\\n" and tokenised once;
- calibration: 64 of the 433 consecutive 512-token windows of Emma, ``torch.manual_seed(2023);
  torch.randperm(433)[:64]``;
- evaluation: the first 40,960 tokens of Pride and Prejudice in 80 non-overlapping 512-token windows,
  perplexity = exp(mean of the per-window mean NLL).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from frugalnn.core.data import load_text, token_windows
from frugalnn.core.llm import encode_text, perplexity
from frugalnn.methods.basis_sharing import BasisSharingConfig, compress

WINDOW = 512
CALIB_WINDOWS = 64
CALIB_SEED = 2023
EVAL_TOKENS = 40_960
# the anchor protocol: the reference code on this model and protocol
REFERENCE = {
    "dense": 27.15,
    "basis-sharing": {0.2: 58.74, 0.3: 79.73, 0.4: 112.15, 0.5: 172.27},
    "svd-llm": {0.2: 60.28, 0.3: 77.92, 0.4: 105.40, 0.5: 146.14},
}
# Table rows -> BasisSharingConfig presets (the recipes live in the method's config module);
# "improved" (the refit) was chosen on held-out Emma windows only (docs/results/basis_sharing/basis_sharing_select_a.json)
CONFIGS: dict[str, str] = {
    "basis-sharing": "paper",
    "svd-llm": "svd-llm",
    "asvd": "asvd",
    "svd": "svd",
    "improved": "refit",
    "improved+lora": "ours",
}


def protocol_data(
    tokenizer: Any, calib_windows: int = CALIB_WINDOWS, eval_tokens: int = EVAL_TOKENS
) -> tuple:
    """(calibration windows, evaluation windows, data identity) as the benchmark protocol fixes them."""
    emma = load_text("austen:emma")
    pride = load_text("austen:prideprejudice")
    all_calib = token_windows(encode_text(tokenizer, emma.text), WINDOW)
    torch.manual_seed(CALIB_SEED)
    pick = torch.randperm(len(all_calib))[:calib_windows]
    evaluation = token_windows(encode_text(tokenizer, pride.text), WINDOW, limit_tokens=eval_tokens)
    identity = {
        "calibration": {
            **emma.identity,
            "windows_total": len(all_calib),
            "windows_used": len(pick),
            "window": WINDOW,
            "seed": CALIB_SEED,
        },
        "evaluation": {**pride.identity, "tokens": int(evaluation.numel()), "windows": len(evaluation)},
    }
    return all_calib[pick], evaluation, identity


def held_out_windows(tokenizer: Any, n: int, calib_windows: int = CALIB_WINDOWS) -> torch.Tensor:
    """The n Emma windows that follow the calibration picks in the protocol's permutation: calibration-side
    text that the calibration never saw, for choosing configurations without looking at the evaluation."""
    emma = token_windows(encode_text(tokenizer, load_text("austen:emma").text), WINDOW)
    torch.manual_seed(CALIB_SEED)
    return emma[torch.randperm(len(emma))[calib_windows : calib_windows + n]]


def decoder_projection_bytes(model: torch.nn.Module) -> int:
    """Bytes of the distinct parameters inside the decoder layers (a shared basis counts once)."""
    from frugalnn.methods.basis_sharing.discover import discover

    layers = discover(model).layers
    seen: dict[int, int] = {}
    for p in layers.parameters():
        seen[id(p)] = p.numel() * p.element_size()
    return sum(seen.values())


def run_point(
    dense: torch.nn.Module,
    name: str,
    ratio: float,
    calib: torch.Tensor,
    evaluation: torch.Tensor,
    cache: dict | None = None,
    eval_batch: int = 4,
    **overrides: Any,
) -> dict[str, Any]:
    """Compress a copy of ``dense`` with a named configuration and measure its perplexity."""
    config = BasisSharingConfig.preset(CONFIGS[name], ratio=ratio, **overrides)
    model = copy.deepcopy(dense)
    start = time.perf_counter()
    model, record = compress(model, config, calib, stats_cache=cache)
    seconds = time.perf_counter() - start
    ppl = perplexity(model, evaluation, batch_size=eval_batch)
    return {
        "config_name": name,
        "ratio": ratio,
        "ppl": ppl,
        "compress_s": seconds,
        "calibration_s": record["calibration_s"],
        "factorization_s": record["factorization_s"],
        "ratio_achieved": record["ratio_achieved"],
        "params_after": record["params_after"],
        "reference_ppl": REFERENCE.get(name, {}).get(ratio)
        if isinstance(REFERENCE.get(name), dict)
        else None,
        "config": record["config"],
        "ranks": record["ranks"],
    }
