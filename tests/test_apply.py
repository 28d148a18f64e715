"""``frugalnn.apply(model, config, **inputs)`` on models a user builds by hand (not from the zoo), for
every method; the same call as each method's own verb."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import LlamaConfig, LlamaForCausalLM

import frugalnn
from frugalnn.core.data import load_digits
from frugalnn.core.measure import count_macs
from frugalnn.errors import ConfigError
from frugalnn.methods import registered
from frugalnn.methods.basis_sharing import BasisSharingConfig, SharedBasisLinear
from frugalnn.methods.class_pruning import ClassPruningConfig, L1Importance, prune_step
from frugalnn.methods.early_exit import EarlyExitConfig, EarlyExitModel
from frugalnn.methods.livemind import LiveMindConfig, LiveMindController, ScriptedBackend


def user_cnn() -> nn.Module:
    """A plain CNN of the user's own, 1x8x8 inputs (sklearn digits)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
    )


def test_every_method_is_registered() -> None:
    names = {cls.__name__ for cls in registered()}
    assert {"BasisSharingConfig", "ClassPruningConfig", "EarlyExitConfig", "LiveMindConfig"} <= names
    with pytest.raises(ConfigError, match="no method takes a dict"):
        frugalnn.apply(nn.Linear(2, 2), {"ratio": 0.5})


def test_class_pruning_on_a_user_cnn_with_a_dataloader_or_tensors() -> None:
    data = load_digits()
    x, y = data.x_train[:256], data.y_train[:256]
    cfg = ClassPruningConfig.preset(
        "l1", ratio=0.5, iterations=1, pretrain_steps=0, finetune_steps=2, final_steps=2, batch_size=32,
        val_images=None,
    )  # fmt: skip
    model = user_cnn()
    pruned, record = frugalnn.apply(model, cfg, data=(x, y), val_data=(data.x_val[:64], data.y_val[:64]))
    loader = DataLoader(TensorDataset(x, y), batch_size=50)  # any (x, y) batches
    from_loader, _ = frugalnn.apply(model, cfg, data=loader, val_data=(data.x_val[:64], data.y_val[:64]))
    example = x[:1]
    assert count_macs(pruned, example) <= 0.5 * count_macs(model, example)
    assert record["mac_reduction"] >= 0.5 and 0 <= record["val_accuracy"] <= 1
    for a, b in zip(pruned.state_dict().values(), from_loader.state_dict().values()):
        assert torch.equal(a, b)  # the same images in the same order: the same model


def test_prune_step_removes_the_smallest_l1_filters() -> None:
    model = user_cnn()
    w = model[0][0].weight.detach().numpy().astype(np.float64)
    norms = np.abs(w).sum(axis=(1, 2, 3))
    example = torch.zeros(1, 1, 8, 8)
    before = count_macs(model, example)
    record = prune_step(model, example, L1Importance(), ratio=0.3, round_to=4)
    assert record["macs_after"] == count_macs(model, example) <= 0.7 * before
    kept = model[0][0].weight.detach().numpy().astype(np.float64)
    n_kept = kept.shape[0]
    # the kept filters are the n_kept largest by L1 norm, in their original order (float64 reference)
    expected = np.sort(np.argsort(norms)[len(norms) - n_kept :])
    np.testing.assert_allclose(kept, w[expected], rtol=0, atol=0)


def test_early_exit_on_a_user_cnn() -> None:
    model = user_cnn().eval()
    cfg = EarlyExitConfig(exits=("0", "1"), input_shape=(1, 8, 8))
    ee, record = frugalnn.apply(model, cfg)
    assert isinstance(ee, EarlyExitModel) and len(ee.heads) == 2
    assert record["config"]["exits"] == ["0", "1"] and record["config"]["config_of"] == "early-exit"
    x = load_digits().x_test[:8]
    with torch.no_grad():
        heads, final = ee.outputs(x)
        assert torch.equal(final, model(x)) and [h.shape for h in heads] == [(8, 10), (8, 10)]


def test_basis_sharing_on_a_user_built_llama() -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    before = sum(p.numel() for p in model.parameters())
    calib = torch.randint(0, 64, (4, 16))
    out, record = frugalnn.apply(model, BasisSharingConfig(ratio=0.3), calib=calib, progress=False)
    assert any(isinstance(m, SharedBasisLinear) for m in out.modules())
    assert sum(p.numel() for p in out.parameters()) < before
    assert record["config"]["ratio"] == 0.3 and record["config"]["config_of"] == "basis-sharing"
    assert torch.isfinite(out(calib).logits).all()


def test_livemind_on_a_backend_of_the_users() -> None:
    backend = ScriptedBackend(["The answer is (B)"])
    controller, record = frugalnn.apply(backend, LiveMindConfig.preset("paper"))
    assert isinstance(controller, LiveMindController) and record["config"]["answer_mode"] == "generate"
    with pytest.raises(ConfigError, match="tokenizer is required"):
        frugalnn.apply(nn.Linear(2, 2), LiveMindConfig())
