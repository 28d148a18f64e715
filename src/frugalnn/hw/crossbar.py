"""RRAM crossbar tiles: weight -> conductance mapping, variation, read noise, DAC/ADC, tiling.

The shared analog substrate of BasisN and CorrectNet (specs/rram.md). Names and defaults follow IBM
aihwkit's inference conventions (7-bit DAC, 9-bit ADC, output noise 0.06, output bound 12, abs-max
input scaling, digital bias) without depending on it. Signal chain of one layer (docs/crossbar.md):

    x ─pad/split into row tiles─▶ /s_x (abs-max per vector and tile) ─DAC─▶ Σ_r x_r·(G⁺−G⁻)/Δg
      ─+ output & read noise─▶ clip ±out_bound ─ADC─▶ ·s_x·s_w ─Σ over row tiles (digital)─▶ + bias

Weights are stored as conductances in µS; ``w' = w·e^θ, θ ~ N(0, σ²)`` per programmed cell (the
lognormal variation model of CorrectNet, arXiv 2211.14917). The batched tile arithmetic is
``crossbar_kernels.py``, many chips at once and the Monte-Carlo ``crossbar_mc.py``, costs
``crossbar_cost.py``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.hw.crossbar_kernels import analog_conv_chips, analog_matmul_chips

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
