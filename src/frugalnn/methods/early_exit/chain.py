"""A backbone as a chain of units: the children of a model whose forward calls them in order.

Exit heads attach between units; ``run_units`` runs a slice of the chain with the implicit flatten the
zoo models' forward applies before their first ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn

MASKED = -1e9  # score of an excluded class: finite so losses and softmax stay defined


def chain_units(module: nn.Module, prefix: str, want: set[str]) -> list[tuple[str, nn.Module]]:
    """Children in order; an ``nn.Sequential`` is opened when an exit lies inside it."""
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential) and any(w.startswith(full + ".") for w in want):
            out += chain_units(child, full + ".", want)
        else:
            out.append((full, child))
    return out


def run_units(units: list[nn.Module], h: torch.Tensor) -> torch.Tensor:
    for module in units:
        if isinstance(module, nn.Linear) and h.dim() > 2:
            h = torch.flatten(h, 1)  # the implicit flatten of the zoo models' forward
        h = module(h)
    return h


class Chain(nn.Module):
    """A slice of the chain as one module (for MAC counting)."""

    def __init__(self, units: list[nn.Module]):
        super().__init__()
        self.units = nn.ModuleList(units)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return run_units(list(self.units), h)
