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

from frugalnn.core.checkpoint import load_checkpoint
from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy, count_macs, count_params
from frugalnn.core.train import train
from frugalnn.core.zoo import load_pretrained
from frugalnn.methods.class_pruning import BUDGETS, Config, prune, save_pruned
from frugalnn.methods.class_pruning.prune import finetune_config

# Fine-tuning budgets and the variants a table names (criterion + config change) are the method's
# presets (ClassPruningConfig.PRESETS and BUDGETS in methods/class_pruning/config.py).
FULL_BUDGET, LONG_BUDGET, XLONG_BUDGET, QUICK_BUDGET = (
    BUDGETS[k] for k in ("full", "long", "xlong", "quick")
)
VARIANTS: dict[str, dict[str, Any]] = {
    name: {"method": "class-aware", **overrides}
    for name, overrides in Config.PRESETS.items()
    if name not in ("paper", "ours")
}


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
    dense, spec, _ = load_checkpoint(base) if base else load_pretrained(model_name)
    overrides = {**VARIANTS.get(method, {"method": "l1"}), **budget}
    # ``target`` is the share of MACs kept (the bench plans' key); the config's ratio is the share removed
    config = Config(ratio=round(1.0 - target, 12), seed=seed, round_to=round_to, device=device, **overrides)
    start = time.perf_counter()
    if method == "dense":
        pruned, record = _dense_control(dense, config, data, progress)
    else:
        pruned, record = prune(dense, config, data, progress=progress)
        record["test_accuracy"] = accuracy(pruned, data.x_test, data.y_test)
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
