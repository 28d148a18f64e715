"""The modified Lipschitz regulariser of CorrectNet (Sec. III-A) and the fine-tune that applies it.

R(W) = Σ_l ‖G_l − β_l I‖²_F with G_l = W_lᵀW_l (W_l reshaped to out × in). Driving every squared
singular value of W_l towards β_l keeps the layer's Lipschitz constant (its largest singular value)
near √β_l, so a weight error is not amplified layer after layer. We use the smaller Gram matrix
(W_lW_lᵀ when a layer has fewer outputs than inputs): both share the non-zero singular values, and
the larger one has ``in − out`` zero eigenvalues that no weight can move to β. β_l defaults to the
mean squared singular value of the starting weights, so the regulariser evens out the spectrum
without rescaling the layer (the paper's "modified" target instead of 1). dR/dW = 4·W(WᵀW − βI).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from frugalnn.core.train import augment_batch


def gram_penalty(weight: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """‖G − βI‖²_F of one layer, G the smaller Gram matrix of the (out × in) weight."""
    w = weight.reshape(weight.shape[0], -1)
    g = w @ w.T if w.shape[0] < w.shape[1] else w.T @ w
    eye = torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
    return (g - beta * eye).square().sum()


def default_betas(layers: dict[str, nn.Module]) -> dict[str, float]:
    """β_l = mean squared singular value of each layer's weight = ‖W‖²_F / min(out, in)."""
    out = {}
    for name, m in layers.items():
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        out[name] = float(w.square().sum() / min(w.shape))
    return out


def lipschitz_penalty(layers: dict[str, nn.Module], betas: dict[str, float]) -> torch.Tensor:
    return sum(gram_penalty(m.weight, betas[n]) for n, m in layers.items())  # type: ignore[return-value]


def lipschitz_finetune(
    model: nn.Module,
    layers: dict[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weight: float,
    beta: float | None,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device,
    progress: bool = True,
) -> dict[str, object]:
    """SGD (momentum 0.9, cosine) on cross-entropy + weight·R(W) over the training images."""
    betas = default_betas(layers) if beta is None else {n: beta for n in layers}
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        start = float(lipschitz_penalty(layers, betas))
    for _ in tqdm(range(steps), desc="lipschitz fine-tune", disable=not progress):
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        xb = (augment_batch(x[idx], gen) if x.dim() == 4 else x[idx]).to(device)
        loss = F.cross_entropy(model(xb), y[idx].to(device)) + weight * lipschitz_penalty(layers, betas)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        end = float(lipschitz_penalty(layers, betas))
    return {"betas": betas, "penalty_start": start, "penalty_end": end}
