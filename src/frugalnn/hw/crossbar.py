"""RRAM crossbar tiles: weight -> conductance mapping, variation, read noise, DAC/ADC, tiling.

The shared analog substrate of BasisN and CorrectNet (specs/rram.md). Names and defaults follow IBM
aihwkit's inference conventions (7-bit DAC, 9-bit ADC, output noise 0.06, output bound 12, abs-max
input scaling, digital bias) without depending on it. Signal chain of one layer (docs/crossbar.md):

    x ─pad/split into row tiles─▶ /s_x (abs-max per vector and tile) ─DAC─▶ Σ_r x_r·(G⁺−G⁻)/Δg
      ─+ output & read noise─▶ clip ±out_bound ─ADC─▶ ·s_x·s_w ─Σ over row tiles (digital)─▶ + bias

Weights are stored as conductances in µS; ``w' = w·e^θ, θ ~ N(0, σ²)`` per programmed cell (the
lognormal variation model of CorrectNet, arXiv 2211.14917). Costs: ``crossbar_cost.py``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from frugalnn.errors import ConfigError, UnsupportedModelError

_SCALINGS = ("per_column", "per_tensor")


@dataclass
class CrossbarConfig:
    """Everything that describes the crossbar hardware; units in names. Defaults: docs/crossbar.md."""

    rows: int = 128  # word lines = inputs per tile
    cols: int = 128  # physical bit lines per tile (a differential pair uses two)
    cell_bits: int = 4  # 2**cell_bits programmable conductance levels per cell
    g_min_us: float = 0.0  # aihwkit's single-pair converter maps w=0 to 0 µS
    g_max_us: float = 40.0  # reference g_max of aihwkit's ReRAM (Wan et al. 2022) model
    differential: bool = True  # signed weight = G⁺ − G⁻; False: one cell + a reference column per tile
    weight_scaling: str = "per_column"  # "per_column" (per tile column) or "per_tensor" (whole layer)
    dac_bits: int = 7  # aihwkit inp_res = 1/(2**7 − 2)
    adc_bits: int = 9  # aihwkit out_res = 1/(2**9 − 2)
    bit_serial_inputs: bool = False  # apply the dac_bits−1 magnitude bits one cycle each (±1/0 pulses)
    out_noise: float = 0.06  # std of Gaussian output noise, normalised units (aihwkit out_noise)
    out_bound: float = 12.0  # ADC range ±out_bound, normalised units (aihwkit out_bound)
    variation_sigma: float = 0.0  # σ of the lognormal programming variation θ ~ N(0, σ²)
    read_noise_std: float = 0.0  # per read, per weight, fraction of g_max−g_min (aihwkit w_noise)
    seed: int = 0  # seeds the first variation draw made by convert_to_analog
    # cost-model constants (crossbar_cost.py); order-of-magnitude values, see docs/crossbar.md
    read_cycle_ns: float = 100.0  # one analog MVM incl. DAC settle and column-parallel ADC
    read_energy_per_cell_pj: float = 0.002  # per programmed cell per read cycle
    adc_energy_pj: float = 2.0  # per ADC conversion (one column, one cycle)
    dac_energy_pj: float = 0.1  # per DAC conversion (one row, one cycle)
    write_verify_time_per_cell_us: float = 1.0  # program + verify loop of one cell
    write_energy_per_cell_pj: float = 10.0  # program + verify loop of one cell
    write_parallel_cells: int = 1  # cells one crossbar programs at once

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"CrossbarConfig: {msg}")

        for name in ("rows", "cols", "write_parallel_cells"):
            if int(getattr(self, name)) < 1:
                raise bad(f"{name}={getattr(self, name)} must be >= 1; use a positive integer")
        if self.cols < 2:
            raise bad(
                f"cols={self.cols} leaves no weight column (a pair or a reference needs 2); use cols >= 2"
            )
        for name, low in (("cell_bits", 1), ("dac_bits", 2), ("adc_bits", 2)):
            value = getattr(self, name)
            if not low <= int(value) <= 32:
                raise bad(f"{name}={value} is impossible; use an integer in {low}..32")
        if self.g_min_us < 0:
            raise bad(f"g_min_us={self.g_min_us} is negative; conductances are >= 0 µS, use g_min_us >= 0")
        if not self.g_min_us < self.g_max_us:
            raise bad(
                f"g_min_us={self.g_min_us} >= g_max_us={self.g_max_us}; "
                "set g_min_us < g_max_us (e.g. 0 and 40)"
            )
        for name in ("variation_sigma", "read_noise_std", "out_noise"):
            if not getattr(self, name) >= 0:
                raise bad(f"{name}={getattr(self, name)} is negative; use a value >= 0 (0 turns it off)")
        if not self.out_bound > 0:
            raise bad(f"out_bound={self.out_bound} must be > 0; use e.g. 12 (aihwkit's default)")
        if self.weight_scaling not in _SCALINGS:
            raise bad(f"weight_scaling={self.weight_scaling!r} is unknown; use one of {_SCALINGS}")
        if not self.read_cycle_ns > 0:
            raise bad(f"read_cycle_ns={self.read_cycle_ns} must be > 0; use e.g. 100")
        for f in fields(self):
            if f.name.endswith(("_pj", "_us")) and not getattr(self, f.name) >= 0:
                raise bad(f"{f.name}={getattr(self, f.name)} is negative; use a value >= 0")

    @property
    def weight_cols(self) -> int:
        """Weights per tile row: a differential pair takes two bit lines, offset mode one reference."""
        return self.cols // 2 if self.differential else self.cols - 1

    @property
    def cell_levels(self) -> int:
        return 2**self.cell_bits

    @property
    def cycles_per_mvm(self) -> int:
        return self.dac_bits - 1 if self.bit_serial_inputs else 1

    @classmethod
    def ideal(cls, **overrides: object) -> CrossbarConfig:
        """A crossbar that equals F.linear up to float rounding: no noise, 30-bit converters and cells."""
        base: dict[str, object] = dict(
            cell_bits=30, dac_bits=30, adc_bits=32, out_noise=0.0, variation_sigma=0.0
        )
        base.update(overrides)
        base.setdefault("out_bound", 4.0 * int(base.get("rows", 128)))  # |Σ x·w| <= 2·rows: never clips
        return cls(**base)  # type: ignore[arg-type]


def _symmetric_quantize(u: torch.Tensor, bits: int) -> torch.Tensor:
    """Round u in [−1, 1] to the 2**bits − 1 symmetric levels k/m, m = 2**(bits−1) − 1 (aihwkit res)."""
    m = 2 ** (bits - 1) - 1
    return torch.round(u.clamp(-1.0, 1.0) * m) / m


@dataclass
class Programmed:
    """One chip's conductances for a (N, K) weight split into n_rt row tiles of ``rows`` inputs.

    ``rows`` is ``config.rows``, or K when one tile holds the whole input (no all-zero padding rows).
    """

    g_pos_us: torch.Tensor  # (n_rt, N, rows): G⁺ (differential) or the weight cell (offset mode)
    g_neg_us: torch.Tensor  # (n_rt, N, rows): G⁻, or the tile's reference cell broadcast per column
    w_eff: torch.Tensor  # (n_rt, N, rows) normalised effective weight k·(G⁺ − G⁻)/Δg
    scale: torch.Tensor  # (n_rt, N) digital weight scale s_w


def program_weight(
    weight: torch.Tensor, config: CrossbarConfig, generator: torch.Generator | None = None
) -> Programmed:
    """Map a (N, K) weight onto tiles: scale to [−1, 1], quantise to cell levels, vary each cell."""
    c = config
    w = weight.detach().reshape(weight.shape[0], -1)
    n_out, k_in = w.shape
    n_rt = math.ceil(k_in / c.rows)
    rows = c.rows if n_rt > 1 else k_in  # a one-tile layer leaves its unused word lines out of the arrays
    wt = F.pad(w, (0, n_rt * rows - k_in)).reshape(n_out, n_rt, rows).permute(1, 0, 2)
    if c.weight_scaling == "per_column":  # each tile column has its own digital scale
        scale = wt.abs().amax(dim=2)
    else:
        scale = wt.abs().amax().expand(n_rt, n_out)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    wn = wt / scale.unsqueeze(-1)
    levels = c.cell_levels - 1
    dg = c.g_max_us - c.g_min_us

    def level(u: torch.Tensor) -> torch.Tensor:  # u in [0, 1] -> nearest of 2**cell_bits conductances
        return c.g_min_us + torch.round(u.clamp(0.0, 1.0) * levels) / levels * dg

    if c.differential:
        g_pos, g_neg, gain = level(wn.clamp(min=0)), level((-wn).clamp(min=0)), 1.0
        g_pos, g_neg = _vary(g_pos, c.variation_sigma, generator), _vary(g_neg, c.variation_sigma, generator)
    else:  # offset mapping: w ↦ (w + 1)/2, minus a mid-range reference column in each column tile
        g_pos, gain = _vary(level((wn + 1) / 2), c.variation_sigma, generator), 2.0
        n_ct = math.ceil(n_out / c.weight_cols)
        ref = level(torch.full((n_rt, n_ct, rows), 0.5, dtype=wn.dtype, device=wn.device))
        ref = _vary(ref, c.variation_sigma, generator)  # one reference cell per row, shared by the tile
        g_neg = ref.repeat_interleave(c.weight_cols, dim=1)[:, :n_out]
    w_eff = gain * (g_pos - g_neg) / dg
    return Programmed(g_pos, g_neg, w_eff, scale)


def _vary(g: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Lognormal programming variation of every cell independently: G' = G·e^θ, θ ~ N(0, σ²)."""
    if sigma == 0:
        return g
    theta = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
    return g * torch.exp(sigma * theta)


def analog_matmul(
    x: torch.Tensor, prog: Programmed, config: CrossbarConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, K) inputs times the programmed (N, K) weight -> (B, N), through DAC, tiles, noise and ADC."""
    return analog_matmul_chips(x[None], prog.w_eff[None], prog.scale[None], config, [generator])[0]


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


@dataclass
class Chips:
    """D chips of one analog layer: effective weights (variation and levels folded) and noise sources."""

    w_eff: torch.Tensor  # (D, n_rt, N, rows) normalised effective weights, as Programmed.w_eff
    scale: torch.Tensor  # (D, n_rt, N) digital weight scales
    generators: list[torch.Generator]  # chip d's output/read-noise generator
    images: int = 0  # images per chip in the forward pass under way (forward_chips sets it)


class _AnalogMixin:
    """Holds the config, the programmed chip and the per-module read-noise generator."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init_analog(self, config: CrossbarConfig) -> None:
        self.config = config
        self._prog: Programmed | None = None
        self._stamp: tuple[int, int] | None = None
        self._noise_gen = torch.Generator().manual_seed(config.seed)
        self._chips: Chips | None = None  # set by load_chips: forward runs on several chips at once

    def program(self, generator: torch.Generator | None = None) -> Programmed:
        """Sample one chip: quantised conductances with a fresh variation draw; reseed the read noise."""
        gen = generator if generator is not None else torch.Generator().manual_seed(self.config.seed)
        self._prog = program_weight(self.weight, self.config, gen)
        self._noise_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        self._stamp = (self.weight._version, self.weight.data_ptr())
        return self._prog

    def conductances_us(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(G⁺, G⁻) in µS, shape (row tiles, out, rows); G⁻ is the reference column in offset mode."""
        prog = self._programmed()
        return prog.g_pos_us, prog.g_neg_us

    def _programmed(self) -> Programmed:
        # weights changed since programming (training step, load_state_dict): write the chip again
        if self._prog is None or self._stamp != (self.weight._version, self.weight.data_ptr()):
            self.program(self._noise_gen)
        assert self._prog is not None
        return self._prog

    def _chip_set(self, lead: int) -> tuple[torch.Tensor, torch.Tensor, list, bool]:
        """(w_eff, scale, noise generators, input shared by all chips) for an input of ``lead`` samples."""
        chips = self._chips
        if chips is None:
            prog = self._programmed()
            return prog.w_eff[None], prog.scale[None], [self._noise_gen], False
        n = chips.w_eff.shape[0]
        shared = n > 1 and lead == chips.images  # one batch read by every chip, else one batch per chip
        if not shared and lead != n * chips.images:
            raise ConfigError(
                f"a chip batch of {n} chips x {chips.images} images got {lead} inputs; run it through forward_chips"
            )
        return chips.w_eff, chips.scale, chips.generators, shared

    def _straight_through(
        self, x: torch.Tensor, y: torch.Tensor, digital: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        if self.bias is not None:
            y = (
                y + self.bias.detach().view(-1, *[1] * (y.dim() - 2))
                if y.dim() > 2
                else y + self.bias.detach()
            )
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            ref = digital()  # straight-through: analog values forward, gradients of the ideal layer
            if ref.shape[0] != y.shape[0]:  # a shared input read by every chip
                ref = ref.repeat(y.shape[0] // ref.shape[0], *[1] * (ref.dim() - 1))
            return ref + (y - ref).detach()
        return y

    def _analog(self, x2d: torch.Tensor, digital: Callable[[], torch.Tensor], lead: int) -> torch.Tensor:
        """x2d (M, K) -> (M', N); ``lead`` is the module input's batch size (chips need it)."""
        w_eff, scale, gens, shared = self._chip_set(lead)
        xin = x2d.detach() if shared else x2d.detach().reshape(w_eff.shape[0], -1, x2d.shape[-1])
        y = analog_matmul_chips(xin, w_eff, scale, self.config, gens)
        return self._straight_through(x2d, y.reshape(-1, y.shape[-1]), digital)


class AnalogLinear(_AnalogMixin, nn.Linear):
    """nn.Linear whose product runs on RRAM crossbar tiles; state_dict is that of nn.Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, config: CrossbarConfig,
                 **kw: object) -> None:  # fmt: skip
        super().__init__(in_features, out_features, bias, **kw)  # type: ignore[arg-type]
        self._init_analog(config)

    @classmethod
    def from_digital(cls, layer: nn.Linear, config: CrossbarConfig) -> AnalogLinear:
        new = cls(layer.in_features, layer.out_features, layer.bias is not None, config=config)
        new.weight, new.bias = layer.weight, layer.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2d = x.reshape(-1, self.in_features)
        y = self._analog(x2d, lambda: F.linear(x2d, self.weight, self.bias), x.shape[0] if x.dim() > 1 else 1)
        return y.reshape(-1, *x.shape[1:-1], self.out_features) if x.dim() > 1 else y.reshape(-1)


class AnalogConv2d(_AnalogMixin, nn.Conv2d):
    """nn.Conv2d lowered by im2col onto the same tiles: weight (N, C·kh·kw) times unfolded patches."""

    def __init__(self, *args: object, config: CrossbarConfig, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        if self.groups != 1 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise UnsupportedModelError(
                f"AnalogConv2d supports groups=1, numeric zero padding (got groups={self.groups}, "
                f"padding={self.padding!r}, mode={self.padding_mode}); exclude the layer with filter_fn"
            )
        self._init_analog(config)

    @classmethod
    def from_digital(cls, layer: nn.Conv2d, config: CrossbarConfig) -> AnalogConv2d:
        new = cls(
            layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
            bias=layer.bias is not None, padding_mode=layer.padding_mode, config=config,
        )  # fmt: skip
        new.weight, new.bias = layer.weight, layer.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_eff, scale, gens, shared = self._chip_set(x.shape[0])
        xin = (
            x.detach()
            if shared or w_eff.shape[0] == 1
            else x.detach().reshape(w_eff.shape[0], -1, *x.shape[1:])
        )
        y = analog_conv_chips(xin, w_eff, scale, self.config, gens, self)
        y = y.reshape(-1, *y.shape[2:])
        return self._straight_through(x, y, lambda: self._conv_forward(x, self.weight, self.bias))


AnalogModule = AnalogLinear | AnalogConv2d


def analog_modules(model: nn.Module) -> list[tuple[str, AnalogLinear | AnalogConv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AnalogLinear | AnalogConv2d)]


def convert_to_analog(
    model: nn.Module,
    config: CrossbarConfig,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    inplace: bool = False,
) -> nn.Module:
    """Swap every nn.Linear / nn.Conv2d (where ``filter_fn(module, name)``) for its analog twin.

    Modules with a true ``crossbar_digital`` attribute (and their children) stay digital. Returns a
    copy unless ``inplace``; modules already analog take the new config. The model is then
    programmed once with ``torch.Generator().manual_seed(config.seed)`` (one chip).
    """
    model = model if inplace else copy.deepcopy(model)
    swaps: list[tuple[str, nn.Module]] = []
    digital = [n for n, m in model.named_modules() if n and getattr(m, "crossbar_digital", False)]
    for name, module in model.named_modules():
        if not name or (filter_fn is not None and not filter_fn(module, name)):
            continue
        if any(name == d or name.startswith(d + ".") for d in digital):  # marked crossbar_digital
            continue
        if isinstance(module, AnalogLinear | AnalogConv2d):
            module.config = config
        elif isinstance(module, nn.Linear):
            swaps.append((name, AnalogLinear.from_digital(module, config)))
        elif isinstance(module, nn.Conv2d):
            swaps.append((name, AnalogConv2d.from_digital(module, config)))
    for name, new in swaps:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    if isinstance(model, nn.Linear | nn.Conv2d) and not isinstance(model, AnalogLinear | AnalogConv2d):
        model = (AnalogLinear if isinstance(model, nn.Linear) else AnalogConv2d).from_digital(model, config)
    if analog_modules(model):  # a filter may leave nothing to convert: then the copy stays digital
        program(model, torch.Generator().manual_seed(config.seed))
    return model


def program(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Write every analog layer of ``model`` (one chip, one variation draw); returns the model."""
    mods = analog_modules(model)
    if not mods:
        raise UnsupportedModelError("model has no analog layers; call convert_to_analog(model, config) first")
    gen = generator if generator is not None else torch.Generator().manual_seed(mods[0][1].config.seed)
    with torch.no_grad():
        for _, m in mods:
            m.program(gen)
    return model


def program_chips(
    model: nn.Module, draws: int, generator: torch.Generator | None = None, device: str | None = None
) -> dict[str, Chips]:
    """Write ``draws`` chips at once: what ``draws`` calls of ``program(model, generator)`` would write.

    Each chip programs every analog layer in module order and then draws one noise seed per layer, as
    ``program`` does, so chip d of a batch equals the d-th chip of the one-chip loop bit for bit.
    """
    if draws < 1:
        raise ConfigError(f"draws={draws} must be >= 1; pass the number of chips to sample")
    mods = analog_modules(model)
    if not mods:
        raise UnsupportedModelError("model has no analog layers; call convert_to_analog(model, config) first")
    gen = generator if generator is not None else torch.Generator().manual_seed(mods[0][1].config.seed)
    w_eff: dict[str, list[torch.Tensor]] = {n: [] for n, _ in mods}
    scale: dict[str, list[torch.Tensor]] = {n: [] for n, _ in mods}
    seeds: dict[str, list[int]] = {n: [] for n, _ in mods}
    with torch.no_grad():
        for _ in range(draws):
            for name, m in mods:
                prog = program_weight(m.weight.detach().cpu(), m.config, gen)
                w_eff[name].append(prog.w_eff)
                scale[name].append(prog.scale)
                seeds[name].append(int(torch.randint(0, 2**62, (1,), generator=gen)))
    dev = torch.device(device) if device is not None else mods[0][1].weight.device
    return {
        name: Chips(
            torch.stack(w_eff[name]).to(dev),
            torch.stack(scale[name]).to(dev),
            [torch.Generator(device=dev).manual_seed(sd) for sd in seeds[name]],
        )  # fmt: skip
        for name, _ in mods
    }


@contextmanager
def load_chips(model: nn.Module, chips: dict[str, Chips]) -> Iterator[nn.Module]:
    """Within the block the analog layers of ``model`` run the chips of ``program_chips`` at once."""
    mods = dict(analog_modules(model))
    if set(mods) != set(chips):
        raise ConfigError("the chips were programmed for another model; call program_chips on this one")
    try:
        for name, m in mods.items():
            m._chips = chips[name]
        yield model
    finally:
        for m in mods.values():
            m._chips = None


def forward_chips(model: nn.Module, x: torch.Tensor, chips: dict[str, Chips]) -> torch.Tensor:
    """(B, ...) inputs through every chip at once -> (D, B, ...) outputs (chips as a batch dimension)."""
    n = next(iter(chips.values())).w_eff.shape[0]
    with load_chips(model, chips):
        for c in chips.values():
            c.images = len(x)
        out = model(x)
    if out.shape[0] == len(x) and n > 1:  # no analog layer read the input (cannot happen for mapped models)
        out = out.expand(n, *out.shape).reshape(n * len(x), *out.shape[1:])
    return out.reshape(n, len(x), *out.shape[1:])


def accuracy_stats(per_draw: list[float]) -> dict[str, float | list[float]]:
    """Mean, std, 5th percentile (linear interpolation), worst and best accuracy over chips."""
    t = torch.tensor(per_draw, dtype=torch.float64)
    std = float(t.std()) if len(per_draw) > 1 else 0.0
    return {"mean": float(t.mean()), "std": std, "p5": float(torch.quantile(t, 0.05)),
            "min": float(t.min()), "max": float(t.max()), "per_draw": list(per_draw)}  # fmt: skip


def monte_carlo_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    draws: int = 10,
    config: CrossbarConfig | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 512,
    progress: bool = False,
    chips_per_pass: int | None = None,
    device: str | None = None,
) -> dict[str, float | list[float]]:
    """Accuracy over ``draws`` chips (variation draws): {mean, std, p5, min, max, per_draw}.

    With ``config`` the (digital or analog) model is converted afresh; otherwise it must be analog.
    ``chips_per_pass`` chips run as one batch (None: as many as keep ~1024 images per pass; 1: the
    one-chip loop, program then evaluate). Both give the same chips for the same ``generator``.
    ``device`` (``cpu``, ``cuda``) runs the passes there; noise then comes from that device's generators.
    """
    if draws < 1:
        raise ConfigError(f"draws={draws} must be >= 1; pass the number of chips to sample")
    if len(x) != len(y):
        raise ConfigError(f"x has {len(x)} samples but y has {len(y)}; pass matching inputs and labels")
    if batch_size < 1 or (chips_per_pass is not None and chips_per_pass < 1):
        raise ConfigError(f"batch_size={batch_size}, chips_per_pass={chips_per_pass} must be >= 1")
    if config is not None:
        model = convert_to_analog(model, config)
    if not analog_modules(model):
        raise UnsupportedModelError(
            "model has no analog layers (no Linear/Conv2d to map); pass config= or call convert_to_analog first"
        )
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    per_draw: list[float] = []
    if chips_per_pass == 1 and device is None:
        from frugalnn.core.measure import predict

        for _ in tqdm(range(draws), desc="monte-carlo chips", disable=not progress):
            program(model, gen)
            per_draw.append(int((predict(model, x, batch_size).argmax(1) == y).sum()) / len(x))
        return accuracy_stats(per_draw)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if dev != next(model.parameters()).device:
        model = copy.deepcopy(model).to(dev)
    per_pass = chips_per_pass or max(1, min(draws, 1024 // batch_size))
    was_training = model.training
    model.eval()
    bar = tqdm(total=draws, desc="monte-carlo chips", disable=not progress)
    with torch.no_grad():
        for start in range(0, draws, per_pass):
            chips = program_chips(model, min(per_pass, draws - start), gen, str(dev))
            correct = torch.zeros(len(next(iter(chips.values())).generators), dtype=torch.int64)
            for i in range(0, len(x), batch_size):
                logits = forward_chips(model, x[i : i + batch_size].to(dev), chips)
                correct += (logits.argmax(-1).cpu() == y[i : i + batch_size]).sum(1)
            per_draw += (correct.double() / len(x)).tolist()
            bar.update(len(correct))
    bar.close()
    model.train(was_training)
    return accuracy_stats(per_draw)
