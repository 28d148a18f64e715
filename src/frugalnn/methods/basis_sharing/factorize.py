"""One group's factorisation: whitening, SVD, shared basis and per-layer coefficients (float64).

Convention: a layer computes y = x Wᵀ with W ∈ ℝ^{d_out×d_in}; a group of n layers stacks
A = [W_1ᵀ … W_nᵀ] ∈ ℝ^{d_in×n·d_out} (spec, "Algorithm"). With G = Σ_i X_iᵀX_i = L Lᵀ (Cholesky),
‖X(A − A′)‖_F = ‖Lᵀ(A − A′)‖_F, so truncating the SVD of LᵀA = UΣVᵀ is optimal for the calibration
activations (SVD-LLM, Theorem 1): A′ = L⁻ᵀU_kΣ_k · V_kᵀ, i.e. basis B = L⁻ᵀU_kΣ_k and C_i = V_kᵀ's i-th block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass
class Factors:
    basis: torch.Tensor  # d_in × k
    coeffs: list[torch.Tensor]  # n × (k × d_out)
    singular: torch.Tensor  # all singular values of the (whitened) stacked matrix
    shifted: bool  # Cholesky needed the eigenvalue shift


def cholesky_upper(gram: torch.Tensor, eps: float) -> tuple[torch.Tensor, bool]:
    """S = Lᵀ with G = L Lᵀ; if G is not positive definite add (−λ_min + ε·mean diag)·I and retry (spec)."""
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        return chol.mT, False
    lam_min = float(torch.linalg.eigvalsh(gram)[0])
    scale = float(gram.diagonal().mean().clamp_min(1e-30))
    shift = -lam_min + eps * scale
    log.info("Gram matrix not positive definite (lambda_min=%.3g): eigenvalue shift %.3g", lam_min, shift)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    chol, info = torch.linalg.cholesky_ex(gram + shift * eye)
    if int(info) != 0:  # pathological: shift by the scale itself
        chol = torch.linalg.cholesky(gram + (abs(shift) + scale) * eye)
    return chol.mT, True


def spectrum(
    weights: list[torch.Tensor],
    gram: torch.Tensor | None,
    absmean: torch.Tensor | None,
    mode: str,
    alpha: float,
    eps: float,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], tuple[str, torch.Tensor], bool]:
    """SVD of the whitened stacked matrix: (Σ, (U, Σ, Vᵀ), (kind, whitening S), shifted)."""
    stacked = torch.cat([w.detach().to(dtype).mT for w in weights], dim=1)  # d_in × n·d_out
    shifted = False
    if mode == "cholesky":
        assert gram is not None
        s_up, shifted = cholesky_upper(gram.to(dtype), eps)
        white = ("upper", s_up)
        m = s_up @ stacked
    elif mode == "asvd":  # ASVD: scale input channel j by (mean |x_j|)^alpha, undo on the basis
        assert absmean is not None
        scale = absmean.to(dtype).clamp_min(1e-6) ** alpha
        white = ("diag", scale)
        m = scale[:, None] * stacked
    else:
        white = ("none", torch.empty(0))
        m = stacked
    u, s, vh = thin_svd(m)
    return s, (u, s, vh), white, shifted


def thin_svd(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD through the eigen-decomposition of the smaller Gram (MMᵀ or MᵀM), float64.

    Several times faster than LAPACK's gesdd for the wide stacked matrices (576 × 3072 for a shared
    up/gate pair); the top singular vectors keep ~1e-8 relative accuracy in float64, and U·Σ·Vᵀ = U·Uᵀ·M
    reproduces M exactly at full rank whatever the accuracy of the tiny singular values.
    """
    rows, cols = m.shape
    if m.dtype != torch.float64 or rows == cols:
        return torch.linalg.svd(m, full_matrices=False)
    small = m @ m.mT if rows < cols else m.mT @ m
    evals, evecs = torch.linalg.eigh(small)
    evals, evecs = evals.flip(0), evecs.flip(1)  # descending
    s = evals.clamp_min(0).sqrt()
    inv = torch.where(s > s[0] * 1e-15, 1.0 / s.clamp_min(1e-300), torch.zeros_like(s))
    if rows < cols:
        return evecs, s, (evecs.mT @ m) * inv[:, None]
    return (m @ evecs) * inv[None, :], s, evecs.mT


def factorize(
    weights: list[torch.Tensor],
    gram: torch.Tensor | None,
    absmean: torch.Tensor | None,
    rank: int,
    mode: str,
    alpha: float = 0.5,
    eps: float = 7e-6,
    dtype: torch.dtype = torch.float64,
    layer_grams: list[torch.Tensor] | None = None,
    pre: tuple | None = None,
) -> Factors:
    """Basis B (d_in×k) and coefficients C_i (k×d_out) for the n stacked layers, truncated to ``rank``."""
    if pre is None:  # ``pre``: a spectrum() result already computed (rank allocation looks at it first)
        pre = spectrum(weights, gram, absmean, mode, alpha, eps, dtype)
    singular, (u, s, vh), (kind, white), shifted = pre
    k = max(1, min(rank, s.numel()))
    us = u[:, :k] * s[:k]
    if kind == "upper":  # B = S⁻¹ U_k Σ_k with S upper triangular
        basis = torch.linalg.solve_triangular(white, us, upper=True)
    elif kind == "diag":
        basis = us / white[:, None]
    else:
        basis = us
    coeffs = []
    start = 0
    for i, w in enumerate(weights):
        d_out = w.shape[0]
        c = vh[:k, start : start + d_out]
        if layer_grams is not None:  # whitened refit with this layer's own Gram: C_i = (BᵀG_iB)⁻¹BᵀG_iW_iᵀ
            g = layer_grams[i].to(dtype)
            gb = g @ basis
            lhs = basis.mT @ gb
            lhs = lhs + 1e-10 * lhs.diagonal().mean() * torch.eye(k, dtype=dtype)
            c = torch.linalg.solve(lhs, gb.mT @ w.detach().to(dtype).mT)
        coeffs.append(c)
        start += d_out
    return Factors(basis, coeffs, singular, shifted)
