"""The tile arithmetic of RRAM crossbars for D chips at once: DAC, conductance products per row tile,
output and read noise, clipping, ADC and the digital sum over tiles (docs/crossbar.md), for matrix
products and (by tiles of unfolded patches) convolutions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from frugalnn.hw.crossbar import CrossbarConfig


def analog_matmul_chips(
    x: torch.Tensor,
    w_eff: torch.Tensor,
    scale: torch.Tensor,
    config: CrossbarConfig,
    generators: list[torch.Generator | None],
) -> torch.Tensor:
    """D chips at once: (D, B, K) inputs (or (B, K) shared by all chips) -> (D, B, N).

    ``w_eff`` (D, n_rt, N, rows) and ``scale`` (D, n_rt, N) are D programmed chips (variation and
    level quantisation folded in); chip d draws its output/read noise from ``generators[d]`` with the
    shape one chip alone would draw, so chip d's result equals ``analog_matmul`` on chip d.
    """
    c = config
    n_chips, n_rt, n_out, rows = w_eff.shape
    pad = n_rt * rows - x.shape[-1]
    xt = (F.pad(x, (0, pad)) if pad else x).reshape(*x.shape[:-1], n_rt, rows)
    lo, hi = torch.aminmax(xt, dim=-1, keepdim=True)  # aihwkit noise management ABS_MAX, per tile
    s_x = torch.maximum(hi, -lo)
    s_x = torch.where(s_x > 0, s_x, torch.ones_like(s_x))
    m = 2 ** (c.dac_bits - 1) - 1
    code = torch.round_(xt * (m / s_x))  # DAC codes in [−m, m]: 2**dac_bits − 1 levels (aihwkit inp_res)
    shared = code.dim() == 3  # one input read by every chip: converted once
    s_x = s_x.unsqueeze(0) if shared else s_x
    w = w_eff.to(x.dtype)
    n_b = code.shape[-3]
    m_adc = 2 ** (c.adc_bits - 1) - 1

    def read(drive: torch.Tensor, gain: float) -> torch.Tensor:
        """One analog read of all tiles, then the ADC: integer ADC levels (D, B, n_rt, N)."""
        spec = "btr,dtnr->dbtn" if shared else "dbtr,dtnr->dbtn"
        u = torch.einsum(spec, drive, w).mul_(gain / c.out_bound)  # normalised by the ADC range
        if c.out_noise > 0 or c.read_noise_std > 0:  # Σ_r x_r·ε_r is Gaussian: sample it at the output
            eps = torch.empty((n_chips, n_b, n_rt, n_out), dtype=u.dtype, device=u.device)
            for d, g in enumerate(generators):
                eps[d].normal_(generator=g)
            if c.read_noise_std > 0:
                var = c.out_noise**2 + (c.read_noise_std * gain) ** 2 * drive.square().sum(-1, keepdim=True)
                u = u.addcmul_(var.sqrt(), eps, value=1.0 / c.out_bound)
            else:
                u = u.add_(eps, alpha=c.out_noise / c.out_bound)
        return u.clamp_(-1.0, 1.0).mul_(m_adc).round_()  # aihwkit out_res: 2**adc_bits − 1 levels

    if not c.bit_serial_inputs:
        y = read(code, 1.0 / m)
    else:  # time-multiplexed: magnitude bit k of the DAC code drives the rows as sign·bit ∈ {−1, 0, 1}
        sign, mag = torch.sign(code), code.abs().to(torch.int64)
        y = sum(read(sign * ((mag >> k) & 1).to(x.dtype), 1.0) * 2.0**k for k in range(c.dac_bits - 1)) / m
    y = y.mul_(s_x).mul_(scale.to(x.dtype).unsqueeze(1) * (c.out_bound / m_adc))
    return y.sum(dim=2) if n_rt > 1 else y.squeeze(2)  # row tiles' partial sums are added digitally


_WORKSPACE: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}


def _scratch(tag: str, shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """A reused temporary buffer (fresh allocations of ~100 MB cost more in page faults than the math)."""
    n = math.prod(shape)
    key = (tag, like.dtype, like.device)
    buf = _WORKSPACE.get(key)
    if buf is None or buf.numel() < n:
        buf = _WORKSPACE[key] = torch.empty(n, dtype=like.dtype, device=like.device)
    return buf[:n].view(*shape)


def _im2col(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``F.unfold`` as a strided view copied into a reused buffer: (B, C·kh·kw, Ho·Wo)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    b, ch, h, w = xp.shape
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    s0, s1, s2, s3 = xp.stride()
    view = xp.as_strided((b, ch, kh, kw, ho, wo), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw))
    cols = _scratch("cols", (b, ch, kh, kw, ho, wo), x)
    cols.copy_(view)
    return cols.view(b, ch * kh * kw, ho * wo)


def analog_conv_chips(
    x: torch.Tensor,
    w_eff: torch.Tensor,
    scale: torch.Tensor,
    config: CrossbarConfig,
    generators: list[torch.Generator | None],
    conv: nn.Conv2d,
) -> torch.Tensor:
    """Convolution on D chips: (D, B, C, H, W) inputs (or (B, C, H, W) shared) -> (D, B, N, Ho, Wo).

    The same signal chain as ``analog_matmul_chips`` on the im2col patches (one patch = one input
    vector, abs-max DAC scaling per patch and row tile), computed tile by tile in the convolution's
    own layout, so no transposed copy of the patches is made. Noise is drawn per tile as (B, N, L).
    """
    c = config
    n_chips, n_rt, n_out, rows = w_eff.shape
    shared = x.dim() == 4
    xb = x if shared else x.reshape(-1, *x.shape[2:])
    cols = _im2col(xb, conv)  # (B', K, L), written into a reused buffer
    k_in, n_pos = cols.shape[1], cols.shape[2]
    cols = cols if shared else cols.view(n_chips, -1, k_in, n_pos)
    n_b = cols.shape[-3]
    m = 2 ** (c.dac_bits - 1) - 1
    m_adc = 2 ** (c.adc_bits - 1) - 1
    w = w_eff.to(x.dtype)
    out = torch.zeros((n_chips, n_b, n_out, n_pos), dtype=x.dtype, device=x.device)
    for t in range(n_rt):
        k0, k1 = t * rows, min(k_in, (t + 1) * rows)  # padding rows of the last tile hold zeros: skipped
        part = cols[..., k0:k1, :]
        hi, lo = part.amax(dim=-2, keepdim=True), part.amin(dim=-2, keepdim=True)  # ABS_MAX per patch, tile
        s_x = torch.maximum(hi, -lo)
        s_x = torch.where(s_x > 0, s_x, torch.ones_like(s_x))
        code = torch.mul(part, m / s_x, out=_scratch("code", part.shape, x)).round_()  # DAC codes in [−m, m]
        w_t = w[:, t, :, : k1 - k0]  # (D, N, K_t)

        def read(drive: torch.Tensor, gain: float, w_t: torch.Tensor = w_t) -> torch.Tensor:
            if shared:  # every chip's columns in one product: (D·N, K_t) @ (B, K_t, L)
                u = _scratch("read", (n_b, n_chips * n_out, n_pos), x)
                torch.matmul(w_t.reshape(-1, w_t.shape[-1]), drive, out=u)
                u = u.view(n_b, n_chips, n_out, n_pos).transpose(0, 1)
            else:
                u = torch.matmul(
                    w_t.unsqueeze(1), drive, out=_scratch("read", (n_chips, n_b, n_out, n_pos), x)
                )
            u = u.mul_(gain / c.out_bound)
            if c.out_noise > 0 or c.read_noise_std > 0:
                eps = _scratch("eps", (n_chips, n_b, n_out, n_pos), x)
                for d, g in enumerate(generators):
                    eps[d].normal_(generator=g)
                if c.read_noise_std > 0:
                    var = c.out_noise**2 + (c.read_noise_std * gain) ** 2 * drive.square().sum(
                        -2, keepdim=True
                    )
                    u = u.addcmul_(var.sqrt(), eps, value=1.0 / c.out_bound)
                else:
                    u = u.add_(eps, alpha=c.out_noise / c.out_bound)
            return u.clamp_(-1.0, 1.0).mul_(m_adc).round_()

        if not c.bit_serial_inputs:
            y = read(code, 1.0 / m)
        else:
            sign, mag = torch.sign(code), code.abs().to(torch.int64)
            y = (
                sum(read(sign * ((mag >> k) & 1).to(x.dtype), 1.0) * 2.0**k for k in range(c.dac_bits - 1))
                / m
            )
        s_w = scale[:, t].to(x.dtype).reshape(n_chips, 1, n_out, 1) * (c.out_bound / m_adc)
        out.addcmul_(y.mul_(s_x), s_w)
    ho = (
        xb.shape[-2] + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1
    ) // conv.stride[0] + 1
    return out.reshape(n_chips, n_b, n_out, ho, n_pos // ho)
