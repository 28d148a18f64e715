"""BasisN's cost per inference on a crossbar budget against reprogramming the same crossbars.

Both come from one ``CrossbarConfig``: ``hw.basis_cost.basis_cost`` for the basis network (reads plus
digital combination, the basis written once) and ``hw.crossbar_cost.crossbar_cost`` for the plain
network's weights rewritten layer by layer on the same number of crossbars (the paper's baseline).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.hw.basis_cost import BasisLayerUse, DigitalConfig, basis_cost
from frugalnn.hw.crossbar import CrossbarConfig
from frugalnn.hw.crossbar_cost import LayerShape, crossbar_cost
from frugalnn.methods.basisn.config import BasisNConfig
from frugalnn.methods.basisn.layers import BasisConv2d, basis_layers
from frugalnn.methods.basisn.train import active_blocks


def positions(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Matrix-vector products per inference of every basis layer (one forward pass with hooks)."""
    found: dict[str, int] = {}
    handles = []
    for name, m in basis_layers(model):

        def hook(mod: nn.Module, _inp: tuple, out: torch.Tensor, name: str = name) -> None:
            if isinstance(mod, BasisConv2d):
                found[name] = int(out.shape[-1] * out.shape[-2])
            else:
                found[name] = int(out.numel() // out.shape[-1] // out.shape[0])

        handles.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found


def layer_uses(model: nn.Module, example: torch.Tensor, group_size: int) -> list[BasisLayerUse]:
    pos = positions(model, example)
    maps = active_blocks(model, group_size)
    uses = []
    with torch.no_grad():
        for name, m in basis_layers(model):
            uses.append(
                BasisLayerUse(
                    name, m.k_in, m.n_out, pos[name], m.row_tiles, m.chunk_height,
                    active=maps[name].tolist(), nonzero_coefs=int(m.quantized_coef().ne(0).sum()),
                )
            )  # fmt: skip
    return uses


def basisn_cost(
    model: nn.Module,
    config: BasisNConfig,
    example: torch.Tensor,
    n_crossbars: int | None = None,
    crossbar: CrossbarConfig | None = None,
    digital: DigitalConfig | None = None,
) -> dict[str, Any]:
    """{"basisn": BasisCost dict, "reprogram": CrossbarCost dict, ratios} for a trained basis model."""
    xbar = crossbar or config.crossbar_config()
    n = n_crossbars or config.crossbars
    uses = layer_uses(model, example, config.group_size)
    ours = basis_cost(uses, xbar, n, model_n_basis(model), config.group_size, config.coef_bits, digital)
    shapes = [LayerShape(u.name, u.in_features, u.out_features, u.positions) for u in uses]
    base = crossbar_cost(shapes, xbar, n)
    return {
        "basisn": ours.to_dict(),
        "reprogram": base.to_dict(),
        "cycles_ratio": ours.cycles / base.cycles,
        "energy_ratio": ours.energy_pj / base.energy_pj,
        "edp_ratio": ours.edp_pj_ns / base.edp_pj_ns,
    }


def model_n_basis(model: nn.Module) -> int:
    return basis_layers(model)[0][1].basis.n_basis
