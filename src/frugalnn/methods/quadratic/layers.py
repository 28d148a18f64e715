"""Quadratic neurons as drop-in replacements of ``nn.Linear`` and ``nn.Conv2d``.

Every form is the layer's linear response ``Wx + b`` plus (or times) a quadratic term, written so that
with the quadratic weights at zero the layer equals its linear part exactly (a trained linear layer
swapped in keeps its function). ``x`` is the input vector (Linear) or one receptive field, flattened
to n = C·kh·kw values (Conv2d); m is the number of outputs.

- ``efficient`` (arXiv 2306.07294, the spec's form): y_j = w_jᵀx + b_j + Σ_i λ_{j,i}(q_iᵀx)², k shared
  projections q_i (k extra filters for a conv) mixed per output by λ (a 1×1 conv for a conv);
  extra parameters k·n + m·k.
- ``full`` (QuadraLib type 1, CQNN): y_j = w_jᵀx + b_j + xᵀA_jx; extra m·n².
- ``square`` (type 2): y = Wx + b + V(x⊙x); extra m·n.
- ``power`` (type 3, (wᵀx)² on the neuron's own w): y = z + γ⊙z², z = Wx + b; extra m.
- ``product`` (type 4, (w_aᵀx)(w_bᵀx) with w_a the linear weight): y = (Wx + b)⊙(W_g x + 1 + β);
  extra m·n + m.
- ``quadranet`` (QuadraLib/QuadraNet): y = (W_a x)⊙(W_b x) + W_c x + b, W_c the linear weight; extra 2·m·n.
- ``fan`` (Fan et al. 2018): y = (w_rᵀx + b_r)(w_gᵀx + b_g) + w_bᵀ(x⊙x) + c, with b_g = 1 + β as in
  their initialisation (w_g = 0, b_g = 1); extra 2·m·n + 2·m.

MACs are counted per sample by ``macs_per_sample`` (read by ``core.measure.mac_profile``): every
multiplication is one MAC — projections, squares, element-wise products and the λ / γ scales.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.config import FieldError

FORMS = ("efficient", "full", "square", "power", "product", "quadranet", "fan")

# per form: the extra parameters besides weight/bias, as (name, role); role says how it is shaped
# and initialised: "proj" a random projection like the weight (k rows for efficient), "wlike" a
# weight-shaped term initialised at init_scale, "mix" λ (m, k), "vec" one value per output, "quad" A.
_EXTRA: dict[str, tuple[tuple[str, str], ...]] = {
    "efficient": (("q", "proj"), ("lam", "mix")),
    "full": (("a", "quad"),),
    "square": (("v", "wlike"),),
    "power": (("gamma", "vec"),),
    "product": (("wg", "wlike"), ("beta", "vec")),
    "quadranet": (("wa", "proj"), ("wb", "wlike")),
    "fan": (("wg", "wlike"), ("beta", "vec"), ("v", "wlike"), ("c", "vec")),
}


class _Quadratic(nn.Module):
    """Shared parameter set-up and forward of every form; subclasses give the linear operator."""

    form: str
    rank: int

    def _setup(self, weight_shape: tuple[int, ...], fan_in: int, rank: int, init_scale: float) -> None:
        if self.form not in FORMS:
            raise FieldError("form", f"must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.form == "efficient" and not 1 <= rank <= fan_in:
            raise FieldError("rank", f"must be in [1, {fan_in}] (the layer's input size), got {rank}")
        m = weight_shape[0]
        self.fan_in, self.rank = fan_in, rank if self.form == "efficient" else 0
        bound = 1.0 / math.sqrt(fan_in)
        for name, role in _EXTRA[self.form]:
            if role == "proj":
                rows = rank if self.form == "efficient" else m
                t = torch.empty(rows, *weight_shape[1:]).uniform_(-bound, bound)
            elif role == "mix":
                t = torch.randn(m, rank) * init_scale
            elif role == "vec":
                t = torch.randn(m) * init_scale
            elif role == "quad":
                t = torch.randn(m, fan_in, fan_in) * init_scale / fan_in
            else:
                t = torch.randn(weight_shape) * init_scale * bound
            self.register_parameter(name, nn.Parameter(t))

    # the linear operator of the layer (Linear: x @ wᵀ; Conv2d: a convolution with this layer's geometry)
    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def _per_out(self, v: torch.Tensor) -> torch.Tensor:  # broadcast a per-output vector
        raise NotImplementedError

    def _mix(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # z + λ over the k squares
        raise NotImplementedError

    def _full(self, x: torch.Tensor) -> torch.Tensor:  # xᵀA_jx for every output j
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._op(x, self.weight, self.bias)  # the linear part, computed as nn.Linear / nn.Conv2d do
        f = self.form
        if f == "efficient":
            return self._mix(z, self._op(x, self.q).square())
        if f == "full":
            return z + self._full(x)
        if f == "square":
            return z + self._op(x * x, self.v)
        if f == "power":
            return z + self._per_out(self.gamma) * z.square()
        if f == "product":
            return z * (self._op(x, self.wg) + 1.0 + self._per_out(self.beta))
        if f == "quadranet":
            return z + self._op(x, self.wa) * self._op(x, self.wb)
        gate = self._op(x, self.wg) + 1.0 + self._per_out(self.beta)  # fan
        return z * gate + self._op(x * x, self.v) + self._per_out(self.c)

    def quadratic_parameters(self) -> list[nn.Parameter]:
        """The parameters of the quadratic term (zero them and the layer is its linear part)."""
        return [getattr(self, name) for name, _ in _EXTRA[self.form]]

    def macs_per_output(self) -> int:
        """MACs per output position (one output vector of m values), input squares excluded."""
        m, n, k = self.weight.shape[0], self.fan_in, self.rank
        extra = {
            "efficient": k * n + k + m * k,
            "full": m * (n * n + n),
            "square": m * n,
            "power": 2 * m,
            "product": m * n + m,
            "quadranet": 2 * m * n + m,
            "fan": 2 * m * n + m,
        }[self.form]
        return m * n + extra

    def _squares_input(self) -> bool:
        return self.form in ("square", "fan")


class QuadraticLinear(_Quadratic):
    """A quadratic ``nn.Linear``: ``weight`` (m, n) and ``bias`` are the linear part."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        form: str = "efficient",
        rank: int = 4,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.form = in_features, out_features, form
        lin = nn.Linear(in_features, out_features, bias=bias)
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone()) if bias else None
        self._setup((out_features, in_features), in_features, rank, init_scale)

    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, w, b)

    def _per_out(self, v: torch.Tensor) -> torch.Tensor:
        return v

    def _mix(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            return torch.addmm(z, s, self.lam.t())  # one fused kernel for z + s λᵀ
        return z + F.linear(s, self.lam)

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...i,jik,...k->...j", x, self.a, x)

    def macs_per_sample(self, x: torch.Tensor, out: torch.Tensor) -> int:
        rows = out.numel() // out.shape[-1] // max(1, x.shape[0]) if x.dim() > 1 else 1
        squares = self.in_features if self._squares_input() else 0
        return int(rows * (self.macs_per_output() + squares))

    def extra_repr(self) -> str:
        rank = f", rank={self.rank}" if self.form == "efficient" else ""
        return (
            f"{self.in_features}, {self.out_features}, form={self.form}{rank}, bias={self.bias is not None}"
        )


class QuadraticConv2d(_Quadratic):
    """A quadratic ``nn.Conv2d`` (groups 1, zero padding): the quadratic term per receptive field."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        form: str = "efficient",
        rank: int = 4,
        init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        self.in_channels, self.out_channels, self.form = in_channels, out_channels, form
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone()) if bias else None
        fan_in = in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        self._setup(tuple(conv.weight.shape), fan_in, rank, init_scale)

    def _op(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation)

    def _per_out(self, v: torch.Tensor) -> torch.Tensor:
        return v[:, None, None]

    def _mix(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # the 1×1 λ as one batched matmul-add over positions (a 1×1 conv with k = 1..4 input channels
        # is several times slower on CPU)
        b, m, h, w = z.shape
        lam = self.lam.unsqueeze(0).expand(b, -1, -1)
        return torch.baddbmm(z.reshape(b, m, h * w), lam, s.reshape(b, -1, h * w)).view(b, m, h, w)

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (B, n, L)
        h, w = self._out_size(x.shape[-2], x.shape[-1])
        quad = torch.einsum("bil,jik,bkl->bjl", cols, self.a, cols)
        return quad.reshape(x.shape[0], -1, h, w)

    def _out_size(self, h: int, w: int) -> tuple[int, int]:
        sizes = []
        for i, d in enumerate((h, w)):
            span = self.dilation[i] * (self.kernel_size[i] - 1) + 1
            sizes.append((d + 2 * self.padding[i] - span) // self.stride[i] + 1)
        return sizes[0], sizes[1]

    def macs_per_sample(self, x: torch.Tensor, out: torch.Tensor) -> int:
        positions = out.shape[-1] * out.shape[-2]
        squares = x[0].numel() if self._squares_input() else 0  # x⊙x once over the input map
        return int(positions * self.macs_per_output() + squares)

    def extra_repr(self) -> str:
        rank = f", rank={self.rank}" if self.form == "efficient" else ""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, form={self.form}{rank}, bias={self.bias is not None}"
        )


def from_linear(layer: nn.Linear, form: str, rank: int, init_scale: float) -> QuadraticLinear:
    """A quadratic layer whose linear part is ``layer``'s weight and bias."""
    q = QuadraticLinear(layer.in_features, layer.out_features, layer.bias is not None, form, rank, init_scale)
    _copy_linear_part(q, layer)
    return q


def from_conv(layer: nn.Conv2d, form: str, rank: int, init_scale: float) -> QuadraticConv2d:
    q = QuadraticConv2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,  # type: ignore[arg-type]
        layer.dilation, layer.bias is not None, form, rank, init_scale,
    )  # fmt: skip
    _copy_linear_part(q, layer)
    return q


@torch.no_grad()
def _copy_linear_part(q: _Quadratic, layer: nn.Module) -> None:
    q.to(device=layer.weight.device, dtype=layer.weight.dtype)
    q.weight.copy_(layer.weight)
    if layer.bias is not None:
        q.bias.copy_(layer.bias)
