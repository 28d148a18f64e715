"""Shared-basis linear layers: y = (x B) C_i + b, one basis B per group, one C_i per layer.

The modules (``Basis``, ``SharedBasisLinear``) and the fused basis GEMMs live in ``modules.py`` (torch only,
so its source also serves as the modelling code of compressed Hugging Face folders); this file adds what
frugalnn needs around them.

``rebuild(model, spec)`` swaps these modules into a dense model built from its config, following the
``frugalnn_compression.json`` that ``frugalnn.core.llm.save_causal_lm`` wrote; it is how
``load_causal_lm(path)`` restores a compressed model with its bases still shared.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.core import plugins
from frugalnn.methods.basis_sharing.modules import (  # noqa: F401  (re-exported)
    Basis,
    FusedBases,
    SharedBasisLinear,
    fuse_bases,
)

LAYER_NAME = "basis_sharing"  # the ``llm_layer`` plug-in name stored in frugalnn_compression.json


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
    fuse_bases(model, bool(spec.get("fuse", True)))  # folders written before fusion: fused by default
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
