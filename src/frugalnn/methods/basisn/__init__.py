"""BasisN (arXiv 2407.03738): every kernel column of a network as a quantised combination of one global
set of basis vectors, written to RRAM crossbars once. ``to_basisn(model, BasisNConfig(...), data=...)``
(or ``frugalnn.apply``) -> (model, record); ``save_basisn`` writes a checkpoint ``frugalnn eval`` loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from frugalnn.core.checkpoint import save_checkpoint
from frugalnn.core.models import ModelSpec
from frugalnn.methods import register_method
from frugalnn.methods.basisn.config import BasisNConfig
from frugalnn.methods.basisn.convert import TRANSFORM, decompose, rebuild, shared_basis, to_basisn
from frugalnn.methods.basisn.layers import BasisConv2d, BasisLinear, SharedBasis, basis_layers
from frugalnn.methods.basisn.train import active_blocks, plain_finetune, train_basisn

register_method(BasisNConfig, to_basisn)


def save_basisn(
    folder: str | Path,
    model: nn.Module,
    spec: ModelSpec,
    config: BasisNConfig,
    meta: dict[str, Any] | None = None,
) -> Path:
    """A normal checkpoint whose ``transforms`` entry rebuilds the basis layers before the weights load."""
    meta = dict(meta or {})
    transforms = list(meta.pop("transforms", [])) + [{"name": TRANSFORM, "config": config.to_dict()}]
    return save_checkpoint(folder, model, spec, {**meta, "transforms": transforms})


__all__ = [
    "BasisConv2d", "BasisLinear", "BasisNConfig", "SharedBasis", "active_blocks", "basis_layers",
    "decompose", "plain_finetune", "rebuild", "save_basisn", "shared_basis", "to_basisn", "train_basisn",
]  # fmt: skip
