"""Compensation modules: small digital layers after chosen analog layers (CorrectNet Sec. III-B).

A module after a layer with C output channels is ``y ↦ y·(1 + γ) + b + U·relu(V·y)`` per position
(γ, b per channel; V: C → r, U: r → C, 1×1 convolutions for conv outputs). γ = 0, b = 0 and U = 0 at
the start, so an untrained module is the identity. It stays digital: ``convert_to_analog`` skips
modules marked ``crossbar_digital``. Overhead per position: C (scale) + 2·C·r MACs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.core.config import FieldError
from frugalnn.errors import UnsupportedModelError


class Compensation(nn.Module):
    crossbar_digital = True  # convert_to_analog leaves it (and what it holds) digital

    def __init__(self, channels: int, rank: int, spatial: bool) -> None:
        super().__init__()
        self.channels, self.rank, self.spatial = channels, rank, spatial
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.enabled = True  # the placement search switches modules of the shared supernet on and off
        if rank > 0:
            layer = nn.Conv2d if spatial else nn.Linear
            kw: dict[str, Any] = {"kernel_size": 1} if spatial else {}
            self.down = layer(channels, rank, bias=False, **kw)
            self.up = layer(rank, channels, bias=False, **kw)
            nn.init.zeros_(self.up.weight)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return y
        view = (1, -1, 1, 1) if self.spatial else (1, -1)
        out = y * (1 + self.gamma.view(view)) + self.shift.view(view)
        if self.rank > 0:
            out = out + self.up(torch.relu(self.down(y)))
        return out

    def macs_per_position(self) -> int:
        return self.channels * (1 + 2 * self.rank)


class Compensated(nn.Module):
    """An analog-mappable layer followed by its digital compensation module."""

    def __init__(self, layer: nn.Module, comp: Compensation) -> None:
        super().__init__()
        self.layer, self.comp = layer, comp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.comp(self.layer(x))


def mappable_layers(model: nn.Module) -> list[str]:
    """Names of the Linear / Conv2d layers a crossbar holds (compensation modules excluded)."""
    skip = [n for n, m in model.named_modules() if getattr(m, "crossbar_digital", False)]
    out = []
    for name, m in model.named_modules():
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        if isinstance(m, nn.Linear | nn.Conv2d):  # a wrapped layer is named after its wrapper
            out.append(name.removesuffix(".layer"))
    return out


def insert_compensation(model: nn.Module, layers: list[str] | tuple[str, ...], rank: int) -> nn.Module:
    """Wrap each named layer (in place) as ``Compensated(layer, Compensation(...))``; returns the model."""
    known = mappable_layers(model)
    for name in layers:
        if name not in known:
            raise FieldError(
                "layers", f"name {name!r}, which is no mappable layer; known: {', '.join(known)}"
            )
    for name in layers:
        target = model.get_submodule(name)
        if isinstance(target, Compensated):
            continue
        if isinstance(target, nn.Conv2d):
            comp = Compensation(target.out_channels, min(rank, target.out_channels), spatial=True)
        elif isinstance(target, nn.Linear):
            comp = Compensation(target.out_features, min(rank, target.out_features), spatial=False)
        else:
            raise UnsupportedModelError(f"layer {name!r} is a {type(target).__name__}, not Linear/Conv2d")
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        comp = comp.to(next(target.parameters()).device)
        setattr(parent, child, Compensated(target, comp))
    return model


def compensations(model: nn.Module) -> dict[str, Compensation]:
    """Layer name -> its compensation module."""
    return {n: m.comp for n, m in model.named_modules() if isinstance(m, Compensated)}


def set_enabled(model: nn.Module, active: set[str] | None) -> None:
    """Switch compensation modules on (names in ``active``; None: all) and off."""
    for name, comp in compensations(model).items():
        comp.enabled = active is None or name in active


def layer_positions(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """Output positions per sample (H·W for conv, 1 for linear) of every mappable layer."""
    positions: dict[str, int] = {}
    hooks = []
    for name in mappable_layers(model):
        module = model.get_submodule(name)
        module = module.layer if isinstance(module, Compensated) else module

        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name) -> None:
            positions[name] = int(out[0].numel() // out.shape[1])

        hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return positions


def overhead(
    model: nn.Module, layers: list[str] | tuple[str, ...], rank: int, example: torch.Tensor,
    base_macs: int | None = None, base_params: int | None = None,
) -> dict[str, float]:  # fmt: skip
    """Extra MACs and parameters of compensation after ``layers``, absolute and % of the base network."""
    from frugalnn.core.measure import count_macs, count_params

    positions = layer_positions(model, example)
    macs = params = 0
    for name in layers:
        m = model.get_submodule(name)
        m = m.layer if isinstance(m, Compensated) else m
        c = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        r = min(rank, c)
        macs += positions[name] * c * (1 + 2 * r)
        params += 2 * c + 2 * c * r
    if base_macs is None or base_params is None:
        bare = strip_compensation(model)
        base_macs = count_macs(bare.eval(), example[:1]) if base_macs is None else base_macs
        base_params = count_params(bare) if base_params is None else base_params
    return {"extra_macs": macs, "extra_params": params, "base_macs": base_macs, "base_params": base_params,
            "overhead_macs_pct": 100.0 * macs / base_macs, "overhead_params_pct": 100.0 * params / base_params}  # fmt: skip


def strip_compensation(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without compensation modules (the network the crossbars hold)."""
    import copy

    bare = copy.deepcopy(model)
    for name in list(compensations(bare)):
        parent_name, _, child = name.rpartition(".")
        parent = bare.get_submodule(parent_name) if parent_name else bare
        setattr(parent, child, getattr(parent, child).layer)
    return bare
