"""Encoded Linear / Conv2d: every product x_q * w_q is replaced by LUT[x_q, w_q] from the encoder.

    y = s_x s_w sum_i LUT[x_i, w_i] + b                      (EncodingNet Sec. IV, "NN_LUT")

computed as the exact quantised layer plus the table's error E = LUT - x w^T, without a loop over
elements: E (2^B x 2^B) is factorised exactly, E = U V^T (SVD, rank r: an encoder of two-level gates
gives a small r), so sum_i E[x_i, w_i] = sum_i sum_j U[x_i, j] V[w_i, j] is one matmul (Linear) or one
convolution over r-times-wider channels (Conv2d) on gathered rows of U and V, rounded to the integer
it is (float32, redone in float64 if any result strays more than 0.1 from an integer). The error term carries no gradient, so the backward pass is the exact-product
(straight-through) gradient of the fake-quantised layer, as in the paper's custom autograd function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.quant import QuantConfig, QuantConv2d, QuantLinear
from frugalnn.methods.encoding_mac.cgp import signed_codes


def error_factors(lut: np.ndarray, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U (2^B, r), V (2^B, r) float64 with U V^T = LUT - x w^T exactly (to float64 round-off)."""
    v = signed_codes(bits).astype(np.float64)
    err = np.asarray(lut, dtype=np.float64) - np.outer(v, v)
    if not np.any(err):
        z = torch.zeros(1 << bits, 0, dtype=torch.float64)
        return z, z.clone()
    u, s, vt = np.linalg.svd(err)
    r = int((s > s[0] * 1e-10).sum())
    return torch.from_numpy(u[:, :r] * s[:r]).contiguous(), torch.from_numpy(vt[:r].T.copy()).contiguous()


def integer_sum(fn, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """``fn(u, v)`` (a sum of products that is an integer) in float32, rounded; redone in float64
    when any float32 result lies more than 0.1 from an integer (its round-off grew too large)."""
    out = fn(u.float(), v.float())
    if out.numel() and (out - torch.round(out)).abs().max() > 0.1:
        out = fn(u, v)
    return torch.round(out).to(torch.float64)


class _EncodedMixin:
    lut: torch.Tensor
    err_u: torch.Tensor
    err_v: torch.Tensor
    bits: int

    def _init_table(self, lut: np.ndarray, bits: int) -> None:
        self.bits = bits
        u, v = error_factors(lut, bits)
        self.register_buffer("lut", torch.as_tensor(np.asarray(lut), dtype=torch.int64))  # type: ignore[attr-defined]
        self.register_buffer("err_u", u)  # type: ignore[attr-defined]
        self.register_buffer("err_v", v)  # type: ignore[attr-defined]

    def _codes(
        self, x_fq: torch.Tensor, w_fq: torch.Tensor, s_w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Table indices (two's-complement codes 0 .. 2^B - 1) of the fake-quantised tensors."""
        mask = (1 << self.bits) - 1
        x_c = torch.round(x_fq.detach() / self.act_scale).to(torch.int64) & mask  # type: ignore[attr-defined]
        w_c = torch.round(w_fq.detach() / s_w).to(torch.int64) & mask
        return x_c, w_c


class EncodedLinear(QuantLinear, _EncodedMixin):
    def __init__(self, in_features: int, out_features: int, bias: bool, lut: np.ndarray, bits: int):
        super().__init__(in_features, out_features, bias, QuantConfig(bits, bits, per_channel=True))
        self._init_table(lut, bits)

    def table_sum(self, x_c: torch.Tensor, w_c: torch.Tensor) -> torch.Tensor:
        """sum_i E[x_i, w_i] for code tensors (N, in), (out, in) -> (N, out), exact integers in float64."""
        if self.err_u.shape[1] == 0:
            return torch.zeros(x_c.shape[0], w_c.shape[0], dtype=torch.float64)

        def fn(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return u[x_c].reshape(x_c.shape[0], -1) @ v[w_c].reshape(w_c.shape[0], -1).T

        return integer_sum(fn, self.err_u, self.err_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_fq = self.quant_input(x)
        w_fq = self.quant_weight()
        out = F.linear(x_fq, w_fq, self.bias)
        if self.observing or self.err_u.shape[1] == 0:
            return out
        s_w = self.weight_scale().detach()
        lead = x_fq.shape[:-1]
        x_c, w_c = self._codes(x_fq.reshape(-1, x_fq.shape[-1]), w_fq, s_w)
        err = self.table_sum(x_c, w_c) * (self.act_scale * s_w.reshape(1, -1)).to(torch.float64)
        return out + err.to(out.dtype).reshape(*lead, -1)


class EncodedConv2d(QuantConv2d, _EncodedMixin):
    def __init__(self, conv: nn.Conv2d, lut: np.ndarray, bits: int):
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
            config=QuantConfig(bits, bits, per_channel=True),
        )  # fmt: skip
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("encoded convolutions support numeric zero padding only")
        self._init_table(lut, bits)

    def table_sum(self, x_c: torch.Tensor, w_c: torch.Tensor) -> torch.Tensor:
        """sum over each window of E[x, w]: x codes (N, C, H, W), w codes (O, C/g, kh, kw)."""
        r = self.err_u.shape[1]
        ph, pw = self.padding  # type: ignore[misc]
        x_c = F.pad(x_c, (pw, pw, ph, ph))  # padded zeros enter the MAC as code 0: LUT[0, w]
        n, c, h, w = x_c.shape
        o, cg, kh, kw = w_c.shape

        def fn(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            ux = u[x_c].permute(0, 1, 4, 2, 3).reshape(n, c * r, h, w)
            vw = v[w_c].permute(0, 1, 4, 2, 3).reshape(o, cg * r, kh, kw)
            return F.conv2d(ux, vw, None, self.stride, 0, self.dilation, self.groups)

        return integer_sum(fn, self.err_u, self.err_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_fq = self.quant_input(x)
        w_fq = self.quant_weight()
        out = self._conv_forward(x_fq, w_fq, self.bias)
        if self.observing or self.err_u.shape[1] == 0:
            return out
        s_w = self.weight_scale().detach()
        x_c, w_c = self._codes(x_fq, w_fq, s_w)
        err = self.table_sum(x_c, w_c) * (self.act_scale * s_w.reshape(1, -1, 1, 1)).to(torch.float64)
        return out + err.to(out.dtype)


def encoded_layers(model: nn.Module) -> list[EncodedLinear | EncodedConv2d]:
    return [m for m in model.modules() if isinstance(m, EncodedLinear | EncodedConv2d)]
