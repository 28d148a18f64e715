"""Quadratic layers: gradients, the conv form against an unfold reference in float64 numpy, the linear
part at zero quadratic weights, and parameter / MAC counts against hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frugalnn.core.measure import count_params, mac_profile
from frugalnn.methods.quadratic import FORMS, QuadraticConv2d, QuadraticLinear


def _layer(kind: str, form: str, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    if kind == "linear":
        layer = QuadraticLinear(5, 3, form=form, rank=2, init_scale=0.3)
    else:
        layer = QuadraticConv2d(2, 4, 3, stride=2, padding=1, form=form, rank=2, init_scale=0.3)
    return layer.to(dtype)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_gradcheck_every_form(kind: str, form: str) -> None:
    layer = _layer(kind, form)
    shape = (2, 5) if kind == "linear" else (1, 2, 5, 5)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    params = tuple(layer.parameters())
    assert torch.autograd.gradcheck(lambda x, *p: _call(layer, params, x, p), (x, *params))


def _call(layer: nn.Module, names: tuple, x: torch.Tensor, values: tuple) -> torch.Tensor:
    return torch.func.functional_call(
        layer, {n: v for (n, _), v in zip(layer.named_parameters(), values, strict=True)}, (x,)
    )


def _reference(layer: QuadraticConv2d, x: np.ndarray) -> np.ndarray:
    """The conv form per receptive field, from explicitly cut patches, in float64 numpy."""
    p = {n: t.detach().numpy().astype(np.float64) for n, t in layer.named_parameters()}
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    patches = np.stack(
        [
            xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(x.shape[0], -1)
            for i in range(oh)
            for j in range(ow)
        ],
        axis=1,
    )  # (B, L, n)
    flat = {n: v.reshape(v.shape[0], -1) for n, v in p.items() if v.ndim == 4}
    z = patches @ flat["weight"].T + p["bias"]
    f = layer.form
    if f == "efficient":
        y = z + ((patches @ flat["q"].T) ** 2) @ p["lam"].T
    elif f == "full":
        y = z + np.einsum("bli,jik,blk->blj", patches, p["a"], patches)
    elif f == "square":
        y = z + (patches**2) @ flat["v"].T
    elif f == "power":
        y = z + p["gamma"] * z**2
    elif f == "product":
        y = z * (patches @ flat["wg"].T + 1 + p["beta"])
    elif f == "quadranet":
        y = z + (patches @ flat["wa"].T) * (patches @ flat["wb"].T)
    else:
        y = z * (patches @ flat["wg"].T + 1 + p["beta"]) + (patches**2) @ flat["v"].T + p["c"]
    return y.transpose(0, 2, 1).reshape(x.shape[0], -1, oh, ow)


@pytest.mark.parametrize("form", FORMS)
def test_conv_equals_unfold_reference(form: str) -> None:
    layer = _layer("conv", form)
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64)
    got = layer(x).detach().numpy()
    np.testing.assert_allclose(got, _reference(layer, x.numpy()), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_zero_quadratic_weights_give_the_linear_part_exactly(kind: str, form: str) -> None:
    layer = _layer(kind, form, torch.float32)
    with torch.no_grad():
        for p in layer.quadratic_parameters():
            p.zero_()
    if kind == "linear":
        plain = nn.Linear(5, 3)
        x = torch.randn(4, 5)
    else:
        plain = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        x = torch.randn(2, 2, 6, 6)
    plain.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    assert torch.equal(layer(x), plain(x))


# MACs per sample counted by hand (every multiplication one MAC, input squares once per input value):
# Linear 5 -> 3 (rank 2):  linear part 15
#   efficient 15 + 2·5 + 2 + 3·2 = 33; full 15 + 3·(25 + 5) = 105; square 15 + 15 + 5 = 35;
#   power 15 + 3 + 3 = 21; product 15 + 15 + 3 = 33; quadranet 15 + 30 + 3 = 48; fan 15 + 30 + 3 + 5 = 53
# Conv 2 -> 4, 3x3, stride 2, pad 1 on 5x5: 9 positions, n = 18, linear part 9·72 = 648
#   efficient 9·(72 + 36 + 2 + 8) = 1062; full 9·(72 + 4·(324 + 18)) = 12960; square 9·144 + 50 = 1346;
#   power 9·(72 + 8) = 720; product 9·(144 + 4) = 1332; quadranet 9·(216 + 4) = 1980; fan 9·220 + 50 = 2030
HAND_MACS = {
    "linear": {"efficient": 33, "full": 105, "square": 35, "power": 21, "product": 33, "quadranet": 48, "fan": 53},
    "conv": {
        "efficient": 1062, "full": 12960, "square": 1346, "power": 720,
        "product": 1332, "quadranet": 1980, "fan": 2030,
    },
}  # fmt: skip
# extra parameters by hand: Linear n 5, m 3, k 2; Conv n 18, m 4, k 2
HAND_PARAMS = {
    "linear": {
        "efficient": 16,
        "full": 75,
        "square": 15,
        "power": 3,
        "product": 18,
        "quadranet": 30,
        "fan": 36,
    },
    "conv": {
        "efficient": 44,
        "full": 1296,
        "square": 72,
        "power": 4,
        "product": 76,
        "quadranet": 144,
        "fan": 152,
    },
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_counted_params_and_macs_match_hand_counts(kind: str, form: str) -> None:
    layer = _layer(kind, form, torch.float32)
    model = nn.Sequential(layer)
    x = torch.randn(3, 5) if kind == "linear" else torch.randn(3, 2, 5, 5)
    (cost,) = mac_profile(model, x)
    assert cost.macs == HAND_MACS[kind][form]
    base = 18 if kind == "linear" else 76
    assert cost.params == count_params(model) == sum(p.numel() for p in layer.parameters())
    assert cost.params == base + HAND_PARAMS[kind][form]


def test_linear_counts_rows_of_a_sequence() -> None:
    layer = QuadraticLinear(5, 3, form="efficient", rank=2)
    (cost,) = mac_profile(nn.Sequential(layer), torch.randn(2, 7, 5))
    assert cost.macs == 7 * 33
