"""``to_basisn``: swap every Conv2d / Linear for a basis layer initialised by a truncated decomposition.

Initialisation (BasisN, arXiv 2407.03738, reconstructed in specs/rram.md): the column vectors of all
layers, each layer's scaled to unit Frobenius norm so that small layers count as much as large ones, are
stacked into M (height × Σ columns); the basis is the top ``n_basis`` eigenvectors of M·Mᵀ (the
left singular vectors of M, a truncated SVD), and each layer's coefficients are the least-squares
fit C = pinv(B[:h]) · V on the rows that layer drives. With n_basis = height B is orthogonal, so
B[:h] has full row rank and the fit is exact.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.plugins import register
from frugalnn.errors import UnsupportedModelError
from frugalnn.methods.basisn.config import BasisNConfig
from frugalnn.methods.basisn.layers import (
    BasisConv2d,
    BasisLinear,
    SharedBasis,
    basis_layers,
    layer_columns,
)

TRANSFORM = "basisn"


def _targets(model: nn.Module) -> list[tuple[str, nn.Linear | nn.Conv2d]]:
    found = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise UnsupportedModelError(
                    f"{name}: BasisN maps convolutions with groups=1 and numeric zero padding "
                    f"(got groups={m.groups}, padding={m.padding!r}, mode={m.padding_mode})"
                )
            found.append((name, m))
        elif isinstance(m, nn.Linear):
            found.append((name, m))
    if not found:
        raise UnsupportedModelError("model has no Conv2d or Linear layer to write as basis combinations")
    return found


def _swap(
    model: nn.Module, config: BasisNConfig
) -> tuple[nn.Module, SharedBasis, list[tuple[nn.Module, nn.Module]]]:
    """Replace the layers (structure only); returns the model, the basis and (old, new) pairs."""
    targets = _targets(model)
    basis = SharedBasis(config.crossbar_size, config.resolved_n_basis(), targets[0][1].weight.dtype)
    pairs = []
    for name, old in targets:
        cls = BasisConv2d if isinstance(old, nn.Conv2d) else BasisLinear
        new = cls(old, basis, config.coef_bits)  # type: ignore[arg-type]
        parent_name, _, child = name.rpartition(".")
        if not name:
            model = new
        else:
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        pairs.append((old, new))
    return model, basis, pairs


def decompose(
    weights: list[torch.Tensor], height: int, n_basis: int, rtol: float = 0.05
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Global basis (height × n_basis) and per-layer coefficients for (N, ...) weights, in float64."""
    stacked, parts = [], []
    for w in weights:
        cols, _, h = layer_columns(w.detach().double(), height)
        parts.append(cols)
        norm = cols.norm()  # every layer weighs the same in the basis, however many columns it has
        stacked.append(F.pad(cols / norm.clamp_min(1e-12), (0, 0, 0, height - h)))
    m = torch.cat(stacked, dim=1)
    _, vecs = torch.linalg.eigh(m @ m.T)  # ascending eigenvalues
    basis = vecs.flip(1)[:, :n_basis].contiguous()
    # least squares on the driven rows; directions where a short chunk's B[:h] has singular values below
    # rtol·max are dropped (they would need huge coefficients that quantise badly). With n_basis = height
    # every singular value of B[:h] is 1 (orthonormal rows) and the fit is exact.
    coefs = [torch.linalg.pinv(basis[: cols.shape[0]], rtol=rtol) @ cols for cols in parts]
    return basis, coefs


def relative_error(model_layers: list[tuple[nn.Module, nn.Module]]) -> float:
    """‖W − B·Q(C)‖ / ‖W‖ over all layers (the quantised reconstruction against the original)."""
    num = den = 0.0
    with torch.no_grad():
        for old, new in model_layers:
            w = old.weight.reshape(old.weight.shape[0], -1)
            num += float((new.weight_matrix() - w).square().sum())  # type: ignore[operator]
            den += float(w.square().sum())
    return (num / max(den, 1e-30)) ** 0.5


def to_basisn(
    model: nn.Module, config: BasisNConfig, data: Any = None, progress: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of ``model`` whose Conv2d / Linear kernels are global-basis combinations -> (model, record).

    With ``data`` (an ImageData) and ``config.steps > 0`` the basis and coefficients are then trained
    (``train_basisn``); the record carries the decomposition's error and the training figures.
    """
    config.validate()
    source = copy.deepcopy(model).cpu()
    new_model, basis, pairs = _swap(copy.deepcopy(source), config)
    basis_w, coefs = decompose([old.weight for old, _ in pairs], config.crossbar_size, basis.n_basis)
    with torch.no_grad():
        basis.weight.copy_(basis_w)
    for (_, new), c in zip(pairs, coefs, strict=True):
        new.set_columns(c)  # type: ignore[operator]
    record: dict[str, Any] = {
        "method": TRANSFORM,
        "config": config.to_dict(),
        "n_basis": basis.n_basis,
        "layers": len(pairs),
        "init_relative_error": relative_error(pairs),
    }
    if data is not None and config.steps > 0:
        from frugalnn.methods.basisn.train import train_basisn

        record["train"] = train_basisn(new_model, data, config, progress=progress)
    return new_model, record


@register("model_transform", TRANSFORM)
def rebuild(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """The checkpoint hook: the basis-layer structure of ``model`` (weights are loaded afterwards)."""
    cfg = BasisNConfig.from_dict(config).validate()
    new_model, _, _ = _swap(model, cfg)
    return new_model


def shared_basis(model: nn.Module) -> SharedBasis:
    layers = basis_layers(model)
    if not layers:
        raise UnsupportedModelError("model has no basis layers; convert it with to_basisn first")
    return layers[0][1].basis
