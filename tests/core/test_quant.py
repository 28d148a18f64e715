import numpy as np
import pytest
import torch

from frugalnn.core.quant import (
    QuantConfig,
    QuantConv2d,
    QuantLinear,
    calibrate,
    fake_quant,
    integer_forward,
    quantize,
    quantize_model,
    symmetric_scale,
)
from frugalnn.errors import ConfigError


def test_grid_and_scales_numpy_reference():
    w = torch.randn(5, 7, dtype=torch.float64)
    s = symmetric_scale(w, 8, per_channel=True)
    ref = np.abs(w.numpy()).max(axis=1, keepdims=True) / 127
    np.testing.assert_allclose(s.numpy(), ref)
    q = quantize(w, s, 8)
    np.testing.assert_array_equal(q.numpy(), np.clip(np.round(w.numpy() / ref), -127, 127))
    assert q.abs().max() == 127  # the max of each row maps to +-127


def test_ste_passes_gradient_inside_range():
    x = torch.tensor([0.1, -0.5, 0.9], requires_grad=True)
    y = fake_quant(x, torch.tensor(1.0 / 127), 8)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))
    x2 = torch.tensor([5.0], requires_grad=True)  # beyond the clipping range: no gradient
    fake_quant(x2, torch.tensor(1.0 / 127), 8).sum().backward()
    assert x2.grad.item() == 0


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_integer_path_equals_fake_quant_on_the_grid(per_channel, kind):
    torch.manual_seed(0)
    cfg = QuantConfig(per_channel=per_channel)
    if kind == "linear":
        layer = QuantLinear(12, 5, config=cfg).double()
        x = torch.randn(6, 12, dtype=torch.float64)
    else:
        layer = QuantConv2d(3, 4, 3, stride=2, padding=1, config=cfg).double()
        x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    calibrate(layer, x)
    with torch.no_grad():
        fake = layer(x)
    acc, out = integer_forward(layer, x)
    assert acc.dtype == torch.int64
    torch.testing.assert_close(out, fake, rtol=0, atol=1e-12)
    # on the integer grid: (fake - bias) / (s_x * s_w) is exactly the integer accumulator
    s_w = layer.weight_scale()
    shape = (1, -1) if kind == "linear" else (1, -1, 1, 1)
    scale = layer.act_scale * (s_w.reshape(shape) if per_channel else s_w)
    grid = (fake - layer.bias.detach().reshape(shape)) / scale
    assert torch.equal(torch.round(grid).to(torch.int64), acc)
    assert (grid - acc).abs().max() < 1e-6


def test_quantize_model_swaps_and_keeps_weights():
    from frugalnn.core.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet5")
    before = model.features[0].weight.clone()
    x = torch.randn(4, 1, 28, 28)
    ref = model(x)
    quantize_model(model, QuantConfig())
    assert isinstance(model.features[0], QuantConv2d) and isinstance(model.classifier[1], QuantLinear)
    assert torch.equal(model.features[0].weight, before)
    with pytest.raises(ConfigError, match="calibrate"):
        model(x)
    calibrate(model, x)
    out = model(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # int8 is close to float
    with pytest.raises(ConfigError):
        QuantConfig(weight_bits=1).validate()


def test_quantised_checkpoint_loads_back_through_its_transform(tmp_path):
    from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
    from frugalnn.core.models import ModelSpec, build_model
    from frugalnn.core.quant import calibrate, quant_transform, quantize_model

    spec = ModelSpec("lenet5", image_size=28)
    torch.manual_seed(0)
    config = QuantConfig(weight_bits=6, per_channel=False)
    model = calibrate(quantize_model(build_model(spec), config), torch.randn(16, 1, 28, 28)).eval()
    save_checkpoint(tmp_path, model, spec, transforms=[quant_transform(config)])
    loaded, _, _ = load_checkpoint(tmp_path)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(loaded.eval()(x), model(x))
    layers = [m for m in loaded.modules() if hasattr(m, "act_scale")]
    assert layers and all(m.config == config and float(m.act_scale) > 0 for m in layers)
