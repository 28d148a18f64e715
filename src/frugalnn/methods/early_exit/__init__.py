"""Class-exclusion early exit (Wang et al., AICAS 2024, arXiv 2309.13443), the confidence baseline, and
a hybrid of both (``mode="hybrid"``, our extension, not in the paper: two heads per exit, the paper's
sigmoid head for the exclusion and a softmax head for a confidence exit over the classes that remain).

    model, record = attach_exits(backbone, Config(exits=("blocks.0", "blocks.1")))
    train_heads(model, data)                          # heads on the frozen backbone (loss.py)
    search(model, data.x_val, data.y_val)             # per-exit β (or thresholds) on validation data
    evaluate(model, data.x_test, data.y_test)         # accuracy, MACs/image incl. heads, exit histogram

The wrapper shares the backbone's parameters (it does not copy them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .config import Config
from .heads import EarlyExitModel, ExitHead, default_exits, load_early_exit, save_early_exit
from .inference import InferenceResult, infer_single, prepare_cpu_inference, skipping_forward, summarize
from .lean import drop_costly_exits, modelled_seconds
from .loss import exit_loss, pooled_features, train_heads, train_joint
from .search import (
    Outputs,
    SearchResult,
    collect_outputs,
    drop_idle_exits,
    search_betas,
    search_hybrid,
    search_thresholds,
    simulate,
)

__all__ = [
    "Config",
    "EarlyExitModel",
    "ExitHead",
    "InferenceResult",
    "Outputs",
    "SearchResult",
    "attach_exits",
    "collect_outputs",
    "default_exits",
    "drop_costly_exits",
    "drop_idle_exits",
    "evaluate",
    "exit_loss",
    "infer_single",
    "load_early_exit",
    "modelled_seconds",
    "pooled_features",
    "prepare_cpu_inference",
    "save_early_exit",
    "search",
    "search_betas",
    "search_hybrid",
    "search_thresholds",
    "simulate",
    "skipping_forward",
    "summarize",
    "train_heads",
    "train_joint",
]


def attach_exits(model: nn.Module, config: Config | None = None) -> tuple[EarlyExitModel, dict[str, Any]]:
    """The verb: wrap ``model`` with exit heads at ``config.exits`` -> (early-exit model, record)."""
    config = (config or Config()).validate()
    ee = EarlyExitModel(model, config)
    return ee, {"config": config.to_dict(), **ee.describe()}


def search(
    model: EarlyExitModel,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    tolerance: float | None = None,
    progress: bool = False,
) -> SearchResult:
    """Search β (exclusion) or thresholds (confidence) on validation data and set them on the model."""
    outs = collect_outputs(model, x_val, y_val, progress=progress)
    if model.config.mode == "exclusion":
        result = search_betas(model, outs, tolerance)
        model.set_betas(result.values)
    elif model.config.mode == "hybrid":  # ours: β and τ together (search_hybrid)
        result, taus = search_hybrid(model, outs, tolerance)
        model.set_betas(result.values)
        model.set_thresholds(taus)
    else:
        result = search_thresholds(model, outs, tolerance)
        model.set_thresholds(result.values)
    return result


def evaluate(
    model: EarlyExitModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> dict[str, Any]:
    """Skipping inference on (x, y): accuracy, MACs per image (heads included), exit histogram."""
    result = skipping_forward(model, x, batch_size)
    return summarize(model, result, y)
