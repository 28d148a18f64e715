"""quadratize on hand-built models: selection, kept weights, widening, bad input, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
from frugalnn.core.config import FieldError
from frugalnn.core.measure import count_params
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.methods.quadratic import QuadraticConfig, QuadraticConv2d, QuadraticLinear, quadratize


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 4 * 4, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.out(torch.relu(self.head(torch.flatten(x, 1))))


def test_apply_swaps_every_layer_and_keeps_the_function() -> None:
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(5, 1, 8, 8)
    before = net(x)
    net, record = frugalnn.apply(net, QuadraticConfig(form="efficient", rank=2))
    assert isinstance(net.conv, QuadraticConv2d) and isinstance(net.out, QuadraticLinear)
    assert torch.equal(net(x), before)  # quadratic weights start at zero
    extra = (2 * 9 + 4 * 2) + (2 * 64 + 6 * 2) + (2 * 6 + 3 * 2)
    assert record["params_after"] - record["params_before"] == extra
    assert [layer["name"] for layer in record["layers"]] == ["conv", "head", "out"]


def test_filter_fn_and_include_choose_layers() -> None:
    net, rec = quadratize(Net(), QuadraticConfig(form="square"), filter_fn=lambda m, n: n == "head")
    assert isinstance(net.head, QuadraticLinear) and isinstance(net.out, nn.Linear)
    assert rec["transform"]["config"]["include"] == ["head"]
    net, _ = quadratize(Net(), QuadraticConfig(form="power", layers="conv"))
    assert isinstance(net.conv, QuadraticConv2d) and type(net.head) is nn.Linear


def test_width_widens_hidden_layers_through_bn_pool_and_flatten() -> None:
    torch.manual_seed(0)
    net, rec = quadratize(Net(), QuadraticConfig(form="linear", width=2.0))
    assert rec["widened"] == {"conv": 8, "head": 12}
    assert "out" in rec["kept"]
    assert net.bn.num_features == 8 and net.head.in_features == 8 * 16 and net.out.in_features == 12
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    narrow, _ = quadratize(Net(), QuadraticConfig(form="efficient", rank=1, width=0.5))
    assert narrow.head.out_features == 3 and narrow(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_width_keeps_the_old_weights_in_the_overlap() -> None:
    net = Net()
    old = net.head.weight.detach().clone()
    net, _ = quadratize(net, QuadraticConfig(form="linear", width=1.5))
    # head reads a flattened (channels, 16) map: the old channels keep their columns
    new = net.head.weight.detach().view(9, 6, 16)
    assert torch.equal(new[:6, :4], old.view(6, 4, 16))


@pytest.mark.parametrize(
    ("config", "error", "text"),
    [
        (dict(form="cubic"), FieldError, "form must be one of"),
        (dict(rank=0), FieldError, "rank must be >= 1"),
        (dict(rank=10), FieldError, "'conv' has 9"),
        (dict(include=("bn",)), UnsupportedModelError, "'bn' is a BatchNorm2d"),
        (dict(include=("nothing*",)), ConfigError, "no layer of the model matches"),
        (dict(width=0.0), FieldError, "width must be"),
    ],
)
def test_bad_input_is_one_typed_line(config: dict, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as info:
        quadratize(Net(), QuadraticConfig(**config))
    assert "\n" not in str(info.value)


def test_grouped_conv_is_named() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(UnsupportedModelError, match="'0' is a grouped"):
        quadratize(model, QuadraticConfig())


def test_checkpoint_records_the_swap_and_loads(tmp_path) -> None:
    torch.manual_seed(0)
    spec = ModelSpec("lenet5")
    model = build_model(spec)
    model, rec = quadratize(model, QuadraticConfig(form="fan", layers="linear", width=1.25, init_scale=0.1))
    save_checkpoint(tmp_path, model, spec, {"transforms": [rec["transform"]]})
    loaded, _, _ = load_checkpoint(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    assert count_params(loaded) == count_params(model)
    assert torch.equal(loaded.eval()(x), model.eval()(x))
