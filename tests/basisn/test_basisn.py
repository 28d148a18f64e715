"""BasisN: exact reconstruction at full basis, shared storage, quantiser levels, training, checkpoints."""

import numpy as np
import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.core.config import FieldError
from frugalnn.methods.basisn import BasisNConfig, basis_layers, shared_basis
from frugalnn.methods.basisn.layers import init_scale, quantize_coefficients


def tiny_net() -> nn.Module:
    """Built by hand: K = 2·3·3 = 18 (two row tiles of 9 on 16 rows), K = 4·2·2 = 16, then K = 36 -> 5."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 2, stride=2, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
    )  # fmt: skip


def test_full_basis_float_coefficients_equal_the_original_exactly():
    net = tiny_net().double()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64)
    cfg = BasisNConfig(crossbars=2, crossbar_size=16, n_basis=16, coef_bits=32, group_size=4, steps=0)
    basis_net, record = frugalnn.apply(net, cfg)
    basis_net = basis_net.double()
    assert record["n_basis"] == 16 and record["layers"] == 3
    # reference: float64 numpy re-run of every kernel from its column vectors B[:h]·C
    for (_, new), old in zip(basis_layers(basis_net), [net[0], net[2], net[5]], strict=True):
        b = new.basis.weight.detach().numpy()
        w = b[: new.chunk_height] @ new.coef.detach().numpy()
        w = w.reshape(new.chunk_height, new.row_tiles, new.n_out).transpose(2, 1, 0).reshape(new.n_out, -1)
        np.testing.assert_allclose(
            w[:, : new.k_in], old.weight.detach().reshape(new.n_out, -1).numpy(), atol=1e-10
        )
    torch.testing.assert_close(basis_net(x), net(x), atol=1e-10, rtol=1e-9)


def test_truncated_basis_is_inexact_and_fewer_vectors_err_more():
    net = tiny_net()
    errs = [frugalnn.apply(net, BasisNConfig(crossbars=2, crossbar_size=16, n_basis=k, coef_bits=32,
                                             group_size=4, steps=0))[1]["init_relative_error"]
            for k in (16, 8, 2)]  # fmt: skip
    assert errs[0] < 1e-6 < errs[1] < errs[2]


def test_one_basis_storage_shared_by_every_layer(tmp_path):
    from frugalnn.core.checkpoint import load_checkpoint
    from frugalnn.core.models import ModelSpec, build_model
    from frugalnn.methods.basisn import save_basisn

    spec = ModelSpec("lenet5")
    cfg = BasisNConfig(crossbars=1, crossbar_size=32, coef_bits=4, steps=0)
    model, _ = frugalnn.apply(build_model(spec), cfg)
    layers = basis_layers(model)
    assert len(layers) == 5
    basis = shared_basis(model).weight
    assert all(m.basis.weight is basis for _, m in layers)
    assert len({m.basis.weight.data_ptr() for _, m in layers}) == 1
    assert sum(p is basis for p in model.parameters()) == 1  # the optimiser sees it once
    save_basisn(tmp_path / "ck", model, spec, cfg)
    loaded, _, meta = load_checkpoint(tmp_path / "ck")
    assert meta["transforms"][0]["name"] == "basisn"
    lb = shared_basis(loaded).weight
    assert all(m.basis.weight is lb for _, m in basis_layers(loaded))
    x = torch.randn(2, 1, 28, 28)
    model.eval(), loaded.eval()
    torch.testing.assert_close(loaded(x), model(x))


def test_quantiser_levels_and_scale_against_numpy():
    c = torch.randn(40, 6, dtype=torch.float64)
    for bits in (1, 2, 4):
        s = init_scale(c, bits)
        q = quantize_coefficients(c, s, bits).numpy()
        sn = s.numpy()
        if bits == 1:
            ref = np.where(c.numpy() >= 0, 1.0, -1.0) * sn
            np.testing.assert_allclose(sn, np.abs(c.numpy()).mean(0))
        else:
            m = 2 ** (bits - 1) - 1
            ref = np.round(np.clip(c.numpy() / sn, -1, 1) * m) / m * sn
        np.testing.assert_allclose(q, ref, atol=1e-12)
        assert all(len(np.unique(q[:, j])) <= 2**bits - 1 + (bits == 1) for j in range(6))
    # straight-through: the gradient reaches the float coefficients unchanged inside the range
    cg = c.clone().requires_grad_()
    quantize_coefficients(cg, torch.full((6,), 10.0, dtype=torch.float64), 4).sum().backward()
    torch.testing.assert_close(cg.grad, torch.ones_like(c))


def test_training_lowers_loss_and_group_lasso_zeroes_groups():
    from frugalnn.core.data import load_digits
    from frugalnn.core.measure import accuracy

    data = load_digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.x_train), data.y_train).backward()
        opt.step()
    base = dict(crossbars=1, crossbar_size=32, n_basis=8, coef_bits=3, group_size=4, batch_size=64)
    untrained, _ = frugalnn.apply(net, BasisNConfig(**base, steps=0))
    trained, rec = frugalnn.apply(net, BasisNConfig(**base, steps=120, lr=3e-3, group_reg=0.0), data=data)
    before = accuracy(untrained, data.x_test, data.y_test)
    assert accuracy(trained, data.x_test, data.y_test) > before
    assert rec["train"]["active_group_share"] == 1.0
    _, sparse = frugalnn.apply(net, BasisNConfig(**base, steps=60, lr=3e-3, group_reg=30.0), data=data)
    assert sparse["train"]["active_group_share"] < 1.0
    _, alt = frugalnn.apply(net, BasisNConfig(**base, steps=4, schedule="alternating"), data=data)
    assert alt["train"]["steps"] == 4


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"crossbars": 0}, "crossbars", "must be >= 1"),
        (
            {"crossbars": 1, "n_basis": 128},
            "crossbars",
            "too small even for the basis: 128 basis vectors need at least 2",
        ),
        ({"coef_bits": 0}, "coef_bits", "must be in [1, 32]"),
        ({"n_basis": 200}, "n_basis", "must be at most the crossbar height 128"),
        ({"group_size": 24}, "group_size", "must divide the 64 basis vectors"),
    ],
)
def test_bad_config_names_the_field(fields, field, text):
    with pytest.raises(FieldError, match=text.replace("[", r"\[").replace("]", r"\]")) as err:
        BasisNConfig(**fields).validate()
    assert err.value.field == field


def test_config_round_trip_and_presets():
    cfg = BasisNConfig.preset("paper", crossbars=4)
    assert BasisNConfig.from_dict(cfg.to_dict()) == cfg
    assert (
        cfg.resolved_n_basis() == 64 and BasisNConfig(crossbars=1, crossbar_size=32).resolved_n_basis() == 16
    )
