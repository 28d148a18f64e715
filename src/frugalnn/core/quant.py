"""Symmetric integer quantisation: fake quantisation with a straight-through estimator (STE) for
training, and an integer path (integer weights x integer activations, int64 accumulation) that the
fake-quant float path equals on the integer grid: ``fake_out = acc_int * s_x * s_w + bias``.

Symmetric: q = clamp(round(x / s), -qmax, qmax) with qmax = 2^(bits-1) - 1 and s = max|x| / qmax,
per tensor or per output channel (axis 0 of a weight).

A checkpoint of a quantised model records ``quant_transform(config)`` in its ``transforms`` list, so
``core.checkpoint.load_checkpoint`` swaps the fake-quant layers back in before the weights (and the
calibrated activation scales, which are buffers) load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core import plugins
from frugalnn.core.config import FieldError
from frugalnn.errors import ConfigError


@dataclass
class QuantConfig:
    weight_bits: int = 8
    act_bits: int = 8
    per_channel: bool = True  # weights: one scale per output channel
    quantize_activations: bool = True  # layer inputs: one scale per tensor, from calibration

    def validate(self) -> None:
        for name in ("weight_bits", "act_bits"):
            bits = getattr(self, name)
            if not 2 <= bits <= 16:
                raise FieldError(name, f"must be between 2 and 16, got {bits}")


def qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def symmetric_scale(x: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Scale s = max|x| / qmax (per tensor, or per slice along axis 0), never zero."""
    if per_channel:
        amax = x.detach().abs().reshape(x.shape[0], -1).amax(dim=1)
        amax = amax.reshape(-1, *([1] * (x.dim() - 1)))
    else:
        amax = x.detach().abs().amax()
    return torch.clamp(amax, min=1e-12) / qmax(bits)


def quantize(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes (as int32) on the symmetric grid."""
    q = qmax(bits)
    return torch.clamp(torch.round(x / scale), -q, q).to(torch.int32)


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward inside the clipping range (Bengio et al. 2013 STE)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, q: int) -> torch.Tensor:  # type: ignore[override]
        scaled = x / scale
        ctx.save_for_backward((scaled.abs() <= q + 0.5).to(x.dtype))
        return torch.clamp(torch.round(scaled), -q, q) * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def fake_quant(x: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise-dequantise with STE gradients: values on the grid s * {-qmax..qmax}."""
    return _RoundSTE.apply(x, scale, qmax(bits))


class _QuantMixin:
    config: QuantConfig
    act_scale: torch.Tensor
    observing: bool

    def _init_quant(self, config: QuantConfig) -> None:
        self.config = config
        self.register_buffer("act_scale", torch.tensor(0.0))  # type: ignore[attr-defined]
        self.observing = False

    def weight_scale(self) -> torch.Tensor:
        return symmetric_scale(self.weight, self.config.weight_bits, self.config.per_channel)  # type: ignore[attr-defined]

    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.quantize_activations:
            return x
        if self.observing:  # calibration: keep the running max of |x|
            new = x.detach().abs().amax() / qmax(self.config.act_bits)
            self.act_scale.copy_(torch.maximum(self.act_scale, new))
            return x
        if float(self.act_scale) <= 0:
            raise ConfigError(
                "activation scale not calibrated; call calibrate(model, x) before quantised inference"
            )
        return fake_quant(x, self.act_scale, self.config.act_bits)

    def quant_weight(self) -> torch.Tensor:
        return fake_quant(self.weight, self.weight_scale(), self.config.weight_bits)  # type: ignore[attr-defined]


class QuantLinear(nn.Linear, _QuantMixin):
    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, config: QuantConfig | None = None
    ):
        super().__init__(in_features, out_features, bias)
        self._init_quant(config or QuantConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quant_input(x), self.quant_weight(), self.bias)


class QuantConv2d(nn.Conv2d, _QuantMixin):
    def __init__(self, *args, config: QuantConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(config or QuantConfig())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quant_input(x), self.quant_weight(), self.bias)


def quantize_model(model: nn.Module, config: QuantConfig | None = None) -> nn.Module:
    """Swap every Conv2d / Linear for its fake-quant twin (weights copied), in place; returns model."""
    config = config or QuantConfig()
    config.validate()
    for name, child in list(model.named_children()):
        if isinstance(child, QuantLinear | QuantConv2d):
            continue
        if isinstance(child, nn.Linear):
            new: nn.Module = QuantLinear(
                child.in_features, child.out_features, child.bias is not None, config
            )
        elif isinstance(child, nn.Conv2d):
            new = QuantConv2d(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                child.padding,
                child.dilation,
                child.groups,
                child.bias is not None,
                child.padding_mode,
                config=config,
            )
        else:
            quantize_model(child, config)
            continue
        new.load_state_dict(child.state_dict(), strict=False)
        setattr(model, name, new)
    return model


TRANSFORM = "quantize"  # the model_transform a checkpoint of a quantised model records


def quant_transform(config: QuantConfig) -> dict[str, Any]:
    """The ``transforms`` entry for ``save_checkpoint`` of a model ``quantize_model`` changed."""
    return {"name": TRANSFORM, "config": asdict(config)}


@plugins.register("model_transform", TRANSFORM)
def _requantize(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    return quantize_model(model, QuantConfig(**config))


@torch.no_grad()
def calibrate(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Set each quantised layer's activation scale from the max |input| seen on ``x``."""
    layers = [m for m in model.modules() if isinstance(m, QuantLinear | QuantConv2d)]
    for m in layers:
        m.act_scale.zero_()
        m.observing = True
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        for m in layers:
            m.observing = False
        model.train(was_training)
    return model


# ----------------------------------------------------------------------------- integer path
def integer_linear(x_q: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """Integer accumulation of int codes: (N, in) x (out, in) -> (N, out) in int64."""
    return x_q.to(torch.int64) @ w_q.to(torch.int64).T


def integer_conv2d(
    x_q: torch.Tensor, w_q: torch.Tensor, stride: int | tuple = 1, padding: int | tuple = 0
) -> torch.Tensor:
    """Integer conv by im2col: every product and sum in int64 (groups = 1)."""
    n, _, h, w = x_q.shape
    out_c, _, kh, kw = w_q.shape
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
    # unfold only gathers values; codes up to 2^15 are exact in float64, then back to int64
    cols = F.unfold(x_q.to(torch.float64), (kh, kw), padding=padding, stride=stride).to(torch.int64)
    acc = w_q.reshape(out_c, -1).to(torch.int64) @ cols  # (n, out_c, L)
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    return acc.reshape(n, out_c, oh, ow)


def integer_forward(layer: QuantLinear | QuantConv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A quantised layer on the integer path: returns (int64 accumulators, dequantised output)."""
    cfg = layer.config
    s_x = layer.act_scale
    s_w = layer.weight_scale().detach()
    x_q = quantize(x, s_x, cfg.act_bits)
    w_q = quantize(layer.weight.detach(), s_w, cfg.weight_bits)
    if isinstance(layer, QuantLinear):
        acc = integer_linear(x_q, w_q)
        scale = (s_x * s_w.reshape(1, -1)) if cfg.per_channel else s_x * s_w
    else:
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise ConfigError("integer_forward supports groups=1, dilation=1 convolutions only")
        acc = integer_conv2d(x_q, w_q, layer.stride, layer.padding)
        scale = (s_x * s_w.reshape(1, -1, 1, 1)) if cfg.per_channel else s_x * s_w
    out = acc.to(torch.float64) * scale.to(torch.float64)
    if layer.bias is not None:
        shape = (1, -1) if isinstance(layer, QuantLinear) else (1, -1, 1, 1)
        out = out + layer.bias.detach().to(torch.float64).reshape(shape)
    return acc, out
