"""Physical pruning: equivalence with masking, counts from shapes, save/load, ONNX, the loop, bad input."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint, transform_config
from frugalnn.core.data import load_digits
from frugalnn.core.measure import count_macs, count_params
from frugalnn.core.models import ModelSpec, ResNetCifar, VGGSmall, build_model
from frugalnn.errors import CheckpointError, ConfigError, UnsupportedModelError
from frugalnn.methods.class_pruning import (
    ChannelGraph,
    Config,
    MacModel,
    prune,
    prune_channels,
    save_pruned,
)
from frugalnn.methods.class_pruning.prune import allocate_global, allocate_uniform


def _randomise_bn(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.3)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model.double().eval()


def _masked(model: nn.Module, zeroed: dict[str, list[int]]) -> nn.Module:
    """The dense model with the named BN outputs' channels set to zero (the reference for removal)."""
    ref = copy.deepcopy(model)
    for name, chans in zeroed.items():
        mask = torch.ones(ref.get_submodule(name).num_features, dtype=torch.float64)
        mask[chans] = 0
        ref.get_submodule(name).register_forward_hook(
            lambda m, i, o, mask=mask: o * mask[None, :, None, None]
        )
    return ref


def test_pruned_vgg_equals_masked_dense() -> None:
    torch.manual_seed(0)
    model = _randomise_bn(VGGSmall(1, 10, stages=(8, 8, 16)))
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    ref = _masked(model, {"blocks.0.1": [1, 5], "blocks.1.4": [0, 2, 3], "blocks.2.4": [15]})
    pruned = prune_channels(
        copy.deepcopy(model), x[:1], {"blocks.0.0": [1, 5], "blocks.1.3": [0, 2, 3], "blocks.2.3": [15]}
    )
    assert pruned.blocks[0][0].out_channels == 6 and pruned.blocks[0][3].in_channels == 6
    assert pruned.fc.in_features == 15
    torch.testing.assert_close(pruned(x), ref(x), rtol=1e-10, atol=1e-10)
    assert not torch.allclose(model(x), ref(x))  # the removed channels mattered


def test_pruned_resnet_equals_masked_dense_residuals_stay_consistent() -> None:
    torch.manual_seed(0)
    model = _randomise_bn(ResNetCifar(1, 10, depth=8, width=8))
    x = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    zero = {
        "stem.1": [2], "layer1.0.bn2": [2],  # stage-1 residual stream: stem and block output together
        "layer2.0.bn2": [3, 7, 10], "layer2.0.shortcut.1": [3, 7, 10],  # stage 2 with its projection
        "layer3.0.bn1": [0, 5],  # inside a block
    }  # fmt: skip
    ref = _masked(model, zero)
    removals = {"stem.0": [2], "layer2.0.conv2": [3, 7, 10], "layer3.0.conv1": [0, 5]}
    pruned = prune_channels(copy.deepcopy(model), x[:1], removals)
    assert pruned.layer1[0].conv2.out_channels == 7 and pruned.layer2[0].shortcut[0].in_channels == 7
    assert pruned.layer2[0].shortcut[0].out_channels == 13 and pruned.layer3[0].conv1.in_channels == 13
    torch.testing.assert_close(pruned(x), ref(x), rtol=1e-10, atol=1e-10)
    with pytest.raises(UnsupportedModelError, match="share one channel group"):
        prune_channels(copy.deepcopy(model), x[:1], {"layer2.0.conv2": [1], "layer2.0.shortcut.0": [1]})


def _shape_counts(model: ResNetCifar, side: int) -> tuple[int, int]:
    """Parameters and MACs from the layer shapes alone (closed form for this architecture)."""
    params = macs = 0
    sizes = {"stem": side, "layer1": side, "layer2": side // 2, "layer3": side // 4}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            params += m.in_channels * m.out_channels * k
            out_side = sizes[name.split(".")[0]]
            macs += m.in_channels * m.out_channels * k * out_side * out_side
        elif isinstance(m, nn.BatchNorm2d):
            params += 2 * m.num_features
        elif isinstance(m, nn.Linear):
            params += m.in_features * m.out_features + m.out_features
            macs += m.in_features * m.out_features
    return params, macs


def test_counts_after_pruning_match_shapes_and_mac_model() -> None:
    model = build_model("resnet20", image_size=16).eval()
    x = torch.randn(1, 1, 16, 16)
    graph = ChannelGraph(model, x)
    removals = {g.root: list(range(0, g.channels, 3)) for g in graph.groups}
    predicted = MacModel(graph).macs({g.root: g.channels - len(removals[g.root]) for g in graph.groups})
    prune_channels(model, x, removals)
    params, macs = _shape_counts(model, 16)
    assert count_params(model) == params
    assert count_macs(model, x) == macs == round(predicted)
    assert macs < 0.6 * _shape_counts(build_model("resnet20", image_size=16), 16)[1]


def test_save_load_and_onnx_of_pruned_resnet(tmp_path) -> None:
    import onnxruntime as ort

    spec = ModelSpec("resnet20", image_size=16)
    model = build_model(spec).eval()
    x = torch.randn(2, 1, 16, 16)
    prune_channels(
        model, x[:1], {"stem.0": [0, 1, 2, 3], "layer3.0.conv1": list(range(40)), "layer2.1.conv1": [5]}
    )
    save_pruned(tmp_path / "ck", model, spec)
    loaded, _, meta = load_checkpoint(tmp_path / "ck")
    assert transform_config(meta, "layer_widths")["layer3.0.conv1"]["out"] == 24
    torch.testing.assert_close(loaded.eval()(x), model(x))
    path = tmp_path / "pruned.onnx"
    torch.onnx.export(loaded, (x,), str(path), input_names=["x"], output_names=["y"], dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(out, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_allocators_meet_budget_and_drop_lowest_scores() -> None:
    model = build_model("vgg-small", image_size=16).eval()
    graph = ChannelGraph(model, torch.randn(1, 1, 16, 16))
    macs = MacModel(graph)
    gen = torch.Generator().manual_seed(0)
    scores = {g.root: torch.rand(g.channels, generator=gen) for g in graph.groups}
    budget = 0.3 * macs.macs(graph.counts())
    for removals in (
        allocate_global(scores, macs, budget, 4, None),
        allocate_uniform(scores, macs, budget, 4),
    ):
        keep = {g: len(s) - len(removals[g]) for g, s in scores.items()}
        assert macs.macs(keep) <= budget and all(k % 4 == 0 and k >= 4 for k in keep.values())
        for g, s in scores.items():  # the removed channels are the lowest-scored of their group
            if removals[g]:
                assert s[removals[g]].max() <= np.delete(s.numpy(), removals[g]).min()
    # paper mode: only channels scoring below the bar go, in whole chunks
    low = {g: torch.where(torch.arange(len(s)) < 8, 0.5, 9.0) for g, s in scores.items()}
    removals = allocate_global(low, macs, None, 4, qualify=1.0)
    assert all(sorted(r) == list(range(8)) for r in removals.values())


def test_prune_loop_reaches_target_on_digits() -> None:
    data = load_digits()
    data = dataclasses.replace(data, x_test=data.x_test[:100], y_test=data.y_test[:100])
    torch.manual_seed(0)
    model = ResNetCifar(1, 10, depth=8, width=8)
    config = Config(ratio=0.6, iterations=2, pretrain_steps=2, finetune_steps=2, final_steps=2, batch_size=32)
    pruned, record = prune(model, config, data, progress=False)
    dense = count_macs(model, data.x_test[:1])
    assert count_macs(pruned, data.x_test[:1]) == record["macs"] <= 0.4 * dense
    assert len(record["rounds"]) == 2 and record["rounds"][0]["macs"] > record["rounds"][1]["macs"]
    assert sum(record["histogram"]["kept"]) + sum(record["histogram"]["removed"]) == sum(
        m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)
    )
    assert record["train_steps"] == 2 + 2 * 2 + 2
    assert model.stem[0].out_channels == 8  # the caller's model is untouched


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_rejected(ratio: float) -> None:
    with pytest.raises(ConfigError, match=r"^ratio must be"):
        Config(ratio=ratio).validate()


def test_old_config_dicts_load_with_ratio_removed() -> None:
    old = {"method": "l1", "target_flops": 0.4, "iterations": 2}  # version-1 record: share kept
    cfg = Config.from_dict(old)
    assert cfg.ratio == pytest.approx(0.6) and cfg.method == "l1" and cfg.iterations == 2
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert Config.preset("ours").relative_threshold == 0.1 and Config.preset("l1").method == "l1"


def test_unsupported_layers_are_named() -> None:
    class WithLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.rnn = nn.LSTM(4, 4)

    with pytest.raises(UnsupportedModelError, match="'rnn' of type LSTM"):
        ChannelGraph(WithLSTM(), torch.zeros(1, 1, 8, 8))
    depthwise = nn.Sequential(nn.Conv2d(4, 4, 3, groups=4), nn.Flatten())
    with pytest.raises(UnsupportedModelError, match="'0' is a grouped/depthwise"):
        ChannelGraph(depthwise, torch.zeros(1, 4, 8, 8))
    gn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4))
    with pytest.raises(UnsupportedModelError, match="'1' of type GroupNorm"):
        ChannelGraph(gn, torch.zeros(1, 1, 8, 8))
    with pytest.raises(UnsupportedModelError, match="no Conv2d"):
        prune(build_model("mlp", image_size=8), Config(), load_digits(), progress=False)


def test_hand_built_model_saves_pruned_and_loads_into_a_fresh_instance(tmp_path) -> None:
    """No zoo spec: the checkpoint records the widths, the caller supplies the unpruned architecture."""

    def net() -> nn.Module:
        torch.manual_seed(3)
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
        )  # fmt: skip

    model = net().eval()
    x = torch.randn(3, 1, 8, 8)
    prune_channels(model, x[:1], {"0": [1, 4, 6], "3": [0]})
    save_pruned(tmp_path / "ck", model)
    with pytest.raises(
        CheckpointError, match=r"user-built Sequential without a model spec; pass a fresh instance"
    ):
        load_checkpoint(tmp_path / "ck")
    loaded, spec, _ = load_checkpoint(tmp_path / "ck", model=net())
    assert spec is None and loaded[0].out_channels == 5 and loaded[7].in_features == 5
    torch.testing.assert_close(loaded.eval()(x), model(x))


def test_mismatched_checkpoint_and_data_are_rejected(tmp_path) -> None:
    spec = ModelSpec("resnet20", image_size=16)
    model = build_model(spec)
    prune_channels(model, torch.zeros(1, 1, 16, 16), {"stem.0": [0, 1, 2, 3]})
    save_pruned(tmp_path / "ok", model, spec)
    # weights of the pruned model under a dense checkpoint's JSON: shapes disagree
    save_checkpoint(tmp_path / "bad", model, spec)
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "bad")
    vgg = ModelSpec("vgg-small", image_size=16)
    save_pruned(tmp_path / "other", build_model(vgg), vgg)
    meta_path = tmp_path / "other" / "checkpoint.json"
    meta_path.write_text(meta_path.read_text().replace('"vgg-small"', '"resnet20"'))
    with pytest.raises(CheckpointError, match="not in this architecture"):
        load_checkpoint(tmp_path / "other")
    with pytest.raises(CheckpointError, match="predicts 3 classes"):
        prune(build_model("resnet20", num_classes=3, image_size=8), Config(), load_digits(), progress=False)
