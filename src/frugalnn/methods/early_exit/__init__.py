"""Class-exclusion early exit (Wang et al., AICAS 2024, arXiv 2309.13443), the confidence baseline, and
a hybrid of both (``mode="hybrid"``, our extension, not in the paper: two heads per exit, the paper's
sigmoid head for the exclusion and a softmax head for a confidence exit over the classes that remain).

    model, record = attach_exits(backbone, EarlyExitConfig(exits=("blocks.0", "blocks.1")))
    model, record = frugalnn.apply(backbone, EarlyExitConfig.preset("ours"))   # the same verb
    train_heads(model, data)                          # heads on the frozen backbone (loss.py)
    search(model, data.x_val, data.y_val)             # per-exit β (or thresholds) on validation data
    search(..., drop_costly=True)                     # then switch off exits that cost more time than they save (lean.py)
    evaluate(model, data.x_test, data.y_test)         # accuracy, MACs/image incl. heads, exit histogram

The wrapper shares the backbone's parameters (it does not copy them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.methods import register_method

from .config import Config, EarlyExitConfig
from .heads import EarlyExitModel, ExitHead, default_exits, load_early_exit, save_early_exit
from .inference import InferenceResult, infer_single, prepare_cpu_inference, skipping_forward, summarize
from .lean import drop_costly_exits, exit_costs, modelled_seconds
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
    "EarlyExitConfig",
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
    "exit_costs",
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
    drop_costly: bool = False,
    timing_batch: int = 64,
) -> SearchResult:
    """Search β (exclusion) or thresholds (confidence) on validation data and set them on the model.

    ``drop_costly`` (ours, for wall time): afterwards time every segment and exit on this machine
    (``exit_costs`` on ``timing_batch`` validation images) and switch off the exits that cost more
    time than they save, validation accuracy kept within the tolerance (``drop_costly_exits``);
    ``result.values`` and the model then hold the lean setting."""
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
    if drop_costly:
        _drop_costly(model, outs, result, x_val[:timing_batch], tolerance)
    return result


def _drop_costly(
    model: EarlyExitModel, outs: Outputs, result: SearchResult, x: torch.Tensor, tolerance: float | None
) -> None:
    mode = model.config.mode
    taus = model.thresholds.tolist() if mode == "hybrid" else None
    seg_s, exit_s = exit_costs(model, x)
    tol = model.config.tolerance if tolerance is None else tolerance
    values, taus = drop_costly_exits(model, outs, result.values, taus, seg_s, exit_s, tol)
    if mode == "confidence":
        model.set_thresholds(values)
    else:
        model.set_betas(values)
        if taus is not None:
            model.set_thresholds(taus)
    r = simulate(model, outs, values, taus=taus)
    result.values = values
    result.accuracy = float((r.pred == outs.labels).double().mean())
    result.macs_per_image = float(r.macs.double().mean())
    result.trace.append(
        {"drop_costly_exits": {"segment_s": seg_s, "exit_s": exit_s, "values": values, "taus": taus}}
    )


def evaluate(
    model: EarlyExitModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> dict[str, Any]:
    """Skipping inference on (x, y): accuracy, MACs per image (heads included), exit histogram."""
    result = skipping_forward(model, x, batch_size)
    return summarize(model, result, y)


register_method(EarlyExitConfig, attach_exits)
