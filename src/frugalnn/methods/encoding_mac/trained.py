"""Position weights trained with the network (the abstract's "trainable position weights").

Each kept output bit is a 0/1 table T_k(x, w) over code pairs, factorised exactly T_k = P_k Q_k^T
(rank <= 4 for a two-level gate network; 1 for an AND). With one shared parameter vector s,

    sum_i LUT_s[x_i, w_i] = sum_i sum_j P[x_i, j] s_k(j) Q[w_i, j]

is differentiable in s (one matmul / convolution over R = sum_k rank(T_k) channels). The activations
and weights keep the exact-product gradient. After fine-tuning, s is rounded to integers, a new
encoder (same gates, new weights, new LUT) is built and the layers are frozen on its table.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.methods.encoding_mac.encoder import Encoder
from frugalnn.methods.encoding_mac.layers import EncodedConv2d, EncodedLinear, encoded_layers


def bit_factors(enc: Encoder) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P (2^B, R), Q (2^B, R) float64 and the kept-bit index of each of the R components."""
    n = 1 << enc.bits
    codes = np.arange(n * n)
    bits = enc.kept_bits(codes >> enc.bits, codes & (n - 1)).astype(np.float64).reshape(len(enc.kept), n, n)
    ps, qs, owner = [], [], []
    for k, table in enumerate(bits):
        u, s, vt = np.linalg.svd(table)
        r = int((s > 1e-9).sum())
        ps.append(u[:, :r] * s[:r])
        qs.append(vt[:r].T)
        owner += [k] * r
    return (torch.from_numpy(np.hstack(ps)).contiguous(), torch.from_numpy(np.hstack(qs)).contiguous(),
            torch.tensor(owner, dtype=torch.int64))  # fmt: skip


def _signed(codes: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes).to(torch.float64)


def _trained_forward(layer, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    x_fq = layer.quant_input(x)
    w_fq = layer.quant_weight()
    conv = isinstance(layer, EncodedConv2d)
    out = layer._conv_forward(x_fq, w_fq, layer.bias) if conv else F.linear(x_fq, w_fq, layer.bias)
    if layer.observing:
        return out
    s_w = layer.weight_scale().detach()
    x_c, w_c = layer._codes(x_fq, w_fq, s_w)
    s_all = layer.tp_base + layer.tp_base.abs() * layer.tp_weights  # relative steps: s0 (1 ± delta)
    p, q, s = layer.tp_p, layer.tp_q, s_all[layer.tp_owner]
    r = p.shape[1]
    if conv:
        ph, pw = layer.padding
        x_c = F.pad(x_c, (pw, pw, ph, ph))
        n, c, h, w = x_c.shape
        px = (p[x_c] * s).permute(0, 1, 4, 2, 3).reshape(n, c * r, h, w)
        o, cg, kh, kw = w_c.shape
        qw = q[w_c].permute(0, 1, 4, 2, 3).reshape(o, cg * r, kh, kw)
        lut_sum = F.conv2d(px, qw, None, layer.stride, 0, layer.dilation, layer.groups)
        exact = F.conv2d(_signed(x_c, layer.bits), _signed(w_c, layer.bits), None, layer.stride, 0, layer.dilation,
                         layer.groups)  # fmt: skip
        scale = layer.act_scale * s_w.reshape(1, -1, 1, 1)
    else:
        lead = x_c.shape[:-1]
        x_c = x_c.reshape(-1, x_c.shape[-1])
        lut_sum = (p[x_c] * s).reshape(x_c.shape[0], -1) @ q[w_c].reshape(w_c.shape[0], -1).T
        exact = _signed(x_c, layer.bits) @ _signed(w_c, layer.bits).T
        scale = layer.act_scale * s_w.reshape(1, -1)
        lut_sum, exact = lut_sum.reshape(*lead, -1), exact.reshape(*lead, -1)
    return out + ((lut_sum - exact) * scale.to(torch.float64)).to(out.dtype)


def make_trainable(model: nn.Module, enc: Encoder) -> nn.Parameter:
    """Switch every encoded layer to the differentiable table with one shared weight vector."""
    p, q, owner = bit_factors(enc)
    base = torch.tensor(enc.weights, dtype=torch.float64)
    weights = nn.Parameter(torch.zeros_like(base))  # delta: s = s0 + |s0| delta
    for layer in encoded_layers(model):
        layer.tp_p, layer.tp_q, layer.tp_owner, layer.tp_base = p, q, owner, base  # constants, not state
        layer.tp_weights = weights
        layer.forward = _trained_forward.__get__(layer)  # type: ignore[method-assign]
    return weights


def freeze(model: nn.Module, enc: Encoder, weights: nn.Parameter) -> Encoder:
    """Round the trained weights, build their encoder and re-encode the layers on its table."""
    from frugalnn.methods.encoding_mac.encode import encode

    base = torch.tensor(enc.weights, dtype=torch.float64)
    rounded = [int(v) for v in torch.round(base + base.abs() * weights.detach()).tolist()]
    trained = Encoder(enc.bits, enc.gates, enc.kept, rounded, {**enc.meta, "position_weights": "trained",
                                                                 "solved_weights": enc.weights})  # fmt: skip
    for layer in encoded_layers(model):
        for name in ("tp_p", "tp_q", "tp_owner", "tp_base", "tp_weights", "forward"):
            layer.__dict__.pop(name, None)
        layer._parameters.pop("tp_weights", None)
    encode(model, trained)
    return trained


__all__ = ["EncodedLinear", "bit_factors", "freeze", "make_trainable"]
