"""Class-exclusion early exit vs the confidence baseline vs no exit (AICAS 2024, arXiv 2309.13443).

For each Fashion-MNIST zoo model: heads of both kinds at the same positions are trained on the frozen
backbone (one cached feature pass), the per-exit β / thresholds are searched on the validation split
for a sweep of tolerances, and every setting is scored on the test split (accuracy, MACs per image at
batch size 1 with heads included, exit histogram). At the main tolerance the real skipping forward is
timed against the plain backbone (1 thread, batches of 64, alternating repeats) and checked to give
the simulated answers; the batch-size-1 path is timed too, and each segment's share of the wall time
is set against its share of the MACs.

Methods: the paper's class exclusion (ratio rule and its absolute variant), the confidence baseline,
and ``hybrid`` — our extension, not in the paper: at every exit both heads (the paper's sigmoid head
and the baseline's softmax head, each trained with its own loss), the paper's exclusion with β, then a
confidence exit with τ over the remaining classes, β and τ searched together (search_hybrid).
Tables and plots: ``report.py``; timing of the real forward: ``timing.py``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from frugalnn.core.data import ImageData, load_fashion_mnist
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.core.train import TrainConfig, train
from frugalnn.core.zoo import load_pretrained, zoo_path
from frugalnn.experiments.early_exit.report import (
    MAIN_TOLERANCE,
    METHODS,
    add_matched,
    result_row,
    targets,
    write_report,
)
from frugalnn.experiments.early_exit.timing import (
    BATCH,
    REPEATS,
    TIMING_IMAGES,
    segment_profile,
    time_real_forward,
)
from frugalnn.methods.early_exit import (
    Config,
    EarlyExitModel,
    Outputs,
    attach_exits,
    drop_costly_exits,
    exit_costs,
    pooled_features,
    search_betas,
    search_hybrid,
    search_thresholds,
    simulate,
    summarize,
    train_heads,
)

TOLERANCES = (0.0, 0.001, 0.002, 0.004, 0.005, 0.01, 0.02, 0.03)
POS_WEIGHTS = (1.0, 9.0, 100.0)  # ablation around the paper's 4·(K−1) = 36
TRAIN_SUBSET = 20000  # images the heads train on (linear heads on pooled features: plenty)


def _backbone(name: str, data: ImageData, quick: bool, seed: int) -> tuple[nn.Module, str]:
    """The zoo baseline when it is installed; otherwise a briefly trained stand-in (said so in the record)."""
    if zoo_path(name) is not None:
        model, _, _ = load_pretrained(name)
        return model.eval(), "zoo"
    spec = ModelSpec(name, data.num_classes, data.in_channels, data.image_size)
    model = build_model(spec)
    steps = 80 if quick else 2000
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, seed=seed, max_steps_per_epoch=steps)
    train(model, data, cfg, evaluate_test=False)
    return model.eval(), f"trained here: 1 epoch of {steps} steps (no zoo baseline installed)"


@torch.no_grad()
def _outputs(models: dict[str, Any], cache: list[torch.Tensor], y: torch.Tensor) -> dict[str, Outputs]:
    """Outputs of every head kind from one cached backbone pass (pooled features + final logits)."""
    *feats, final = cache
    with torch.no_grad():
        return {
            mode: Outputs([h.classify(f) for h, f in zip(m.heads, feats)], final, y)
            for mode, m in models.items()
        }


def validation_loss(pred: torch.Tensor, outs: Outputs) -> dict[str, float]:
    """Validation accuracy loss in points against the same network without exits, and its standard
    error: the per-image paired difference (right with exits − right without) has mean = the loss and
    standard error std/√n; only images on which the two disagree contribute."""
    d = (pred == outs.labels).double() - (outs.final_logits.argmax(1) == outs.labels).double()
    n = max(1, len(d))
    se = float(d.std(unbiased=True)) / n**0.5 if n > 1 else float("nan")
    return {"val_accuracy_loss_pt": -100 * float(d.mean()), "val_loss_se_pt": 100 * se}


def _search(
    method: str, m: EarlyExitModel, outs: Outputs, tol: float
) -> tuple[list[float], list[float] | None]:
    """(β or thresholds, τ of the hybrid) found on validation outputs with tolerance ``tol``."""
    if method == "confidence":
        return search_thresholds(m, outs, tol).values, None
    if method == "hybrid":
        found, taus = search_hybrid(m, outs, tol)
        return found.values, taus
    return search_betas(m, outs, tol).values, None


def _set(m: EarlyExitModel, values: list[float], taus: list[float] | None) -> None:
    if m.config.mode == "confidence":
        m.set_thresholds(values)
    else:
        m.set_betas(values)
        m.set_thresholds(taus or [1.0] * m.num_exits)


def study_model(
    name: str,
    data: ImageData,
    quick: bool,
    seed: int,
    head_pool: int,
    exits: tuple[str, ...] | None,
    label: str,
    timing: bool = True,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    backbone, source = _backbone(name, data, quick, seed)
    shape = (data.in_channels, data.image_size, data.image_size)
    subset = 8000 if quick else TRAIN_SUBSET
    common = dict(exits=exits, head_pool=head_pool, input_shape=shape, seed=seed, head_epochs=30)
    models = {
        mode: attach_exits(backbone, Config(mode=mode, **common))[0] for mode in ("exclusion", "confidence")
    }
    ee = models["exclusion"]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(data.x_train), generator=gen)[:subset]
    heads_data = dataclasses.replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick])
    started = time.perf_counter()
    feats = pooled_features(ee, heads_data.x_train, progress=True)  # same positions + pool: shared cache
    hist = {mode: train_heads(m, heads_data, progress=True, feats=feats) for mode, m in models.items()}
    head_seconds = time.perf_counter() - started
    # the hybrid (ours) carries both trained heads as they are: the paper's sigmoid head and the
    # baseline's softmax head (training it in hybrid mode gives the same heads: loss.py), no extra training
    models["hybrid"] = attach_exits(backbone, Config(mode="hybrid", **common))[0]
    for h, h_ex, h_conf in zip(models["hybrid"].heads, ee.heads, models["confidence"].heads):
        h.fc.load_state_dict(h_ex.fc.state_dict())
        h.conf.load_state_dict(h_conf.fc.state_dict())
    x_test, y_test = (data.x_test[:2000], data.y_test[:2000]) if quick else (data.x_test, data.y_test)
    x_val, y_val = (data.x_val[:2500], data.y_val[:2500]) if quick else (data.x_val, data.y_val)
    cache_val = pooled_features(ee, x_val, progress=True, final=True)  # the heads share the backbone:
    cache_test = pooled_features(ee, x_test, progress=True, final=True)  # one pass serves every head kind
    val, test = _outputs(models, cache_val, y_val), _outputs(models, cache_test, y_test)
    full_macs = sum(ee.segment_macs)
    base_acc = float((test["exclusion"].final_logits.argmax(1) == y_test).double().mean())
    rows: list[dict[str, Any]] = []
    settings: dict[tuple[str, float], tuple[list[float], list[float] | None]] = {}
    started = time.perf_counter()
    for tol in (0.0, 0.002, MAIN_TOLERANCE) if quick else TOLERANCES:
        for method, (mode, rule) in METHODS.items():
            m = models[mode]
            m.config.rule = rule  # the absolute-threshold variant reuses the same sigmoid heads
            values, taus = _search(method, m, val[mode], tol)
            res = summarize(m, simulate(m, test[mode], values, taus=taus), y_test)
            on_val = simulate(m, val[mode], values, taus=taus)
            m.config.rule = "ratio"
            settings[(method, tol)] = (values, taus)
            rows.append(result_row(label, method, tol, values, taus, res, base_acc))
            rows[-1].update(validation_loss(on_val.pred, val[mode]))
    search_seconds = time.perf_counter() - started
    add_matched(rows)
    main = {
        method: next(r for r in rows if r["method"] == method and r["tolerance"] == MAIN_TOLERANCE)
        for method in METHODS
    }
    out: dict[str, Any] = {
        "model": label,
        "backbone": name,
        "backbone_source": source,
        "exits": list(ee.exit_names),
        "head_pool": head_pool,
        "describe": ee.describe(),
        "no_exit_accuracy": base_acc,
        "no_exit_macs": full_macs,
        "head_training": {k: [round(a, 4) for a in v["head_val_accuracy"]] for k, v in hist.items()},
        "head_pos_weight": hist["exclusion"]["pos_weight"],
        "head_train_samples": hist["exclusion"]["train_samples"],
        "head_seconds": head_seconds,
        "search_seconds": search_seconds,
        "sweep": rows,
        "main": main,
        "test_images": len(y_test),
    }
    if timing:
        timed: dict[str, EarlyExitModel] = {}
        out["lean"], out["exit_costs_us"] = {}, {}
        for method in ("exclusion", "confidence", "hybrid"):
            mode = METHODS[method][0]
            _set(models[mode], *settings[(method, MAIN_TOLERANCE)])
            timed[method] = models[mode]
            # ours, for wall time only: the same setting with the exits that cost more time than they
            # save switched off, by a cost model measured here (drop_costly_exits), timed as "<method>-lean"
            seg_s, exit_s = exit_costs(models[mode], x_test[:BATCH])
            values, taus = drop_costly_exits(
                models[mode], val[mode], *settings[(method, MAIN_TOLERANCE)], seg_s, exit_s, MAIN_TOLERANCE
            )
            out["exit_costs_us"][method] = {
                "segment": [round(1e6 * c, 3) for c in seg_s],
                "exit": [round(1e6 * c, 3) for c in exit_s],
            }
            lean = attach_exits(backbone, Config(mode=mode, **common))[0]
            lean.heads.load_state_dict(models[mode].heads.state_dict())
            _set(lean, values, taus)
            if (values, taus) != tuple(settings[(method, MAIN_TOLERANCE)]):  # else: the same timing
                timed[f"{method}-lean"] = lean
            res = summarize(lean, simulate(lean, test[mode], values, taus=taus), y_test)
            out["lean"][method] = result_row(
                label, f"{method}-lean", MAIN_TOLERANCE, values, taus, res, base_acc
            )
        out.update(time_real_forward(timed, backbone, test, x_test, y_test, quick))
        out["segment_profile"] = segment_profile(ee, x_test[:BATCH])
    out["targets"] = targets(out)
    if not quick:  # ablation: the BCE positive-class weight (simulation only, same cached features)
        out["pos_weight_ablation"] = []
        for pw in POS_WEIGHTS:
            m2 = attach_exits(backbone, Config(mode="exclusion", pos_weight=pw, **common))[0]
            train_heads(m2, heads_data, progress=False, feats=feats)
            v2 = _outputs({"exclusion": m2}, cache_val, y_val)["exclusion"]
            t2 = _outputs({"exclusion": m2}, cache_test, y_test)["exclusion"]
            found = search_betas(m2, v2, MAIN_TOLERANCE)
            res = summarize(m2, simulate(m2, t2, found.values), y_test)
            out["pos_weight_ablation"].append(
                {
                    "pos_weight": pw,
                    "betas": found.values,
                    "test_accuracy": res["accuracy"],
                    "mac_reduction": res["mac_reduction"],
                    "macs_per_image": res["macs_per_image"],
                }
            )
    return out


def run_study(
    out_dir: Path,
    quick: bool,
    seed: int,
    prefix: str = "early_exit",
    plan: list[tuple] | None = None,
    merge: bool = False,
) -> list[dict[str, Any]]:
    """Run the plan (label, zoo model, head pool, exits); ``merge`` keeps the per-model records of
    other labels already in ``out_dir`` in the combined report (models can be run one at a time)."""
    data = load_fashion_mnist(seed=0)  # the zoo's split: its validation images were never trained on
    if plan is None:
        plan = (
            [("vgg-small", "vgg-small", 4, None)]
            if quick
            else [("vgg-small", "vgg-small", 4, None), ("resnet20", "resnet20", 4, None)]
        )
    results: list[dict[str, Any]] = []
    merged: dict[str, dict[str, Any]] = {}  # label -> provenance of a record kept from an earlier run
    if merge:
        labels = {p[0] for p in plan}
        for f in sorted(Path(out_dir).glob(f"{prefix}_*.json")):
            try:
                record = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            res = record.get("results")
            if isinstance(res, dict) and "sweep" in res and res.get("model") not in labels:
                results.append(res)
                merged[res["model"]] = {k: record.get(k) for k in ("created_utc", "config", "versions")}
    config = {
        "plan": plan,
        "quick": quick,
        "tolerances": TOLERANCES,
        "main_tolerance": MAIN_TOLERANCE,
        "batch": BATCH,
        "train_subset": TRAIN_SUBSET,
        "timing_images": TIMING_IMAGES,
        "repeats": REPEATS,
    }
    for label, name, pool, exits, *rest in plan:  # an optional 5th item: time the real forward (default yes)
        print(f"-- {label}: exits {exits or 'default'}, head pool {pool}", flush=True)
        results.append(
            study_model(name, data, quick, seed, pool, exits, label, timing=rest[0] if rest else True)
        )
        write_report(results, Path(out_dir), prefix, config, seed, data.identity, merged)
    return results
