"""CorrectNet: regulariser gradient in closed form, placement search on a known toy, σ=0 equality,
save/load through the checkpoint's transforms, bad input."""

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
from frugalnn.core.config import FieldError
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import UnsupportedModelError
from frugalnn.hw.crossbar import convert_to_analog
from frugalnn.hw.crossbar_mc import monte_carlo_accuracy
from frugalnn.methods.correctnet import (
    CorrectNetConfig,
    compensations,
    gram_penalty,
    insert_compensation,
    overhead,
    reinforce_placement,
    transform_entry,
)


@pytest.mark.parametrize("shape", [(7, 4), (3, 9), (5, 2, 3, 3)])
def test_regulariser_gradient_matches_closed_form(shape):
    torch.manual_seed(0)
    w = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    beta = 1.7
    gram_penalty(w, beta).backward()
    w2 = w.detach().reshape(shape[0], -1)
    if w2.shape[0] < w2.shape[1]:  # d/dW ‖WWᵀ − βI‖² = 4(WWᵀ − βI)W
        closed = 4 * (w2 @ w2.T - beta * torch.eye(w2.shape[0], dtype=w2.dtype)) @ w2
    else:  # d/dW ‖WᵀW − βI‖² = 4W(WᵀW − βI)
        closed = 4 * w2 @ (w2.T @ w2 - beta * torch.eye(w2.shape[1], dtype=w2.dtype))
    torch.testing.assert_close(w.grad.reshape(shape[0], -1), closed, rtol=1e-12, atol=1e-12)
    q, _ = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))  # orthonormal columns: penalty 0 at β=1
    assert float(gram_penalty(q, 1.0)) < 1e-20


def test_placement_search_finds_known_best_on_toy():
    # layer l adds gain[l] accuracy at cost[l] % MACs; l2 and l4 interact (only together worth it)
    names = ["l0", "l1", "l2", "l3", "l4", "l5"]
    gain = dict(zip(names, [0.02, 0.10, 0.01, 0.06, 0.01, 0.03], strict=True))
    cost = dict(zip(names, [3.0, 1.0, 0.5, 1.5, 0.5, 4.0], strict=True))

    def score(p):
        acc = 0.5 + sum(gain[n] for n in p) + (0.05 if {"l2", "l4"} <= set(p) else 0.0)
        return acc, sum(cost[n] for n in p)

    def reward(p):
        acc, ovh = score(p)
        return acc - 0.01 * ovh - (1.0 if ovh > 5.0 else 0.0)

    subsets = [c for k in range(len(names) + 1) for c in itertools.combinations(names, k)]
    best = max(subsets, key=reward)
    res = reinforce_placement(names, score, budget_pct=5.0, overhead_weight=0.01, iterations=40,
                              samples=6, seed=0, progress=False)  # fmt: skip
    assert res.best == best and res.best_reward == pytest.approx(reward(best))
    assert len(res.scored) < len(subsets)  # it searched, it did not enumerate


def _tiny_data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long() + 2 * (
        x[:, 0, :, :4].mean((1, 2)) > 0
    ).long()
    return SimpleNamespace(x_train=x, y_train=y, x_val=x[:48], y_val=y[:48], x_test=x, y_test=y)


def _hand_built():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))  # fmt: skip


def test_apply_on_hand_built_model_and_ideal_analog_equals_digital():
    data = _tiny_data()
    cfg = CorrectNetConfig(sigma=0.0, ideal_converters=True, lipschitz_steps=5, placement="all",
                           comp_steps=5, batch_size=16, train_chips=2)  # fmt: skip
    model, record = frugalnn.apply(_hand_built(), cfg, data=data)
    assert record["placement"] == ["0", "4", "6"] and set(compensations(model)) == {"0", "4", "6"}
    assert any(float(c.gamma.detach().abs().sum()) > 0 for c in compensations(model).values())  # trained
    analog = convert_to_analog(model, cfg.crossbar())
    assert type(analog[0].comp) is type(model[0].comp)  # compensation stays digital
    with torch.no_grad():
        torch.testing.assert_close(analog(data.x_test), model(data.x_test), rtol=0, atol=1e-5)
    ovh = record["overhead"]
    assert ovh["extra_params"] == sum(
        p.numel() for c in compensations(model).values() for p in c.parameters()
    )


def test_overhead_counts_by_hand():
    model = build_model(ModelSpec("lenet5", 10, 1, 28))
    # after conv1 (6 channels, 28·28 positions, r = 2) and fc1 (120 features, r = 2)
    o = overhead(model, ["features.0", "classifier.1"], 2, torch.zeros(1, 1, 28, 28))
    assert o["extra_macs"] == 784 * 6 * (1 + 4) + 120 * (1 + 4)
    assert o["extra_params"] == 2 * 6 + 2 * 6 * 2 + 2 * 120 + 2 * 120 * 2
    assert o["base_macs"] == 416_520


def test_compensated_checkpoint_loads_back(tmp_path):
    spec = ModelSpec("lenet5", 10, 1, 28)
    model = insert_compensation(build_model(spec), ["features.3", "classifier.3"], 3)
    for c in compensations(model).values():
        nn.init.normal_(c.gamma)
        nn.init.normal_(c.up.weight)
    cfg = CorrectNetConfig(comp_rank=3)
    save_checkpoint(tmp_path / "ck", model, spec, {"transforms": [transform_entry(model, cfg)]})
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_bad_input_is_named():
    data = _tiny_data()
    with pytest.raises(FieldError, match="sigma"):
        CorrectNetConfig(sigma=-0.1).validate()
    with pytest.raises(FieldError, match="nope"):
        frugalnn.apply(_hand_built(), CorrectNetConfig(placement="given", layers=("nope",)), data=data)
    with pytest.raises(UnsupportedModelError, match="Linear/Conv2d"):
        frugalnn.apply(nn.Sequential(nn.Flatten(), nn.ReLU()), CorrectNetConfig(), data=data)
    with pytest.raises(frugalnn.errors.ConfigError, match="draws"):
        monte_carlo_accuracy(_hand_built(), data.x_test, data.y_test, 0, CorrectNetConfig().crossbar())
