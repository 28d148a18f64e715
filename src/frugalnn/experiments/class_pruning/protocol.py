"""The protocol of the ``class-pruning`` experiment: prune a Fashion-MNIST zoo baseline with one criterion
(class-aware, L1, Taylor, or an ablation variant) to a MAC target under a fixed fine-tuning budget, one
flat result row per run; ``dense`` is the control (the same budget without pruning)."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy, count_macs, count_params
from frugalnn.core.train import train
from frugalnn.core.zoo import load_pretrained
from frugalnn.methods.class_pruning import Config, load_pruned, prune, save_pruned
from frugalnn.methods.class_pruning.prune import finetune_config

# Fine-tuning budget per run (same for all methods): 700 SGD steps of 128 images, ~1.6 epochs of Fashion-MNIST.
FULL_BUDGET = {"iterations": 3, "pretrain_steps": 100, "finetune_steps": 100, "final_steps": 300}
# Twice the steps (1,400, ~3 epochs) and distillation from the dense model (weight 0.5, T = 4) in every
# fine-tuning phase, for all three criteria alike: the budget for the high-ratio targets (session 2).
LONG_BUDGET = {
    "iterations": 3, "pretrain_steps": 200, "finetune_steps": 200, "final_steps": 600,
    "distill_weight": 0.5, "distill_temperature": 4.0,
}  # fmt: skip
# Three times the long budget (4,200 steps, ~10 epochs) with the same distillation: for the ≤ 1 point
# target at 80% fewer MACs (session 3, fine-tuned on a GPU; the steps are the same on any device).
XLONG_BUDGET = {**LONG_BUDGET, "pretrain_steps": 600, "finetune_steps": 600, "final_steps": 1800}
BUDGETS = {"full": FULL_BUDGET, "long": LONG_BUDGET, "xlong": XLONG_BUDGET}
# What the table's "method" column names: the criterion plus any config change (ablations).
VARIANTS: dict[str, dict[str, Any]] = {
    "class-aware": {"method": "class-aware"},  # paper setting: orthogonality regulariser 0.01
    "class-aware-noreg": {"method": "class-aware", "orth_weight": 0.0, "l1_weight": 0.0},
    "class-aware-global": {"method": "class-aware", "allocation": "global"},
    # binarise at 0.1 x each layer's mean |a·dL/da| instead of "non-zero" (breaks the ties at K)
    "class-aware-rel": {"method": "class-aware", "relative_threshold": 0.1},
    # both changes: separates the score's ties from the regulariser's perturbation (session 4 ablation)
    "class-aware-rel-noreg": {
        "method": "class-aware",
        "relative_threshold": 0.1,
        "orth_weight": 0.0,
        "l1_weight": 0.0,
    },
    "l1": {"method": "l1"},
    "taylor": {"method": "taylor"},
}
QUICK_BUDGET = {
    "iterations": 1,
    "pretrain_steps": 4,
    "finetune_steps": 12,
    "final_steps": 24,
    "val_images": 500,
}
BUDGETS["quick"] = QUICK_BUDGET  # the demo's, and a smoke test of the bench's plan runner


def run_one(
    model_name: str,
    method: str,
    target: float,
    seed: int,
    data: ImageData,
    budget: dict[str, Any],
    save_dir: Path | None = None,
    progress: bool = False,
    round_to: int = 4,
    base: Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Prune one baseline (the zoo's, or the checkpoint ``base``) with one method (a VARIANTS name, or
    ``dense``: the same fine-tuning budget without pruning, the control) to one target; a flat row."""
    dense, spec, _ = load_pruned(base) if base else load_pretrained(model_name)
    overrides = {**VARIANTS.get(method, {"method": "l1"}), **budget}
    config = Config(target_flops=target, seed=seed, round_to=round_to, device=device, **overrides)
    start = time.perf_counter()
    if method == "dense":
        pruned, record = _dense_control(dense, config, data, progress)
    else:
        pruned, record = prune(dense, config, data, progress=progress)
    dense_test = accuracy(dense, data.x_test, data.y_test)
    row = {
        "model": model_name,
        "method": method,
        "target_flops": target,
        "seed": seed,
        "round_to": round_to,
        "dense_test_accuracy": dense_test,
        "test_accuracy": record["test_accuracy"],
        "accuracy_drop_points": 100 * (dense_test - record["test_accuracy"]),
        "dense_macs": record["dense"]["macs"],
        "macs": record["macs"],
        "mac_reduction": record["mac_reduction"],
        "dense_params": record["dense"]["params"],
        "params": record["params"],
        "train_steps": record["train_steps"],
        "device": device,
        "seconds": time.perf_counter() - start,
        "record": record,
    }
    if save_dir is not None:
        folder = save_dir / f"{model_name}-{method}-{target}-r{round_to}-s{seed}"
        save_pruned(folder, pruned, spec, {"prune": record, "data": data.identity})
        row["checkpoint"] = str(folder)
    return row


def _dense_control(
    model: nn.Module, config: Config, data: ImageData, progress: bool
) -> tuple[nn.Module, dict]:
    """The unpruned model fine-tuned for the same number of steps: what the accuracy drop is measured from."""
    model = copy.deepcopy(model)
    steps = config.pretrain_steps + config.iterations * config.finetune_steps + config.final_steps
    tc = finetune_config(config, steps, len(data.x_train), config.seed * 1000 + 500)
    no_val = replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])
    train(model, no_val, tc, progress=progress, evaluate_test=False)
    model.cpu()
    macs, params = count_macs(model, data.x_test[:1]), count_params(model)
    record = {
        "dense": {"macs": macs, "params": params}, "macs": macs, "params": params, "mac_reduction": 0.0,
        "train_steps": steps, "test_accuracy": accuracy(model, data.x_test, data.y_test), "histogram": None,
        "widths": {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
    }  # fmt: skip
    return model, record
