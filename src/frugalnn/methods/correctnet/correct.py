"""The verb: ``correct(model, config, data) -> (compensated model, record)`` (CorrectNet, arXiv 2211.14917).

1. Fine-tune the digital model with cross-entropy + λ·Σ_l ‖W_lᵀW_l − βI‖² (lipschitz.py).
2. Place compensation modules (compensation.py): none, all layers, given layers, or searched by
   REINFORCE (placement.py) on a weight-shared supernet: modules after every layer trained with a
   random subset switched on per step, each candidate placement scored on the same noisy chips.
3. Train the chosen modules on noisy forward passes through the analog model (a batch of chips per
   step, gradients straight through the analog layers); the network's own weights stay frozen.
The model handed back is digital (CPU); its compensation modules stay digital on a chip.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from frugalnn.core.config import FieldError
from frugalnn.core.train import check_device
from frugalnn.errors import DataError, UnsupportedModelError
from frugalnn.hw.crossbar import convert_to_analog
from frugalnn.hw.crossbar_mc import forward_chips, program_chips
from frugalnn.methods.correctnet.compensation import (
    compensations,
    insert_compensation,
    mappable_layers,
    overhead,
    set_enabled,
)
from frugalnn.methods.correctnet.config import CorrectNetConfig
from frugalnn.methods.correctnet.lipschitz import lipschitz_finetune
from frugalnn.methods.correctnet.placement import reinforce_placement


def _split(data: Any, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return getattr(data, f"x_{which}"), getattr(data, f"y_{which}")
    except AttributeError:
        raise DataError(
            f"data has no x_{which}/y_{which}; pass an ImageData (frugalnn.core.data) or an object with "
            "x_train, y_train, x_val, y_val tensors"
        ) from None


def train_compensation(
    model: nn.Module, config: CorrectNetConfig, x: torch.Tensor, y: torch.Tensor, steps: int,
    random_subsets: bool = False, seed_offset: int = 0, progress: bool = True,
) -> nn.Module:  # fmt: skip
    """Adam on the compensation modules of ``model`` (in place) over noisy chips; other weights frozen.

    ``random_subsets``: each step switches every module on with probability ½ (the search's supernet).
    """
    comps = compensations(model)
    if not comps or steps == 0:
        return model
    device = check_device(config.device)
    analog = convert_to_analog(model, config.crossbar()).to(device)
    for p in analog.parameters():
        p.requires_grad_(False)
    analog_comps = compensations(analog)
    params = [p for c in analog_comps.values() for p in c.parameters()]
    for p in params:
        p.requires_grad_(True)
    analog.eval()  # batch-norm statistics stay those of the digital model
    opt = torch.optim.Adam(params, lr=config.comp_lr)
    gen = torch.Generator().manual_seed(config.seed + 7919 * (seed_offset + 1))
    names = list(analog_comps)
    for _ in tqdm(range(steps), desc="compensation training", disable=not progress):
        if random_subsets:
            on = torch.rand(len(names), generator=gen) < 0.5
            on[torch.randint(0, len(names), (1,), generator=gen)] = True  # at least one module learns
            set_enabled(analog, {n for n, o in zip(names, on.tolist(), strict=True) if o})
        chips = program_chips(analog, config.train_chips, gen, str(device))
        idx = torch.randint(0, len(x), (config.batch_size,), generator=gen)
        logits = forward_chips(analog, x[idx].to(device), chips)
        target = y[idx].to(device).repeat(config.train_chips)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    set_enabled(analog, None)
    for name, comp in compensations(model).items():
        comp.load_state_dict({k: v.detach().cpu() for k, v in analog_comps[name].state_dict().items()})
    return model


def _search(
    model: nn.Module, config: CorrectNetConfig, data: Any, candidates: list[str], example: torch.Tensor,
    progress: bool,
) -> tuple[tuple[str, ...], dict[str, Any]]:  # fmt: skip
    x_tr, y_tr = _split(data, "train")
    x_val, y_val = _split(data, "val")
    x_val, y_val = x_val[: config.search_images], y_val[: config.search_images]
    insert_compensation(model, candidates, config.comp_rank)
    train_compensation(model, config, x_tr, y_tr, config.comp_steps, random_subsets=True, progress=progress)
    device = check_device(config.device)
    analog = convert_to_analog(model, config.crossbar()).to(device).eval()
    chips = program_chips(
        analog, config.search_chips, torch.Generator().manual_seed(config.seed + 1), str(device)
    )
    per_layer = {n: overhead(model, [n], config.comp_rank, example)["overhead_macs_pct"] for n in candidates}

    def score(placement: tuple[str, ...]) -> tuple[float, float]:
        set_enabled(analog, set(placement))
        hits = torch.zeros(config.search_chips)
        with torch.no_grad():
            for i in range(0, len(x_val), 256):
                logits = forward_chips(analog, x_val[i : i + 256].to(device), chips)
                hits += (logits.argmax(-1).cpu() == y_val[i : i + 256]).sum(1)
        return float(hits.mean() / len(x_val)), sum(per_layer[n] for n in placement)

    result = reinforce_placement(
        candidates, score, budget_pct=config.overhead_budget_pct, overhead_weight=config.overhead_weight,
        iterations=config.search_iters, samples=config.search_samples, seed=config.seed, progress=progress,
    )  # fmt: skip
    return result.best, result.to_dict()


def correct(
    model: nn.Module, config: CorrectNetConfig, data: Any = None, progress: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """CorrectNet on any model with Linear/Conv2d layers; ``data`` holds x_train, y_train, x_val, y_val."""
    config.validate()
    if data is None:
        raise DataError("correct needs data (x_train, y_train, x_val, y_val): pass data=ImageData")
    x_tr, y_tr = _split(data, "train")
    model = copy.deepcopy(model).cpu()
    candidates = mappable_layers(model)
    if not candidates:
        raise UnsupportedModelError("the model has no Linear/Conv2d layer a crossbar can hold")
    if config.placement == "given":
        unknown = [n for n in config.layers if n not in candidates]
        if unknown:
            raise FieldError(
                "layers", f"name {unknown[0]!r}, which is no mappable layer; known: {', '.join(candidates)}"
            )
    device = check_device(config.device)
    example = x_tr[:1]
    record: dict[str, Any] = {"config": config.to_dict(), "candidates": candidates}
    if config.lipschitz_weight > 0 and config.lipschitz_steps > 0:
        layers = {n: model.get_submodule(n) for n in candidates}
        record["lipschitz"] = lipschitz_finetune(
            model, layers, x_tr, y_tr, weight=config.lipschitz_weight, beta=config.beta,
            steps=config.lipschitz_steps, lr=config.lipschitz_lr, batch_size=config.batch_size,
            seed=config.seed, device=device, progress=progress,
        )  # fmt: skip
        model.cpu().eval()
    if config.placement == "search":
        placement, record["search"] = _search(
            copy.deepcopy(model), config, data, candidates, example, progress
        )
    else:
        placement = {"none": (), "all": tuple(candidates), "given": config.layers}[config.placement]
    placement = tuple(n for n in candidates if n in placement)  # network order
    insert_compensation(model, placement, config.comp_rank)
    train_compensation(model, config, x_tr, y_tr, config.comp_steps, seed_offset=1, progress=progress)
    model.eval()
    record["placement"] = list(placement)
    record["overhead"] = overhead(model, placement, config.comp_rank, example)
    return model, record


def search_placement(
    model: nn.Module, config: CorrectNetConfig, data: Any, progress: bool = True
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Only the placement search (no Lipschitz fine-tune, no final training): (placement, search record)."""
    config.validate()
    candidates = mappable_layers(model)
    if not candidates:
        raise UnsupportedModelError("the model has no Linear/Conv2d layer a crossbar can hold")
    x_tr, _ = _split(data, "train")
    return _search(copy.deepcopy(model).cpu(), config, data, candidates, x_tr[:1], progress)
