import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import frugalnn
from frugalnn.core.quant import QuantConfig, QuantConv2d, QuantLinear, calibrate, integer_forward, quantize
from frugalnn.methods.encoding_mac import EncodedConv2d, EncodedLinear, EncodingConfig, encode, exact_encoder


def tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
    )  # fmt: skip


def lut_reference(layer, x, lut, bits):
    """Brute force in float64: every product looked up in the table, summed, scaled."""
    xq = quantize(x, layer.act_scale, bits).long() & ((1 << bits) - 1)
    wq = quantize(layer.weight.detach(), layer.weight_scale().detach(), bits).long() & ((1 << bits) - 1)
    lut = torch.as_tensor(lut)
    s = (layer.act_scale * layer.weight_scale().detach().reshape(-1)).double()
    if isinstance(layer, nn.Linear):
        acc = lut[xq[:, None, :], wq[None, :, :]].sum(-1).double()
        return acc * s + layer.bias.detach().double()
    p = layer.padding
    cols = F.unfold(
        F.pad(xq, (p[1], p[1], p[0], p[0])).double(), layer.kernel_size, stride=layer.stride
    ).long()
    wf = wq.reshape(wq.shape[0], -1)
    acc = lut[cols[:, None, :, :], wf[None, :, :, None]].sum(2).double()
    out = acc * s.reshape(1, -1, 1) + layer.bias.detach().double().reshape(1, -1, 1)
    h = (x.shape[2] + 2 * p[0] - layer.kernel_size[0]) // layer.stride[0] + 1
    return out.reshape(x.shape[0], -1, h, out.shape[-1] // h)


def test_exact_encoder_equals_the_integer_layer():
    x = torch.randn(4, 2, 6, 6)
    ref = tiny()
    from frugalnn.core.quant import quantize_model

    quantize_model(ref, QuantConfig(4, 4, per_channel=True))
    calibrate(ref, x)
    model = encode(tiny(), exact_encoder(4))
    model.load_state_dict(ref.state_dict(), strict=False)
    with torch.no_grad():
        h_enc, h_ref = x, x
        for m_enc, m_ref in zip(model, ref):
            if isinstance(m_ref, QuantLinear | QuantConv2d):
                _, want = integer_forward(m_ref, h_ref)
                assert torch.allclose(m_enc(h_enc).double(), want, atol=1e-5)
            h_enc, h_ref = m_enc(h_enc), m_ref(h_ref)


def test_encoded_layers_equal_brute_force_table_sums(enc4):
    x = torch.randn(3, 2, 6, 6)
    model = encode(tiny(1), enc4)
    calibrate(model, x)
    assert all(m.err_u.shape[1] > 0 for m in model if isinstance(m, EncodedLinear | EncodedConv2d))
    with torch.no_grad():
        h = x
        for m in model:
            if isinstance(m, EncodedLinear | EncodedConv2d):
                torch.testing.assert_close(
                    m(h).double(), lut_reference(m, h, enc4.lut, 4), atol=1e-5, rtol=1e-5
                )
            h = m(h)


def test_gradient_is_the_exact_product_gradient(enc4):
    torch.manual_seed(2)
    x = torch.randn(8, 6, requires_grad=True)
    enc_layer = EncodedLinear(6, 3, True, enc4.lut, 4)
    plain = QuantLinear(6, 3, True, QuantConfig(4, 4, per_channel=True))
    plain.load_state_dict(enc_layer.state_dict(), strict=False)
    for m in (enc_layer, plain):
        calibrate(m, x.detach())
    out_e, out_p = enc_layer(x), plain(x)
    assert not torch.allclose(out_e, out_p)  # the table is approximate
    g = torch.randn_like(out_e)
    gx_e, gw_e = torch.autograd.grad(out_e, (x, enc_layer.weight), g)
    gx_p, gw_p = torch.autograd.grad(out_p, (x, plain.weight), g)
    torch.testing.assert_close(gx_e, gx_p)
    torch.testing.assert_close(gw_e, gw_p)


def test_apply_on_a_hand_built_model_and_checkpoint_round_trip(enc4, tmp_path):
    from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
    from frugalnn.core.data import load_digits
    from frugalnn.core.models import ModelSpec, build_model

    data = load_digits()
    spec = ModelSpec("mlp", data.num_classes, data.in_channels, data.image_size)
    model = build_model(spec)
    cfg = EncodingConfig(bits=4, max_steps=3, batch_size=32, finetune_lr=1e-3)
    model, rec = frugalnn.apply(model, cfg, data=data, encoder=enc4, progress=False)
    assert rec["finetune"]["steps"] == 3 and 0.0 <= rec["acc"] <= 1.0
    assert any(isinstance(m, EncodedLinear) for m in model.modules())
    save_checkpoint(tmp_path / "ck", model, spec, {"transforms": [rec["transform"]]})
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(data.x_test[:50]), model(data.x_test[:50]))
    with pytest.raises(frugalnn.errors.ConfigError, match="4-bit"):
        frugalnn.apply(build_model(spec), EncodingConfig(bits=8, init="random"), encoder=enc4)
    luts = [m.lut.numpy() for m in loaded.modules() if isinstance(m, EncodedLinear)]
    assert luts and all(np.array_equal(lut, enc4.lut) for lut in luts)


def test_trained_position_weights_forward_equals_the_table_and_learns(enc4):
    from frugalnn.methods.encoding_mac.trained import freeze, make_trainable

    x = torch.randn(3, 2, 6, 6)
    model = encode(tiny(4), enc4)
    calibrate(model, x)
    with torch.no_grad():
        want = model(x)
    weights = make_trainable(model, enc4)
    got = model(x)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # delta = 0: the solved table
    got.square().sum().backward()
    assert weights.grad is not None and weights.grad.abs().sum() > 0
    assert [p for p in model.parameters() if p is weights] == [weights]
    with torch.no_grad():
        weights.fill_(0.5)
    trained = freeze(model, enc4, weights)
    assert trained.weights != enc4.weights and trained.gates == enc4.gates
    assert all(torch.equal(m.lut, torch.as_tensor(trained.lut)) for m in model.modules() if hasattr(m, "lut"))


def test_apply_with_trained_position_weights(enc4):
    from frugalnn.core.data import load_digits
    from frugalnn.core.models import ModelSpec, build_model

    data = load_digits()
    model = build_model(ModelSpec("mlp", data.num_classes, data.in_channels, data.image_size))
    cfg = EncodingConfig(bits=4, max_steps=3, batch_size=32, finetune_lr=0.05, position_weights="trained")
    model, rec = frugalnn.apply(model, cfg, data=data, encoder=enc4, progress=False)
    assert rec["trained_weights"] != enc4.weights and len(rec["trained_weights"]) == len(enc4.weights)
    assert rec["transform"]["config"]["encoder"]["weights"] == rec["trained_weights"]
    assert not any(p.dtype == torch.float64 for p in model.parameters())


def test_integer_sum_falls_back_to_float64_when_float32_drifts():
    from frugalnn.methods.encoding_mac.layers import integer_sum

    three = torch.tensor([[3.0]], dtype=torch.float64)
    calls = []

    def fn(u, v):
        calls.append(u.dtype)
        return u @ v.T + 0.4 * (u.dtype == torch.float32)  # a float32 result far from an integer

    out = integer_sum(fn, three, torch.ones(1, 1, dtype=torch.float64))
    assert calls == [torch.float32, torch.float64] and out.item() == 3.0
