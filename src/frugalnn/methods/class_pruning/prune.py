"""Filter pruning in two pieces, as Torch-Pruning splits it.

``prune_step(model, example_inputs, importance, ratio)``: one data-light step — score the filters with an
importance object, choose what to remove to fit the MAC budget, remove it physically (dependency-aware).

``prune_and_finetune(model, config, data)``: the paper's iterative loop — (regularised) train → score →
remove → fine-tune, with the stopping rules: the MAC target is reached; or, in paper mode (ratio None),
no filter scores below ``min_class_score`` any more; or validation accuracy falls below the floor, in
which case the previous round's model is kept. ``data`` is an ``ImageData``, an (x, y) pair of tensors,
a ``DataLoader`` or any iterable of (x, y) batches. Test-set evaluation is the caller's.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.data import ImageData
from frugalnn.core.measure import accuracy, count_macs, count_params
from frugalnn.core.train import TrainConfig, train
from frugalnn.errors import CheckpointError, ConfigError, DataError
from frugalnn.methods.class_pruning.allocate import allocate_global, allocate_uniform
from frugalnn.methods.class_pruning.config import Config
from frugalnn.methods.class_pruning.distill import make_kd_loss
from frugalnn.methods.class_pruning.graph import ChannelGraph, MacModel, check_supported, prune_channels
from frugalnn.methods.class_pruning.importance import (
    ClassAwareImportance,
    L1Importance,
    TaylorImportance,
)
from frugalnn.methods.class_pruning.regularizers import make_regularizer

Importance = Callable[[nn.Module, int], dict[str, torch.Tensor]]


def group_scores(graph: ChannelGraph, per_conv: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A group's channel score = mean over the convs writing those channels (Torch-Pruning's default)."""
    return {g.root: torch.stack([per_conv[c] for c in g.out_convs]).mean(0) for g in graph.groups}


@torch.no_grad()
def _macs(model: nn.Module, example_inputs: torch.Tensor) -> int:
    return count_macs(model, example_inputs)


def prune_step(
    model: nn.Module,
    example_inputs: torch.Tensor,
    importance: Importance,
    ratio: float | None,
    *,
    round_to: int = 4,
    allocation: str = "uniform",
    base_widths: dict[str, int] | None = None,
    min_class_score: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Remove the lowest-scored output channels of ``model`` in place, ``ratio`` of its current MACs.

    ``importance(model, seed)`` scores every conv's filters (``L1Importance()``, ``TaylorImportance``,
    ``ClassAwareImportance`` or any callable of that shape). ``allocation`` ``uniform`` removes the same
    share of each channel group's ``base_widths`` (default: its current width), ``global`` ranks all
    groups on one scale. ``ratio`` None (global only): remove every chunk whose channels all score below
    ``min_class_score``. Returns a record: MACs before/after, channels removed per group.
    """
    if ratio is not None and not 0.0 <= ratio < 1.0:
        raise ConfigError(f"ratio must lie in [0, 1) (share of MACs removed), got {ratio}")
    if ratio is None and allocation != "global":
        raise ConfigError("ratio None (remove what qualifies) needs allocation='global'")
    check_supported(model)
    before = _macs(model, example_inputs)
    graph = ChannelGraph(model, example_inputs)
    scores = group_scores(graph, importance(model, seed))
    budget = None if ratio is None else before * (1.0 - ratio)
    if allocation == "uniform":
        removals = allocate_uniform(scores, MacModel(graph), budget, round_to, base_widths)
    else:
        removals = allocate_global(scores, MacModel(graph), budget, round_to, min_class_score)
    raw = getattr(importance, "raw", None)
    classes = getattr(importance, "num_classes", None)
    histogram = _histogram(graph, raw, removals, classes) if raw is not None and classes else None
    if any(removals.values()):
        prune_channels(model, example_inputs, removals)
    return {
        "macs_before": before,
        "macs_after": _macs(model, example_inputs),
        "removed": {g: len(v) for g, v in removals.items() if v},
        "histogram": histogram,
    }


def as_image_data(data: Any, val_data: Any = None, num_classes: int | None = None) -> ImageData:
    """An ``ImageData`` from what a user has: ImageData, an (x, y) pair, a DataLoader or any iterable of
    (x, y) batches (concatenated in memory). ``val_data`` takes the same forms (default: none)."""
    if isinstance(data, ImageData):
        return data if val_data is None else replace(data, **_xy("val", val_data))
    train_xy = _tensors(data)
    val_xy = _tensors(val_data) if val_data is not None else (train_xy[0][:0], train_xy[1][:0])
    classes = num_classes or int(torch.cat([train_xy[1], val_xy[1]]).max()) + 1
    return ImageData(
        "user-data", *train_xy, *val_xy, train_xy[0][:0], train_xy[1][:0], classes,
        {"name": "user-data", "train_images": len(train_xy[0]), "val_images": len(val_xy[0])},
    )  # fmt: skip


def _xy(split: str, data: Any) -> dict[str, torch.Tensor]:
    x, y = _tensors(data)
    return {f"x_{split}": x, f"y_{split}": y}


def _tensors(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, Iterable):
        batches = [(b[0], b[1]) for b in data]
        if not batches:
            raise DataError("the data iterable yielded no (x, y) batches; pass at least one batch")
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    else:
        raise DataError(
            f"data must be ImageData, an (x, y) pair of tensors or an iterable of (x, y) batches, "
            f"got {type(data).__name__}"
        )
    if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
        raise DataError(f"need images (N, C, H, W) and N labels, got x {tuple(x.shape)}, y {tuple(y.shape)}")
    return x.float(), y.long()


def importance_for(config: Config, data: ImageData) -> Importance:
    """The importance object ``config.method`` names, on the training images."""
    if config.method == "l1":
        return L1Importance()
    if config.method == "taylor":
        return TaylorImportance(data.x_train, data.y_train, config.images_per_class * data.num_classes)
    return ClassAwareImportance(
        data.x_train, data.y_train, data.num_classes, config.images_per_class, config.score_threshold,
        config.relative_threshold,
    )  # fmt: skip


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
    model: nn.Module, data: ImageData, config: Config, steps: int, seed: int, reg: Callable | None,
    progress: bool, loss_fn: Callable | None = None,
) -> None:  # fmt: skip
    if steps <= 0:
        return
    tc = finetune_config(config, steps, len(data.x_train), seed)
    no_val = replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])  # we evaluate once per round
    train(model, no_val, tc, extra_loss=reg, loss_fn=loss_fn, progress=progress, evaluate_test=False)
    model.cpu()  # scoring, physical pruning and evaluation work on the CPU copy


def _val(model: nn.Module, data: ImageData, images: int | None) -> float | None:
    if not len(data.x_val):
        return None
    return accuracy(model, data.x_val[:images], data.y_val[:images])


def _check_model_fits(model: nn.Module, data: ImageData, example: torch.Tensor) -> None:
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


def prune_and_finetune(
    model: nn.Module, config: Config, data: Any, val_data: Any = None, *, progress: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Prune a trained CNN by ``config.ratio`` of its MACs with fine-tuning; returns a new thinner model
    (the one handed in is not changed) and a record (MACs, parameters, validation accuracy per round)."""
    config.validate()
    check_supported(model)
    start = time.perf_counter()
    model = copy.deepcopy(model)
    data = as_image_data(data, val_data)
    example = data.x_train[:1]
    _check_model_fits(model, data, example)
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
        "config": config.to_dict(), "allocation_used": config.resolved_allocation, "dense": dense,
        "rounds": [], "histogram": None,
    }  # fmt: skip
    train_steps = 0
    if reg is not None and config.pretrain_steps:
        _finetune(model, data, config, config.pretrain_steps, config.seed * 1000 + 999, reg, progress, kd)
        train_steps += config.pretrain_steps
    stop = "target reached"
    base_widths = ChannelGraph(model, example).counts()
    importance = importance_for(config, data)
    allocation = config.resolved_allocation if config.ratio is not None else "global"
    bar = tqdm(range(1, config.iterations + 1), desc=f"prune {config.method}", disable=not progress)
    for rnd in bar:
        step_ratio = None
        if config.ratio is not None:  # round budget dense·(1 − ratio)^(rnd/iterations), from the current MACs
            budget = dense_macs * (1.0 - config.ratio) ** (rnd / config.iterations)
            step_ratio = max(0.0, 1.0 - budget / count_macs(model, example))
        previous = copy.deepcopy(model) if config.max_accuracy_drop is not None else None
        step = prune_step(
            model, example, importance, step_ratio, round_to=config.round_to, allocation=allocation,
            base_widths=base_widths, min_class_score=config.min_class_score, seed=config.seed * 1000 + rnd,
        )  # fmt: skip
        if not step["removed"]:
            stop = "no filter qualifies"
            break
        if record["histogram"] is None:
            record["histogram"] = step["histogram"]
        _finetune(model, data, config, config.finetune_steps, config.seed * 1000 + rnd, reg, progress, kd)
        train_steps += config.finetune_steps
        row = {
            "round": rnd,
            "macs": count_macs(model, example),
            "params": count_params(model),
            "val_accuracy": _val(model, data, config.val_images),
            "removed": sum(step["removed"].values()),
        }
        record["rounds"].append(row)
        bar.set_postfix(macs=f"{row['macs'] / dense_macs:.2f}", val=f"{row['val_accuracy'] or 0:.4f}")
        floor_broken = (
            previous is not None
            and row["val_accuracy"] is not None
            and row["val_accuracy"] < dense["val_accuracy"] - config.max_accuracy_drop
        )
        if floor_broken:
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
        widths={n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
        seconds=time.perf_counter() - start,
    )
    return model, record


prune = prune_and_finetune  # the method's verb under its short name


def _histogram(
    graph: ChannelGraph, raw: dict[str, torch.Tensor], removals: dict[str, list[int]], num_classes: int
) -> dict[str, list[int]]:
    """Filters kept / removed per class-importance bin (score rounded to a class count)."""
    kept, removed = [0] * (num_classes + 1), [0] * (num_classes + 1)
    for g in graph.groups:
        gone = set(removals.get(g.root, []))
        for conv in g.out_convs:
            for c, s in enumerate(raw[conv].tolist()):
                (removed if c in gone else kept)[min(num_classes, round(s))] += 1
    return {"bins": list(range(num_classes + 1)), "kept": kept, "removed": removed}
