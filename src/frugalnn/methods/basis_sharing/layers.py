"""Shared-basis linear layers: y = (x B) C_i + b, one basis B per group, one C_i per layer.

``Basis`` is a module holding B (stored as a k×d_in weight so ``F.linear`` applies it); the *same* Basis
instance is a child of every ``SharedBasisLinear`` of its group, so the basis is one tensor in memory,
``model.parameters()`` counts it once, and an optimiser updates it once. The coefficients are an ordinary
``nn.Linear(k, d_out)`` named ``coeff``, so peft's LoRA can target them by name.

``rebuild(model, spec)`` swaps these modules into a dense model built from its config, following the
``frugalnn_compression.json`` that ``frugalnn.core.llm.save_causal_lm`` wrote; it is how
``load_causal_lm(path)`` restores a compressed model with its bases still shared.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.core import plugins

LAYER_NAME = "basis_sharing"  # the ``llm_layer`` plug-in name stored in frugalnn_compression.json


class Basis(nn.Module):
    """The shared basis B ∈ ℝ^{d_in×k}, stored transposed as ``weight`` [k, d_in]."""

    def __init__(self, in_features: int, rank: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.in_features = in_features
        self.rank = rank
        self.weight = nn.Parameter(torch.empty(rank, in_features, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight)


class SharedBasisLinear(nn.Module):
    """Replacement for one nn.Linear / GPT-2 Conv1D: ``coeff(basis(x))``, same input/output contract."""

    def __init__(
        self, basis: Basis, out_features: int, bias: bool, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.basis = basis
        self.coeff = nn.Linear(basis.rank, out_features, bias=bias, dtype=dtype)
        self.in_features = basis.in_features
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coeff(self.basis(x))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, rank={self.basis.rank}, out={self.out_features}"


def linear_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W as d_out×d_in, bias) for nn.Linear and transformers' Conv1D (which stores d_in×d_out)."""
    weight = module.weight
    if type(module).__name__ == "Conv1D":
        return weight.t(), module.bias
    return weight, getattr(module, "bias", None)


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (type(module).__name__ == "Conv1D" and hasattr(module, "nf"))


def set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


@plugins.register("llm_layer", LAYER_NAME)
def rebuild(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    """Swap shared-basis modules into ``model`` (dense, from its config) as ``spec["modules"]`` describes."""
    bases: dict[str, Basis] = {}
    for entry in spec["modules"]:
        key = entry["group"]
        if key not in bases:
            bases[key] = Basis(int(entry["in"]), int(entry["rank"]))
        layer = SharedBasisLinear(bases[key], int(entry["out"]), bool(entry["bias"]))
        set_submodule(model, entry["name"], layer)
    return model


def compression_spec(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON that lets ``rebuild`` restore the structure: one entry per SharedBasisLinear."""
    ids: dict[int, str] = {}
    modules = []
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, SharedBasisLinear):
            group = ids.setdefault(id(module.basis), f"g{len(ids)}")
            modules.append(
                {
                    "name": name,
                    "group": group,
                    "in": module.in_features,
                    "rank": module.basis.rank,
                    "out": module.out_features,
                    "bias": module.coeff.bias is not None,
                }
            )
    return {"layer": LAYER_NAME, "format": 1, "modules": modules, **(extra or {})}
