"""Layers whose weights and input activations take only allowed 8-bit codes (PowerPruning Sec. 3.3).

A ``PowerPrunedConv2d`` / ``PowerPrunedLinear`` is the int8 fake-quant layer of ``core/quant.py`` with
* a frozen per-output-channel weight scale (a buffer, so projecting the weights cannot change it),
* the allowed weight codes W and activation codes A (buffers),
* forward: weight -> s_w · nearest_W(w / s_w), input -> s_x · nearest_A(round(x / s_x)), both with a
  straight-through gradient (identity inside the clipping range), as the paper retrains.

``bake(model)`` writes the projected weights into the parameters, so the stored weights are exactly
allowed codes x one scale per output channel; ``integer_forward`` is the integer path (int64
accumulation of the codes), equal to the fake-quant forward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from frugalnn.core import plugins
from frugalnn.core.quant import (
    QuantConfig,
    QuantConv2d,
    QuantLinear,
    integer_conv2d,
    integer_linear,
    qmax,
    quantize,
    symmetric_scale,
)
from frugalnn.errors import ConfigError, UnsupportedModelError

BITS = 8
ALL_CODES = list(range(-qmax(BITS), qmax(BITS) + 1))  # the symmetric int8 grid: -127..127


def nearest_code(values: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Each value replaced by the nearest allowed code (``codes`` sorted ascending; ties go down)."""
    codes = codes.to(values.dtype)
    if len(codes) == 1:
        return torch.full_like(values, float(codes[0]))
    idx = torch.searchsorted(codes, values.contiguous()).clamp(1, len(codes) - 1)
    lo, hi = codes[idx - 1], codes[idx]
    pick = torch.where((values - lo) <= (hi - values), lo, hi)
    return torch.where(values <= codes[0], codes[0], torch.where(values >= codes[-1], codes[-1], pick))


class _ProjectSTE(torch.autograd.Function):
    """x -> scale · nearest_code(clamp(x / scale)) forward; identity gradient inside the code range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, codes: torch.Tensor, rounded: bool):  # type: ignore[override]
        scaled = x / scale
        ctx.save_for_backward((scaled.abs() <= qmax(BITS) + 0.5).to(x.dtype))
        if rounded:  # activations: the int8 code first (as core/quant.py), then the allowed set
            scaled = torch.clamp(torch.round(scaled), -qmax(BITS), qmax(BITS))
        return nearest_code(scaled, codes) * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


class _PrunedMixin:
    weight: torch.Tensor
    weight_codes: torch.Tensor
    act_codes: torch.Tensor
    w_scale: torch.Tensor
    act_scale: torch.Tensor
    config: QuantConfig
    observing: bool

    def _init_pruned(self, weight_codes: list[int], act_codes: list[int]) -> None:
        shape = (self.weight.shape[0],) + (1,) * (self.weight.dim() - 1)
        self.register_buffer("w_scale", torch.ones(shape))  # type: ignore[attr-defined]
        self.register_buffer("weight_codes", torch.tensor(sorted(weight_codes), dtype=torch.float32))  # type: ignore[attr-defined]
        self.register_buffer("act_codes", torch.tensor(sorted(act_codes), dtype=torch.float32))  # type: ignore[attr-defined]

    def weight_scale(self) -> torch.Tensor:
        return self.w_scale

    def quant_weight(self) -> torch.Tensor:
        return _ProjectSTE.apply(self.weight, self.w_scale, self.weight_codes, False)

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing:
            return super().quant_input(x)  # type: ignore[misc]
        if float(self.act_scale) <= 0:
            raise ConfigError("activation scale not calibrated; call calibrate(model, x) first")
        return _ProjectSTE.apply(x, self.act_scale, self.act_codes, True)

    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of an input as the MAC sees them (int8 grid, then the allowed set)."""
        q = quantize(x, self.act_scale, BITS).to(torch.float32)
        return nearest_code(q, self.act_codes).to(torch.int32)

    def weight_int(self) -> torch.Tensor:
        """Integer weight codes (allowed codes only)."""
        return nearest_code(
            torch.clamp(self.weight.detach() / self.w_scale, -qmax(BITS), qmax(BITS)), self.weight_codes
        ).to(torch.int32)


class PowerPrunedLinear(_PrunedMixin, QuantLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool, weight_codes, act_codes):
        super().__init__(in_features, out_features, bias, QuantConfig(BITS, BITS, True, True))
        self._init_pruned(weight_codes, act_codes)


class PowerPrunedConv2d(_PrunedMixin, QuantConv2d):
    def __init__(self, conv: nn.Conv2d, weight_codes, act_codes):
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
            config=QuantConfig(BITS, BITS, True, True),
        )  # fmt: skip
        self._init_pruned(weight_codes, act_codes)


PRUNED = (PowerPrunedLinear, PowerPrunedConv2d)


def check_quantisable(model: nn.Module) -> list[str]:
    """Names of the layers the MAC array runs (Conv2d / Linear); UnsupportedModelError naming any
    weighted layer that the 8-bit integer path cannot run."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros":
                raise UnsupportedModelError(
                    f"layer {name!r} is a Conv2d with groups={m.groups}, dilation={m.dilation}, "
                    f"padding_mode={m.padding_mode!r}; the int8 MAC path needs groups=1, dilation=1, zero padding"
                )
            names.append(name)
        elif isinstance(m, nn.Linear):
            names.append(name)
        elif (
            not list(m.children())
            and isinstance(getattr(m, "weight", None), torch.Tensor)
            and not isinstance(m, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm)
        ):
            raise UnsupportedModelError(
                f"layer {name!r} ({type(m).__name__}) has weights but is neither Conv2d nor Linear; "
                "it cannot be quantised to 8-bit MAC codes — replace it or use a zoo model"
            )
    if not names:
        raise UnsupportedModelError("the model has no Conv2d or Linear layer; nothing runs on the MAC array")
    return names


def fit_scale(weight: torch.Tensor, codes: torch.Tensor, candidates: int = 64) -> torch.Tensor:
    """Per output channel, the scale s minimising ||w - s·nearest_code(w / s)||² over a grid
    s = max|w| / t, t from max|code| / 2 to 127 (the int8 scale is t = 127: with all codes allowed
    it is kept). A restricted code set reaches larger multiples, so a larger s can fit better."""
    w = weight.detach().reshape(weight.shape[0], 1, -1).to(torch.float64)
    amax = w.abs().amax(dim=2, keepdim=True).clamp(min=1e-12)
    top = float(codes.abs().max())
    t = torch.linspace(max(top / 2, 1.0), float(qmax(BITS)), candidates, dtype=torch.float64)
    s = amax / t.reshape(1, -1, 1)  # (out, candidates, 1)
    q = nearest_code(torch.clamp(w / s, -qmax(BITS), qmax(BITS)), codes.to(torch.float64))
    err = ((w - s * q) ** 2).sum(dim=2)  # (out, candidates)
    best = s.squeeze(2).gather(1, err.argmin(dim=1, keepdim=True)).squeeze(1)
    return best.to(weight.dtype).reshape(-1, *([1] * (weight.dim() - 1)))


def to_pruned(model: nn.Module, weight_codes: list[int], act_codes: list[int]) -> nn.Module:
    """Swap every Conv2d / Linear (plain or int8 fake-quant) for its power-pruned twin, in place.

    Weights, bias and the calibrated activation scale carry over; the weight scale is frozen per
    output channel: the int8 scale max|w| / 127 when every code is allowed, else ``fit_scale``.
    """
    for name, child in list(model.named_children()):
        if isinstance(child, PRUNED):
            child.weight_codes = torch.tensor(sorted(weight_codes), dtype=torch.float32)
            child.act_codes = torch.tensor(sorted(act_codes), dtype=torch.float32)
            continue
        if isinstance(child, nn.Linear):
            new: nn.Module = PowerPrunedLinear(
                child.in_features, child.out_features, child.bias is not None, weight_codes, act_codes
            )
        elif isinstance(child, nn.Conv2d):
            new = PowerPrunedConv2d(child, weight_codes, act_codes)
        else:
            to_pruned(child, weight_codes, act_codes)
            continue
        new.load_state_dict(child.state_dict(), strict=False)
        with torch.no_grad():
            if len(weight_codes) == len(ALL_CODES):
                new.w_scale.copy_(symmetric_scale(new.weight, BITS, per_channel=True))
            else:
                new.w_scale.copy_(fit_scale(new.weight, new.weight_codes))
        setattr(model, name, new)
    return model


@torch.no_grad()
def bake(model: nn.Module) -> nn.Module:
    """Write the projected weights into the parameters: stored weights = allowed code x channel scale."""
    for m in model.modules():
        if isinstance(m, PRUNED):
            m.weight.copy_(m.weight_int().to(m.weight.dtype) * m.w_scale)
    return model


@torch.no_grad()
def integer_forward(
    layer: PowerPrunedLinear | PowerPrunedConv2d, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer on the integer path: (int64 accumulators, dequantised float64 output)."""
    x_q, w_q = layer.input_codes(x), layer.weight_int()
    if isinstance(layer, PowerPrunedLinear):
        acc = integer_linear(x_q, w_q)
        shape = (1, -1)
    else:
        acc = integer_conv2d(x_q, w_q, layer.stride, layer.padding)
        shape = (1, -1, 1, 1)
    out = acc.to(torch.float64) * (layer.act_scale.double() * layer.w_scale.double().reshape(shape))
    if layer.bias is not None:
        out = out + layer.bias.double().reshape(shape)
    return acc, out


@plugins.register("model_transform", "power-pruning")
def rebuild(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Checkpoint hook: swap in power-pruned layers with the recorded allowed codes (weights load after)."""
    try:
        w_codes = [int(c) for c in config["weight_codes"]]
        a_codes = [int(c) for c in config["activation_codes"]]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "power-pruning transform needs integer 'weight_codes' and 'activation_codes'"
        ) from None
    return to_pruned(model, w_codes, a_codes)
