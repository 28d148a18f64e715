"""Basis layers: kernels rebuilt from one global basis and per-layer quantised coefficients.

A layer's weight W (N outputs × K inputs; a convolution lowered by im2col, K = C·kh·kw) is cut into
``row_tiles = ceil(K / height)`` chunks of equal ``chunk_height = ceil(K / row_tiles)`` ≤ crossbar
height (the last chunk zero-padded): N·row_tiles column vectors v, each v ≈ B[:h] · c with the global
basis B (height × n_basis, one ``nn.Parameter`` shared by every layer) and quantised coefficients c.
Rows of the crossbar beyond h get no input, so only B[:h] enters a layer. The reconstruction is one
matmul per layer, W_cols = B[:h] @ Q(C), then a normal conv / linear (fast to train).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.methods.basisn.config import FLOAT_BITS


class SharedBasis(nn.Module):
    """The basis written to the crossbars: ``weight`` is (height, n_basis), column j = basis vector b_j."""

    def __init__(self, height: int, n_basis: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(height, n_basis, dtype=dtype))
        self.chip: tuple | None = None  # (Programmed, CrossbarConfig, noise generator) while on crossbars

    @property
    def height(self) -> int:
        return self.weight.shape[0]

    @property
    def n_basis(self) -> int:
        return self.weight.shape[1]


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.where(u >= 0, torch.ones_like(u), -torch.ones_like(u))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def quantize_coefficients(c: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric uniform quantiser with a straight-through round (gradients reach c and the scale).

    bits ≥ 2: ``s·round(clamp(c/s, −1, 1)·m)/m`` with m = 2^(bits−1) − 1 (2^bits − 1 levels);
    bits = 1: ``s·sign(c)``; bits ≥ 32: c unchanged. ``scale`` broadcasts against c.
    """
    if bits >= FLOAT_BITS:
        return c
    u = torch.clamp(c / scale, -1.0, 1.0)
    if bits == 1:
        return _SignSTE.apply(u) * scale
    m = 2 ** (bits - 1) - 1
    return _RoundSTE.apply(u * m) / m * scale


def init_scale(c: torch.Tensor, bits: int, fractions: int = 16) -> torch.Tensor:
    """Per-column scale (c: rows × cols) of least quantisation error among fractions of max|c|.

    bits = 1 takes mean|c| (the L2-optimal binary scale); all candidates are tried at once.
    """
    amax = c.abs().amax(dim=0).clamp_min(1e-12)
    if bits >= FLOAT_BITS:
        return amax
    if bits == 1:
        return c.abs().mean(dim=0).clamp_min(1e-12)
    alphas = torch.linspace(0.25, 1.0, fractions, dtype=c.dtype, device=c.device)
    s = alphas[:, None] * amax[None, :]  # (fractions, cols)
    m = 2 ** (bits - 1) - 1
    q = torch.round(torch.clamp(c[None] / s[:, None, :], -1, 1) * m) / m * s[:, None, :]
    err = (q - c[None]).square().sum(dim=1)  # (fractions, cols)
    return s.gather(0, err.argmin(dim=0, keepdim=True))[0]


class _BasisMixin:
    """Coefficients (n_basis × row_tiles·N, column t·N + n), their scales, the shared basis."""

    basis: SharedBasis
    coef: nn.Parameter
    coef_scale: nn.Parameter

    def _init_basis(self, basis: SharedBasis, out_features: int, in_features: int, coef_bits: int) -> None:
        height = basis.height
        self.basis = basis  # the same module object in every layer: one Parameter, one storage
        self.coef_bits = coef_bits
        self.k_in = in_features
        self.n_out = out_features
        self.row_tiles = math.ceil(in_features / height)
        self.chunk_height = math.ceil(in_features / self.row_tiles)
        dtype = basis.weight.dtype
        self.coef = nn.Parameter(torch.zeros(basis.n_basis, self.row_tiles * out_features, dtype=dtype))
        self.coef_scale = nn.Parameter(torch.ones(self.row_tiles * out_features, dtype=dtype))

    def quantized_coef(self) -> torch.Tensor:
        """Q(C): the coefficients the digital logic multiplies with (one scale per row tile and output,
        applied once to each partial sum)."""
        return quantize_coefficients(self.coef, self.coef_scale.abs().clamp_min(1e-12), self.coef_bits)

    def weight_matrix(self) -> torch.Tensor:
        """(N, K) weight: W_cols = B[:h] @ Q(C), chunks laid back side by side."""
        h, t, n = self.chunk_height, self.row_tiles, self.n_out
        cols = self.basis.weight[:h] @ self.quantized_coef()  # (h, t·N)
        return cols.reshape(h, t, n).permute(2, 1, 0).reshape(n, t * h)[:, : self.k_in]

    def set_columns(self, coef: torch.Tensor) -> None:
        """Load float coefficients and fit the quantiser scales to them."""
        with torch.no_grad():
            self.coef.copy_(coef)
            self.coef_scale.copy_(init_scale(coef, self.coef_bits))


def layer_columns(weight: torch.Tensor, height: int) -> tuple[torch.Tensor, int, int]:
    """(h, row_tiles·N) column vectors of a (N, ...) weight cut into equal chunks ≤ height; (cols, t, h)."""
    w = weight.reshape(weight.shape[0], -1)
    n, k = w.shape
    t = math.ceil(k / height)
    h = math.ceil(k / t)
    cols = F.pad(w, (0, t * h - k)).reshape(n, t, h).permute(2, 1, 0).reshape(h, t * n)
    return cols, t, h


class BasisLinear(_BasisMixin, nn.Module):
    def __init__(self, layer: nn.Linear, basis: SharedBasis, coef_bits: int) -> None:
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._init_basis(basis, layer.out_features, layer.in_features, coef_bits)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_matrix(), self.bias)


class BasisConv2d(_BasisMixin, nn.Module):
    def __init__(self, layer: nn.Conv2d, basis: SharedBasis, coef_bits: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride = layer.kernel_size, layer.stride
        self.padding, self.dilation = layer.padding, layer.dilation
        k = layer.in_channels * math.prod(layer.kernel_size)
        self._init_basis(basis, layer.out_channels, k, coef_bits)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())

    def kernel(self) -> torch.Tensor:
        return self.weight_matrix().reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), self.bias, self.stride, self.padding, self.dilation)


BasisLayer = BasisLinear | BasisConv2d


def basis_layers(model: nn.Module) -> list[tuple[str, BasisLinear | BasisConv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BasisLinear | BasisConv2d)]
