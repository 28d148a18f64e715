"""MAC and parameter counts against hand counts (closed forms written out independently)."""

import pytest
import torch

from frugalnn.core.measure import accuracy, count_macs, count_params, mac_profile
from frugalnn.core.models import build_model
from frugalnn.errors import ConfigError


def conv_macs(c_in, c_out, k, out_hw):
    return c_in * c_out * k * k * out_hw * out_hw


def test_lenet5_hand_count():
    m = build_model("lenet5")
    hand = (
        conv_macs(1, 6, 5, 28)  # padding 2 keeps 28x28
        + conv_macs(6, 16, 5, 10)
        + 400 * 120
        + 120 * 84
        + 84 * 10
    )
    assert hand == 416_520
    assert count_macs(m, torch.zeros(3, 1, 28, 28)) == hand
    params = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count_params(m) == params == 61_706


def test_resnet20_hand_count_32px():
    m = build_model("resnet20", in_channels=3, image_size=32)
    stem = conv_macs(3, 16, 3, 32)
    stage1 = 6 * conv_macs(16, 16, 3, 32)
    stage2 = conv_macs(16, 32, 3, 16) + 5 * conv_macs(32, 32, 3, 16) + conv_macs(16, 32, 1, 16)
    stage3 = conv_macs(32, 64, 3, 8) + 5 * conv_macs(64, 64, 3, 8) + conv_macs(32, 64, 1, 8)
    hand = stem + stage1 + stage2 + stage3 + 64 * 10
    assert count_macs(m, torch.zeros(1, 3, 32, 32)) == hand
    assert abs(hand / 1e6 - 40.8) < 0.05  # the usual "40.8 M MACs" of ResNet-20
    assert abs(count_params(m) / 1e6 - 0.27) < 0.005


def test_per_layer_profile_sums_and_names():
    m = build_model("vgg-small")
    prof = mac_profile(m, torch.zeros(2, 1, 28, 28))
    assert prof[0].name == "blocks.0.0" and prof[0].macs == conv_macs(1, 32, 3, 28)
    assert prof[-1].kind == "Linear" and prof[-1].macs == 128 * 10


def test_attention_macs_closed_form():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(cfg).eval()
    seq = 10
    prof = mac_profile(model, {"input_ids": torch.zeros(1, seq, dtype=torch.long)})
    attn = [r for r in prof if r.kind == "attention-matmuls"]
    assert len(attn) == 2
    head_dim = 32 // 4
    assert all(r.macs == 2 * 4 * seq * seq * head_dim for r in attn)  # QK^T and AV
    linear = sum(r.macs for r in prof if r.kind == "Linear")
    per_layer = seq * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 48)  # q, k/v (GQA), o, up/gate/down
    assert linear == 2 * per_layer + seq * 32 * 64  # + lm_head


def test_accuracy_and_errors():
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        m[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        m[1].bias.zero_()
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [2.0, 0, 0, 0]])
    assert accuracy(m, x, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="empty"):
        accuracy(m, x[:0], torch.tensor([], dtype=torch.long))


def test_layer_walker_visits_in_execution_order_and_cleans_up_after_an_error():
    from torch import nn

    from frugalnn.core.measure import walk_layers

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).train()
    seen = []
    walk_layers(
        model,
        torch.zeros(5, 4),
        lambda n, m: isinstance(m, nn.Linear),
        lambda n, m, i, k, o: seen.append((n, tuple(o.shape))),
    )
    assert seen == [("0", (5, 3)), ("2", (5, 2))] and model.training

    def boom(*_):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        walk_layers(model, torch.zeros(1, 4), lambda n, m: n == "0", boom)
    assert model.training and not model[0]._forward_hooks
