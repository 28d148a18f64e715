"""Training of basis and coefficients (joint or alternating) with the group-lasso regulariser.

Loss: cross-entropy of the network whose kernels are B[:h]·Q(C) (straight-through round for Q), plus
R = group_reg · Σ_{layer, row tile, group} √|block| · ‖C_block‖₂ (group lasso). R is applied by its
proximal operator after each Adam step, C_block ← C_block · max(0, 1 − lr·group_reg·√|block| / ‖C_block‖),
so whole blocks reach exactly zero: a row tile then needs no ADC conversions or MACs for that group,
and its reads can go to the crossbars of the groups it still uses (hw/basis_cost.py).
``plain_finetune`` runs the same loop on the unconverted network: the control for accuracy and time.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.data import ImageData
from frugalnn.core.train import _batch_generator, augment_batch
from frugalnn.methods.basisn.config import BasisNConfig
from frugalnn.methods.basisn.layers import basis_layers


def group_blocks(coef: torch.Tensor, row_tiles: int, group_size: int) -> torch.Tensor:
    """View (n_basis, t·N) coefficients as (groups, group_size, t, N) blocks (last group zero-padded)."""
    n_basis, cols = coef.shape
    groups = math.ceil(n_basis / group_size)
    padded = F.pad(coef, (0, 0, 0, groups * group_size - n_basis))
    return padded.reshape(groups, group_size, row_tiles, cols // row_tiles)


def active_blocks(model: nn.Module, group_size: int) -> dict[str, torch.Tensor]:
    """Per basis layer, a (groups, row_tiles) bool map: does the row tile use the group (any Q(c) ≠ 0)?"""
    out = {}
    with torch.no_grad():
        for name, m in basis_layers(model):
            blocks = group_blocks(m.quantized_coef(), m.row_tiles, group_size)
            out[name] = blocks.ne(0).any(dim=3).any(dim=1)
    return out


def _prox_group_lasso(model: nn.Module, tau: float, group_size: int) -> None:
    with torch.no_grad():
        for _, m in basis_layers(model):
            blocks = group_blocks(m.coef, m.row_tiles, group_size)
            norm = blocks.square().sum(dim=(1, 3), keepdim=True).sqrt()
            size = blocks.shape[1] * blocks.shape[3]
            shrink = torch.clamp(1 - tau * math.sqrt(size) / norm.clamp_min(1e-12), min=0.0)
            m.coef.copy_((blocks * shrink).reshape(-1, m.coef.shape[1])[: m.coef.shape[0]])


def _loop(
    model: nn.Module, data: ImageData, config: BasisNConfig, progress: bool, basis_mode: bool
) -> dict[str, Any]:
    torch.manual_seed(config.seed)
    layers = basis_layers(model) if basis_mode else []
    coef_ids = {id(p) for _, m in layers for p in (m.coef, m.coef_scale)}
    basis_ids = {id(layers[0][1].basis.weight)} if layers else set()
    params = list(model.parameters())  # deduplicated: the shared basis appears once
    opt = torch.optim.Adam(params, lr=config.lr)
    n = len(data.x_train)
    per_epoch = max(1, n // config.batch_size)
    flip = data.name == "fashion-mnist" or data.name.startswith("cifar")
    augment = data.x_train.shape[-1] >= 28
    model.train()
    losses: list[float] = []
    order = torch.empty(0, dtype=torch.long)
    start = time.perf_counter()
    for step in tqdm(range(config.steps), desc="basisn train" if basis_mode else "plain fine-tune",
                     disable=not progress, mininterval=1.0):  # fmt: skip
        epoch, s = divmod(step, per_epoch)
        if s == 0:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
        idx = order[s * config.batch_size : (s + 1) * config.batch_size]
        xb, yb = data.x_train[idx], data.y_train[idx]
        if augment:
            xb = augment_batch(xb, _batch_generator(config.seed, epoch, s), flip)
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if basis_mode and config.schedule == "alternating":  # even steps: basis; odd steps: coefficients
            frozen = coef_ids if step % 2 == 0 else basis_ids
            for p in params:
                if id(p) in frozen:
                    p.grad = None  # Adam leaves a parameter without gradient untouched
        opt.step()
        if basis_mode and config.group_reg > 0:
            _prox_group_lasso(model, lr * config.group_reg, config.group_size)
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    model.eval()
    tail = losses[-min(50, len(losses)) :] if losses else [float("nan")]
    return {"steps": config.steps, "seconds": seconds, "seconds_per_step": seconds / max(1, config.steps),
            "final_loss": sum(tail) / len(tail)}  # fmt: skip


def train_basisn(
    model: nn.Module, data: ImageData, config: BasisNConfig, progress: bool = False
) -> dict[str, Any]:
    """Train a basis network in place; returns steps, seconds, loss and the share of active groups."""
    if not basis_layers(model):
        from frugalnn.errors import UnsupportedModelError

        raise UnsupportedModelError("model has no basis layers; convert it with to_basisn first")
    out = _loop(model, data, config, progress, basis_mode=True)
    maps = active_blocks(model, config.group_size)
    total = sum(int(v.numel()) for v in maps.values())
    out["active_group_share"] = sum(int(v.sum()) for v in maps.values()) / max(1, total)
    return out


def plain_finetune(
    model: nn.Module, data: ImageData, config: BasisNConfig, progress: bool = False
) -> dict[str, Any]:
    """The same steps, optimiser and batches on the plain network (the float control)."""
    return _loop(model, data, config, progress, basis_mode=False)
