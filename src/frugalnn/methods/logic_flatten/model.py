"""The quantised MLP that becomes logic, in two forms that agree on the integer grid.

``LogicMLP`` (fake quantisation, trainable with straight-through estimators):
  input   x -> code a = clamp(round((x - lo) / s_in), 0, 2^b_in - 1)          (affine, unsigned codes)
  layer l  h_j = s_x s_wj (sum_i W_ji a_i + B_j)   W = clamp(round(w / s_w), ±qmax), B on the same grid
  hidden  a'_j = clamp(round(relu(h_j) / s_a), 0, 2^b_a - 1)                    (ReLU + requantisation)
  output  logits h_j with one weight scale for the whole layer, so argmax(h) = argmax(sum W a + B).
The input zero point folds into the first layer's bias: W (lo + s_in a) = s_in W a + lo W 1.

``IntegerMLP`` (what the hardware computes, int64 only):
  acc_j = sum_i W_ji a_i + B_j;  hidden a'_j = clamp((acc_j M_j + 2^(k_j - 1)) >> k_j, 0, 2^b_a - 1)
with M_j / 2^k_j the requantisation ratio s_x s_wj / s_a rounded to ``requant_bits`` significant bits
(integer-only inference, Jacob et al. 2018, Sec. 2.2); the predicted class is the first maximal logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from frugalnn.core.quant import fake_quant, qmax
from frugalnn.errors import ConfigError, UnsupportedModelError

SUPPORTED = "Flatten, Linear, ReLU (and Dropout / Identity, which inference skips)"
_SKIPPED = (nn.Dropout, nn.Identity, nn.Flatten)


def linear_stack(model: nn.Module) -> list[nn.Linear]:
    """The Linear layers of a model made of Flatten / Linear / ReLU, in order; names any other layer."""
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    bad = [
        f"{name} ({type(m).__name__})"
        for name, m in leaves
        if not isinstance(m, (nn.Linear, nn.ReLU, *_SKIPPED))
    ]
    if bad:
        raise UnsupportedModelError(
            f"the logic generator cannot express {', '.join(bad[:5])}; it takes MLPs of {SUPPORTED} "
            "(convolutions: flatten them into Linear layers or use a small MLP)"
        )
    kinds = [type(m) for _, m in leaves if not isinstance(m, _SKIPPED)]
    linears = [m for _, m in leaves if isinstance(m, nn.Linear)]
    want = [nn.Linear] + [nn.ReLU, nn.Linear] * (len(linears) - 1)
    if not linears or kinds != want:
        order = " -> ".join(k.__name__ for k in kinds) or "no layers"
        raise UnsupportedModelError(
            f"the logic generator takes Linear (-> ReLU -> Linear)*, got {order}; put one ReLU between Linear layers"
        )
    return linears


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class LogicMLP(nn.Module):
    """Fake-quantised MLP (see module docstring); ``quantized=False`` runs the float network."""

    def __init__(self, sizes: list[int], weight_bits: int = 4, act_bits: int = 4, input_bits: int = 4):
        super().__init__()
        if len(sizes) < 2:
            raise ConfigError("an MLP needs at least an input and an output size")
        self.sizes = list(sizes)
        self.weight_bits, self.act_bits, self.input_bits = weight_bits, act_bits, input_bits
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.register_buffer("in_lo", torch.tensor(0.0))
        self.register_buffer("in_scale", torch.tensor(0.0))
        self.register_buffer("act_scales", torch.zeros(len(sizes) - 2))
        self.quantized = False

    @classmethod
    def from_module(cls, model: nn.Module, weight_bits: int, act_bits: int, input_bits: int) -> LogicMLP:
        linears = linear_stack(model)
        sizes = [linears[0].in_features] + [m.out_features for m in linears]
        out = cls(sizes, weight_bits, act_bits, input_bits)
        for dst, src in zip(out.layers, linears):
            dst.weight.data.copy_(src.weight.detach())
            if src.bias is not None:
                dst.bias.data.copy_(src.bias.detach())
            else:
                dst.bias.data.zero_()
        return out

    # ------------------------------------------------------------------ scales
    def weight_scale(self, index: int) -> torch.Tensor:
        """Per-output-neuron scale for hidden layers, one scale for the output layer (comparable logits);
        a neuron's scale is floored at 1% of the layer's largest so near-dead rows keep bounded biases."""
        w = self.layers[index].weight.detach()
        if index == len(self.layers) - 1:
            amax = w.abs().amax().reshape(1, 1)
        else:
            amax = w.abs().amax(dim=1, keepdim=True)
            amax = torch.maximum(amax, 0.01 * amax.max())
        return torch.clamp(amax, min=1e-8) / qmax(self.weight_bits)

    def input_codes(self, x: torch.Tensor) -> torch.Tensor:
        """Unsigned input codes (int64) of float features."""
        self._check_calibrated()
        x = x.reshape(len(x), -1)
        top = 2**self.input_bits - 1
        return torch.clamp(torch.round((x - self.in_lo) / self.in_scale), 0, top).to(torch.int64)

    def _check_calibrated(self) -> None:
        if float(self.in_scale) <= 0:
            raise ConfigError("the LogicMLP is not calibrated; call calibrate(x) before quantised use")

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, percentile: float = 99.9) -> LogicMLP:
        """Input range from min/max of ``x``; each hidden layer's activation scale from a percentile of its
        positive pre-activations (a clipped range keeps resolution at 4 bits), layer by layer."""
        x = x.reshape(len(x), -1).float()
        lo, hi = float(x.min()), float(x.max())
        self.in_lo.fill_(lo)
        self.in_scale.fill_(max(hi - lo, 1e-6) / (2**self.input_bits - 1))
        self.quantized = True
        h = self.input_codes(x).float() * self.in_scale
        for index in range(len(self.layers) - 1):
            pre = self._layer(index, h)
            pos = pre[pre > 0]
            amax = float(torch.quantile(pos[:100000], percentile / 100)) if pos.numel() else 1.0
            self.act_scales[index] = max(amax, 1e-6) / (2**self.act_bits - 1)
            h = self._requant(index, pre)
        return self

    # ------------------------------------------------------------------ forward
    def codes_scale(self, index: int) -> torch.Tensor:
        """s_x of layer ``index``: the scale of its input codes."""
        return self.in_scale if index == 0 else self.act_scales[index - 1]

    def _layer(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation of a quantised layer given its dequantised, zero-point-free input s_x * a."""
        layer = self.layers[index]
        s_w = self.weight_scale(index)
        w = fake_quant(layer.weight, s_w, self.weight_bits)
        bias = layer.bias
        if index == 0:
            bias = bias + self.in_lo * w.sum(dim=1)
        grid = (self.codes_scale(index) * s_w).reshape(-1)
        b = _round_ste(bias / grid) * grid  # the bias on the accumulator grid
        return x @ w.T + b

    def _requant(self, index: int, pre: torch.Tensor) -> torch.Tensor:
        s = self.act_scales[index]
        top = 2**self.act_bits - 1
        return torch.clamp(_round_ste(torch.relu(pre) / s), 0, top) * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        if not self.quantized:
            for index, layer in enumerate(self.layers):
                x = layer(x)
                if index < len(self.layers) - 1:
                    x = torch.relu(x)
            return x
        self._check_calibrated()
        top = 2**self.input_bits - 1
        h = torch.clamp(_round_ste((x - self.in_lo) / self.in_scale), 0, top) * self.in_scale
        for index in range(len(self.layers)):
            pre = self._layer(index, h)
            h = self._requant(index, pre) if index < len(self.layers) - 1 else pre
        return h

    def weight_codes(self, index: int) -> torch.Tensor:
        s_w = self.weight_scale(index)
        q = qmax(self.weight_bits)
        return torch.clamp(torch.round(self.layers[index].weight.detach() / s_w), -q, q).to(torch.int64)


@dataclass
class IntLayer:
    weight: np.ndarray  # (out, in) int64
    bias: np.ndarray  # (out,) int64, on the accumulator grid
    multiplier: np.ndarray | None = None  # (out,) requantisation M_j (hidden layers)
    shift: np.ndarray | None = None  # (out,) k_j


@dataclass
class IntegerMLP:
    """The integer network the hardware computes (see module docstring)."""

    layers: list[IntLayer]
    input_bits: int
    act_bits: int
    weight_bits: int

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].weight.shape[1]] + [layer.weight.shape[0] for layer in self.layers]

    def forward(self, codes: np.ndarray) -> dict[str, np.ndarray]:
        """Input codes (N, F) -> {'logits': (N, C) int64, 'pred': (N,) first maximal logit, 'hidden': [...]}."""
        a = np.asarray(codes, dtype=np.int64)
        hidden = []
        top = 2**self.act_bits - 1
        for index, layer in enumerate(self.layers):
            acc = a @ layer.weight.T + layer.bias
            if index == len(self.layers) - 1:
                return {"logits": acc, "pred": acc.argmax(axis=1), "hidden": hidden}
            half = np.int64(1) << (layer.shift - 1)
            a = np.clip((acc * layer.multiplier + half) >> layer.shift, 0, top)
            hidden.append(a)
        raise AssertionError("unreachable")

    def to_dict(self) -> dict:
        return {
            "input_bits": self.input_bits,
            "act_bits": self.act_bits,
            "weight_bits": self.weight_bits,
            "layers": [
                {k: (None if v is None else np.asarray(v).tolist()) for k, v in vars(layer).items()}
                for layer in self.layers
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> IntegerMLP:
        layers = [
            IntLayer(
                *(
                    None if rec[k] is None else np.asarray(rec[k], dtype=np.int64)
                    for k in ("weight", "bias", "multiplier", "shift")
                )
            )
            for rec in d["layers"]
        ]
        return cls(layers, int(d["input_bits"]), int(d["act_bits"]), int(d["weight_bits"]))


def requant_constants(ratio: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """M, k with M / 2^k ≈ ratio and M in [2^(bits-1), 2^bits) (``bits`` significant bits)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    exp = np.array([math.frexp(r)[1] for r in ratio])  # ratio = m * 2^exp, m in [0.5, 1)
    shift = (bits - exp).astype(np.int64)
    mult = np.round(ratio * np.exp2(shift.astype(np.float64))).astype(np.int64)
    over = mult >= (1 << bits)  # rounding up to 2^bits: one bit less of shift
    mult[over] >>= 1
    shift[over] -= 1
    if (shift < 1).any():
        raise ConfigError(
            "a requantisation ratio is >= 2^(requant_bits - 1); activation scales are degenerate"
        )
    return mult, shift


@torch.no_grad()
def to_integer(model: LogicMLP, requant_bits: int = 8) -> IntegerMLP:
    """Freeze a calibrated LogicMLP into its integer network."""
    model._check_calibrated()
    layers = []
    for index, layer in enumerate(model.layers):
        w_q = model.weight_codes(index)
        # the bias rounded exactly as the fake-quant path rounds it (same float32 operations)
        grid = (model.codes_scale(index) * model.weight_scale(index)).reshape(-1)
        b_fp = layer.bias.detach()
        if index == 0:
            b_fp = b_fp + model.in_lo * (w_q.float() * model.weight_scale(index)).sum(dim=1)
        rec = IntLayer(w_q.numpy(), torch.round(b_fp / grid).to(torch.int64).numpy())
        if index < len(model.layers) - 1:
            s_x = model.codes_scale(index).double()
            s_w = model.weight_scale(index).double().reshape(-1)
            ratio = (s_x * s_w / model.act_scales[index].double()).numpy()
            rec.multiplier, rec.shift = requant_constants(ratio, requant_bits)
        layers.append(rec)
    return IntegerMLP(layers, model.input_bits, model.act_bits, model.weight_bits)
