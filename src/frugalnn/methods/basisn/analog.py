"""Analog evaluation: the basis on simulated RRAM crossbars, coefficients combined digitally.

The basis matrix Bᵀ (n_basis outputs × rows inputs) is programmed with ``hw.crossbar.program_weight``
(conductance levels, lognormal variation per cell, differential pairs) and every chunk x_t of every
layer's (im2col) input is read against it with ``hw.crossbar.analog_matmul`` (DAC, output and read noise,
ADC): p_t = x_t·B (analog); then y_n = Σ_t Σ_j Q(c)_{j,t,n}·p_{t,j} + bias (digital, exact). A new chip
(variation draw) per Monte-Carlo draw; the mean and worst accuracy over draws are reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.measure import accuracy
from frugalnn.errors import ConfigError
from frugalnn.hw.crossbar import CrossbarConfig, analog_matmul, program_weight
from frugalnn.methods.basisn.convert import shared_basis
from frugalnn.methods.basisn.layers import BasisConv2d, basis_layers


def analog_columns(
    layer: Any, x2d: torch.Tensor, chip: tuple[Any, CrossbarConfig, torch.Generator]
) -> torch.Tensor:
    """(M, K) inputs -> (M, N) outputs of one basis layer through the programmed basis."""
    prog, config, gen = chip
    m, t, h = x2d.shape[0], layer.row_tiles, layer.chunk_height
    rows = layer.basis.height
    xt = F.pad(x2d, (0, t * h - layer.k_in)).reshape(m * t, h)
    p = analog_matmul(F.pad(xt, (0, rows - h)), prog, config, gen)  # (m·t, n_basis)
    q = layer.quantized_coef().reshape(-1, t, layer.n_out)
    y = torch.einsum("mtj,jtn->mn", p.reshape(m, t, -1), q)
    return y if layer.bias is None else y + layer.bias


def _analog_forward(layer: Any, x: torch.Tensor) -> torch.Tensor:
    chip = layer.basis.chip
    if not isinstance(layer, BasisConv2d):
        return analog_columns(layer, x.reshape(-1, layer.k_in), chip).reshape(*x.shape[:-1], layer.n_out)
    b, _, hh, ww = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    ho = (hh + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (ww + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    y = analog_columns(layer, cols.transpose(1, 2).reshape(b * ho * wo, -1), chip)
    return y.reshape(b, ho * wo, -1).transpose(1, 2).reshape(b, -1, ho, wo)


@contextmanager
def on_crossbars(model: nn.Module, config: CrossbarConfig, generator: torch.Generator) -> Iterator[nn.Module]:
    """Within the block, every basis layer of ``model`` runs through one freshly programmed chip."""
    basis = shared_basis(model)
    if config.rows != basis.height:
        raise ConfigError(
            f"CrossbarConfig rows={config.rows} differ from the basis height {basis.height}; "
            f"use CrossbarConfig(rows={basis.height}, cols={basis.height})"
        )
    prog = program_weight(basis.weight.detach().T, config, generator)
    noise = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    basis.chip = (prog, config, noise)
    hooks = [m.register_forward_hook(lambda mod, inp, _out: _analog_forward(mod, inp[0]))
             for _, m in basis_layers(model)]  # fmt: skip
    try:
        yield model
    finally:
        for h in hooks:
            h.remove()
        basis.chip = None


def analog_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: CrossbarConfig,
    draws: int = 5,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = False,
) -> dict[str, Any]:
    """Accuracy over ``draws`` chips (variation draws of the basis conductances): mean, std, min, max."""
    if draws < 1:
        raise ConfigError(f"draws={draws} must be >= 1; pass the number of chips to sample")
    gen = torch.Generator().manual_seed(seed)
    per_draw = []
    model.eval()
    for _ in tqdm(range(draws), desc="analog chips", disable=not progress):
        with torch.no_grad(), on_crossbars(model, config, gen):
            per_draw.append(accuracy(model, x, y, batch_size))
    t = torch.tensor(per_draw, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std()) if draws > 1 else 0.0, "min": float(t.min()),
            "max": float(t.max()), "per_draw": per_draw}  # fmt: skip
