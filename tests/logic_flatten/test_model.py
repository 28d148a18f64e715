import numpy as np
import pytest
import torch
from torch import nn

from frugalnn.errors import UnsupportedModelError
from frugalnn.methods.logic_flatten.model import LogicMLP, linear_stack, requant_constants, to_integer


def _calibrated(seed=0, sizes=(20, 12, 8, 5)):
    torch.manual_seed(seed)
    m = LogicMLP(list(sizes), 4, 4, 4)
    x = torch.randn(600, sizes[0])
    return m.calibrate(x).eval(), torch.randn(500, sizes[0])


def test_integer_model_equals_fake_quant_on_the_integer_grid():
    m, x = _calibrated()
    net = to_integer(m, requant_bits=16)
    codes = m.input_codes(x).numpy()
    out = net.forward(codes)
    with torch.no_grad():
        h = torch.from_numpy(codes).float() * m.in_scale
        for index, layer in enumerate(net.layers):
            pre = m._layer(index, h).double()
            grid = (m.codes_scale(index) * m.weight_scale(index)).reshape(1, -1).double()
            acc = torch.from_numpy(codes @ layer.weight.T + layer.bias).double()
            # every fake-quant pre-activation is the integer accumulator times s_x * s_w
            assert torch.allclose(pre, acc * grid, rtol=1e-5, atol=1e-5)
            if index == len(net.layers) - 1:
                assert np.array_equal(out["logits"], acc.numpy().astype(np.int64))
                assert np.array_equal(out["pred"], (pre.argmax(1)).numpy())
                break
            fq_codes = (
                torch.round(m._requant(index, pre.float()) / m.act_scales[index]).to(torch.int64).numpy()
            )
            # codes agree except where h / s_a sits within float error of a rounding boundary
            assert (fq_codes != out["hidden"][index]).mean() < 0.002
            assert np.abs(fq_codes - out["hidden"][index]).max() <= 1
            codes = out["hidden"][index]
            h = torch.from_numpy(codes).float() * m.act_scales[index]


def test_requant_constants_have_the_asked_precision():
    ratio = np.array([0.0123, 0.5, 1.7e-4, 0.999])
    mult, shift = requant_constants(ratio, 8)
    assert ((mult >= 128) & (mult < 256)).all()
    assert np.allclose(mult / 2.0**shift, ratio, rtol=1 / 128)


def test_linear_stack_names_layers_it_cannot_express():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    with pytest.raises(UnsupportedModelError, match=r"0 \(Conv2d\)"):
        linear_stack(cnn)
    with pytest.raises(UnsupportedModelError, match="one ReLU between"):
        linear_stack(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 2))
    assert [m.out_features for m in linear_stack(mlp)] == [3, 2]
