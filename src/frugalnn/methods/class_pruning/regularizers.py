"""Pruning-friendly training regularisers (Sec. III-B of arXiv 2312.05875).

Orthogonality of 3x3 kernels makes filters less redundant, so the few that matter for a class stand
out; L1 on the parameters pushes unimportant filters towards zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def orth_distance(kernel: torch.Tensor) -> torch.Tensor:
    """‖conv(K, K) − I_centre‖_F for a (out, in, 3, 3) kernel (Wang et al. 2020, "Orthogonal
    Convolutional Neural Networks", stride-1 form; as in the paper's reference code): the correlation of
    every pair of filters at every shift within the kernel should be 1 at zero shift for i = j, else 0."""
    out = F.conv2d(kernel, kernel, padding=kernel.shape[-1] // 2)  # (out, out, 3, 3)
    target = torch.zeros_like(out)
    c = out.shape[-1] // 2
    target[:, :, c, c] = torch.eye(out.shape[0], dtype=out.dtype, device=out.device)
    return torch.linalg.vector_norm(out - target)


def orth_penalty(model: nn.Module) -> torch.Tensor:
    terms = [
        orth_distance(m.weight)
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1
    ]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def l1_penalty(model: nn.Module) -> torch.Tensor:
    return sum((p.abs().sum() for p in model.parameters()), torch.zeros(()))


def make_regularizer(orth_weight: float, l1_weight: float) -> Callable[[nn.Module], torch.Tensor] | None:
    """The ``extra_loss`` for core.train: orth_weight · Σ orth + l1_weight · Σ|θ| (None when both are 0)."""
    if orth_weight <= 0 and l1_weight <= 0:
        return None

    def extra(model: nn.Module) -> torch.Tensor:
        loss = torch.zeros(())
        if orth_weight > 0:
            loss = loss + orth_weight * orth_penalty(model)
        if l1_weight > 0:
            loss = loss + l1_weight * l1_penalty(model)
        return loss

    return extra
