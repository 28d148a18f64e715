"""The iterative loop: (regularised) train → score → remove filters → fine-tune, with the stopping rules.

Stopping rules (spec): the MAC target is reached; or, in paper mode (no target), no filter scores
below ``min_class_score`` any more; or validation accuracy falls below the floor, in which case the
previous round's model is kept.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy, count_macs, count_params
from frugalnn.core.train import TrainConfig, train
from frugalnn.errors import CheckpointError, ConfigError
from frugalnn.methods.class_pruning.config import Config
from frugalnn.methods.class_pruning.distill import make_kd_loss
from frugalnn.methods.class_pruning.graph import ChannelGraph, MacModel, check_supported, prune_channels
from frugalnn.methods.class_pruning.importance import class_aware_scores, l1_scores, taylor_scores
from frugalnn.methods.class_pruning.regularizers import make_regularizer


def _round_keep(n: int, keep: float, round_to: int) -> int:
    """Nearest multiple of round_to (at least round_to, at most n) — CPU kernels like 4/8-wide channels."""
    if n <= round_to:
        return n
    return int(min(n, max(round_to, round_to * round(keep / round_to))))


def allocate_uniform(
    scores: dict[str, torch.Tensor],
    macs: MacModel,
    budget: float,
    round_to: int,
    base: dict[str, int] | None = None,
) -> dict[str, list[int]]:
    """Keep the same share (1 − r) of every group's *dense* width ``base`` (lowest scores go first);
    bisect r to fit the MAC budget, then hand back whole ``round_to`` chunks the rounding took in excess."""
    sizes = {g: len(s) for g, s in scores.items()}
    base = {g: base.get(g, n) for g, n in sizes.items()} if base else dict(sizes)

    def counts(r: float) -> dict[str, int]:
        return {g: min(n, _round_keep(base[g], base[g] * (1 - r), round_to)) for g, n in sizes.items()}

    if macs.macs(counts(1.0)) > budget:
        raise ConfigError(
            f"MAC target unreachable: even {round_to} channels per layer exceed it; raise --target-flops "
            "or lower round_to"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if macs.macs(counts(mid)) <= budget else (mid, hi)
    keep = counts(hi)
    grown = True
    while grown:  # give back chunks, thinnest layer (relative to dense) first, while the budget holds
        grown = False
        for g in sorted(keep, key=lambda g: keep[g] / base[g]):
            trial = {**keep, g: min(sizes[g], keep[g] + round_to)}
            if trial[g] > keep[g] and macs.macs(trial) <= budget:
                keep, grown = trial, True
                break
    return {g: torch.argsort(s)[: sizes[g] - keep[g]].tolist() for g, s in scores.items()}


def allocate_global(
    scores: dict[str, torch.Tensor],
    macs: MacModel,
    budget: float | None,
    round_to: int,
    qualify: float | None,
) -> dict[str, list[int]]:
    """Greedy over the whole network: repeatedly drop the chunk of ``round_to`` lowest-scored channels
    whose mean score is the lowest anywhere, until the MAC budget holds.

    Paper mode (budget None): drop chunks whose channels all score below ``qualify`` until none does.
    """
    order = {g: torch.argsort(s) for g, s in scores.items()}
    keep = {g: len(s) for g, s in scores.items()}

    def next_chunk(g: str) -> tuple[float, int] | None:
        n = keep[g]
        target = _round_keep(len(scores[g]), n - 1, round_to) if n > round_to else n
        while target >= n and target > round_to:  # nearest-rounding may land on n: go one step lower
            target -= round_to
        if target >= n or target < min(round_to, len(scores[g])):
            return None
        chunk = scores[g][order[g][len(scores[g]) - n : len(scores[g]) - target]]
        if qualify is not None and budget is None and float(chunk.max()) >= qualify:
            return None
        return float(chunk.mean()), n - target

    while budget is None or macs.macs(keep) > budget:
        options = [(c[0], g, c[1]) for g in scores if (c := next_chunk(g)) is not None]
        if not options:
            if budget is None:
                break
            raise ConfigError(
                f"MAC target unreachable with at least {round_to} channels per layer; raise --target-flops"
            )
        _, g, size = min(options)
        keep[g] -= size
    return {g: order[g][: len(s) - keep[g]].tolist() for g, s in scores.items()}


def filter_scores(model: nn.Module, config: Config, data: ImageData, seed: int) -> tuple[dict, dict | None]:
    """Per-conv scores for the configured criterion (+ raw class scores for the histogram)."""
    if config.method == "l1":
        return l1_scores(model), None
    if config.method == "taylor":
        images = config.images_per_class * data.num_classes
        return taylor_scores(model, data.x_train, data.y_train, images, seed), None
    cs = class_aware_scores(
        model,
        data.x_train,
        data.y_train,
        data.num_classes,
        config.images_per_class,
        config.score_threshold,
        seed,
        config.relative_threshold,
    )
    return cs.ranking(), cs.score


def group_scores(graph: ChannelGraph, per_conv: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A group's channel score = mean over the convs writing those channels (Torch-Pruning's default)."""
    return {g.root: torch.stack([per_conv[c] for c in g.out_convs]).mean(0) for g in graph.groups}


def finetune_config(config: Config, steps: int, train_size: int, seed: int) -> TrainConfig:
    """A TrainConfig of exactly ``steps`` SGD steps (cosine over them), split into equal passes when
    ``steps`` exceeds one epoch (core.train caps a pass at one epoch)."""
    per_epoch = max(1, train_size // config.batch_size)
    epochs = -(-steps // per_epoch)
    if steps % epochs:
        raise ConfigError(
            f"{steps} steps do not split into {epochs} equal passes; use a multiple of {epochs}"
        )
    return TrainConfig(
        epochs=epochs, batch_size=config.batch_size, lr=config.lr, weight_decay=5e-4, seed=seed,
        max_steps_per_epoch=steps // epochs, device=config.device,
    )  # fmt: skip


def _finetune(
    model: nn.Module,
    data: ImageData,
    config: Config,
    steps: int,
    seed: int,
    reg: Callable | None,
    progress: bool,
    loss_fn: Callable | None = None,
) -> None:
    if steps <= 0:
        return
    tc = finetune_config(config, steps, len(data.x_train), seed)
    no_val = replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])  # we evaluate once per round
    train(model, no_val, tc, extra_loss=reg, loss_fn=loss_fn, progress=progress, evaluate_test=False)
    model.cpu()  # scoring, physical pruning and evaluation work on the CPU copy


def _val(model: nn.Module, data: ImageData, images: int | None) -> float:
    if not len(data.x_val):
        return float("nan")
    return accuracy(model, data.x_val[:images], data.y_val[:images])


def prune(
    model: nn.Module, config: Config, data: ImageData, *, progress: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Prune a trained CNN to ``config.target_flops`` of its MACs; returns a new thinner model + record."""
    config.validate()
    check_supported(model)
    start = time.perf_counter()
    model = copy.deepcopy(model)
    example = data.x_train[:1]
    try:
        with torch.no_grad():
            out = model.eval()(example)
    except RuntimeError as err:
        raise CheckpointError(
            f"the model does not accept {data.name} images ({err}); use a model trained on it"
        ) from None
    if out.shape[-1] != data.num_classes:
        raise CheckpointError(
            f"the model predicts {out.shape[-1]} classes, {data.name} has {data.num_classes}; "
            "use a model trained on this data set"
        )
    dense_macs = count_macs(model, example)
    dense = {
        "macs": dense_macs,
        "params": count_params(model),
        "val_accuracy": _val(model, data, config.val_images),
    }
    reg = make_regularizer(config.orth_weight, config.l1_weight) if config.regularized else None
    # the teacher is the model as handed in (before any regularised training), frozen
    kd = (
        make_kd_loss(copy.deepcopy(model), config.distill_weight, config.distill_temperature)
        if config.distill_weight > 0
        else None
    )
    record: dict[str, Any] = {
        "config": asdict(config), "allocation_used": config.resolved_allocation, "dense": dense, "rounds": [],
        "histogram": None,
    }  # fmt: skip
    train_steps = 0
    if reg is not None and config.pretrain_steps:
        _finetune(model, data, config, config.pretrain_steps, config.seed * 1000 + 999, reg, progress, kd)
        train_steps += config.pretrain_steps
    stop = "target reached"
    base_widths = ChannelGraph(model, example).counts()
    bar = tqdm(range(1, config.iterations + 1), desc=f"prune {config.method}", disable=not progress)
    for rnd in bar:
        budget = (
            None
            if config.target_flops is None
            else dense_macs * config.target_flops ** (rnd / config.iterations)
        )
        per_conv, raw = filter_scores(model, config, data, config.seed * 1000 + rnd)
        graph = ChannelGraph(model, example)
        scores = group_scores(graph, per_conv)
        if config.resolved_allocation == "uniform" and budget is not None:
            removals = allocate_uniform(scores, MacModel(graph), budget, config.round_to, base_widths)
        else:
            removals = allocate_global(
                scores, MacModel(graph), budget, config.round_to, config.min_class_score
            )
        if not any(removals.values()):
            stop = "no filter qualifies"
            break
        if raw is not None and record["histogram"] is None:
            record["histogram"] = _histogram(graph, raw, removals, data.num_classes)
        previous = copy.deepcopy(model) if config.max_accuracy_drop is not None else None
        prune_channels(model, example, removals)
        _finetune(model, data, config, config.finetune_steps, config.seed * 1000 + rnd, reg, progress, kd)
        train_steps += config.finetune_steps
        row = {
            "round": rnd,
            "macs": count_macs(model, example),
            "params": count_params(model),
            "val_accuracy": _val(model, data, config.val_images),
        }
        row["removed"] = sum(len(v) for v in removals.values())
        record["rounds"].append(row)
        bar.set_postfix(macs=f"{row['macs'] / dense_macs:.2f}", val=f"{row['val_accuracy']:.4f}")
        if previous is not None and row["val_accuracy"] < dense["val_accuracy"] - config.max_accuracy_drop:
            model, stop = previous, f"validation accuracy below floor in round {rnd}; kept round {rnd - 1}"
            break
    final_steps = config.final_steps
    if config.equal_budget and reg is None:
        final_steps += config.pretrain_steps  # the steps class-aware spent on regularised pre-training
    # after the last round nothing is left to prune, so the final fine-tune drops the regulariser
    _finetune(model, data, config, final_steps, config.seed * 1000 + 500, None, progress, kd)
    train_steps += final_steps
    macs = count_macs(model, example)
    record.update(
        stop_reason=stop,
        train_steps=train_steps,
        macs=macs,
        params=count_params(model),
        mac_reduction=1 - macs / dense_macs,
        val_accuracy=_val(model, data, config.val_images),
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        widths={n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
        seconds=time.perf_counter() - start,
    )
    return model, record


def _histogram(
    graph: ChannelGraph, raw: dict[str, torch.Tensor], removals: dict[str, list[int]], num_classes: int
) -> dict[str, list[int]]:
    """Filters kept / removed in the first round per class-importance bin (score rounded to a class count)."""
    kept, removed = [0] * (num_classes + 1), [0] * (num_classes + 1)
    for g in graph.groups:
        gone = set(removals.get(g.root, []))
        for conv in g.out_convs:
            for c, s in enumerate(raw[conv].tolist()):
                (removed if c in gone else kept)[min(num_classes, round(s))] += 1
    return {"bins": list(range(num_classes + 1)), "kept": kept, "removed": removed}
