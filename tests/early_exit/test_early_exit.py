"""Class-exclusion early exit: decisions against a float64 numpy reference, MACs against hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frugalnn.core.checkpoint import load_checkpoint, transform_config
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.methods.early_exit import (
    Config,
    EarlyExitModel,
    attach_exits,
    collect_outputs,
    evaluate,
    exit_loss,
    infer_single,
    load_early_exit,
    pooled_features,
    prepare_cpu_inference,
    save_early_exit,
    search,
    search_betas,
    search_thresholds,
    simulate,
    skipping_forward,
)
from frugalnn.methods.early_exit.chain import MASKED
from frugalnn.methods.early_exit.heads import ExitHead


def small_vgg(
    num_classes: int = 5, stages: tuple[int, ...] = (4, 8, 8), seed: int = 0
) -> tuple[nn.Module, ModelSpec]:
    torch.manual_seed(seed)
    spec = ModelSpec("vgg-small", num_classes, 1, 8, {"stages": list(stages)})
    model = build_model(spec)
    # non-trivial BN statistics so eval mode is not the identity
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval(), spec


def spread_heads(ee, x: torch.Tensor, scale: float = 3.0, seed: int = 1) -> None:
    """Heads with random directions on standardised pooled features, so that logits spread widely
    over the samples of ``x`` and exclusions and exits actually happen."""
    gen = torch.Generator().manual_seed(seed)
    feats = pooled_features(ee, x)
    with torch.no_grad():
        for h, f in zip(ee.heads, feats):
            w = torch.randn(h.fc.weight.shape, generator=gen) * scale / (f.std(0) + 1e-6)
            h.fc.weight.copy_(w)
            h.fc.bias.copy_(-w @ f.mean(0) + torch.randn(h.fc.bias.shape, generator=gen))


BETAS = {"ratio": [0.7, 0.3], "absolute": [0.7, 0.3]}


def reference(head_logits, final_logits, betas, rule, in_features, seg_macs):
    """Per-sample float64 loop of paper Eq. 2: (prediction, exit index, MACs, remaining sets per exit)."""
    heads = [z.detach().double().numpy() for z in head_logits]
    final = final_logits.detach().double().numpy()
    n, k = final.shape
    out = []
    for s_idx in range(n):
        remaining = set(range(k))
        spent, history, done = 0, [], None
        for i, z in enumerate(heads):
            spent += seg_macs[i] + in_features[i] * len(remaining)
            if betas[i] > 0:
                s = 1.0 / (1.0 + np.exp(-z[s_idx]))
                top = max(remaining, key=lambda c: s[c])
                limit = betas[i] * s[top] if rule == "ratio" else betas[i]
                remaining = {c for c in remaining if s[c] > limit or c == top}
            history.append(set(remaining))
            if len(remaining) == 1:
                done = (next(iter(remaining)), i, spent)
                break
        if done is None:
            best = max(remaining, key=lambda c: final[s_idx, c])
            done = (best, len(heads), spent + seg_macs[-1])
        out.append((*done, history))
    return out


def test_beta_zero_excludes_nothing_and_equals_final_classifier():
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8)))
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    spread_heads(ee, x)
    with torch.no_grad():
        plain = backbone(x)
    result = skipping_forward(ee.eval(), x)
    assert torch.equal(result.exit_index, torch.full((64,), ee.num_exits))
    assert torch.allclose(result.scores, plain, atol=1e-5)
    assert torch.equal(result.pred, plain.argmax(1))
    assert torch.equal(ee(x).argmax(1), plain.argmax(1))  # eval-mode forward of the nn.Module


def test_excluded_class_never_comes_back():
    backbone, _ = small_vgg(num_classes=4)
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8)))
    with torch.no_grad():
        for h in ee.heads:
            h.fc.weight.zero_()
        ee.heads[0].fc.bias.copy_(torch.tensor([5.0, 5.0, -5.0, -5.0]))  # exit 0 drops classes 2, 3
        ee.heads[1].fc.bias.copy_(torch.tensor([-5.0, -5.0, 5.0, 5.0]))  # exit 1 would love them back
        backbone.fc.weight.zero_()
        backbone.fc.bias.copy_(torch.tensor([0.0, 1.0, 9.0, 3.0]))  # the final classifier too
    ee.set_betas([0.5, 0.5])
    x = torch.randn(16, 1, 8, 8)
    result = skipping_forward(ee.eval(), x)
    assert torch.equal(result.pred, torch.ones(16, dtype=torch.long))  # best of the survivors {0, 1}
    assert (result.scores[:, 2:] == MASKED).all()
    assert all(infer_single(ee, x[i])[0] == 1 for i in range(4))
    with torch.no_grad():
        assert (backbone(x).argmax(1) == 2).all()  # without exclusion the answer would be class 2


@pytest.mark.parametrize("rule", ["ratio", "absolute"])
def test_skipping_forward_matches_full_forward_reference(rule):
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), rule=rule))
    x = torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    spread_heads(ee, x)
    betas = BETAS[rule]
    ee.set_betas(betas)
    with torch.no_grad():
        heads, final = ee.eval().outputs(x)
    in_features = [h.fc.in_features for h in ee.heads]
    ref = reference(heads, final, betas, rule, in_features, ee.segment_macs)
    result = skipping_forward(ee, x, batch_size=64)  # several batches, each shrinking as samples leave
    exits = torch.tensor([r[1] for r in ref])
    assert all((exits == i).sum() >= 10 for i in range(ee.num_exits + 1)), "every exit must be exercised"
    assert torch.equal(result.exit_index, exits)
    assert torch.equal(result.pred, torch.tensor([r[0] for r in ref]))
    assert torch.equal(result.macs, torch.tensor([r[2] for r in ref]))
    for i in range(0, 300, 37):  # batch-size-1 path: same answer, exit and MACs
        assert infer_single(ee, x[i]) == ref[i][:3]
    for _, _, _, history in ref:  # remaining sets only shrink
        assert all(b <= a for a, b in zip(history, history[1:]))
    sim = simulate(ee, collect_outputs(ee, x, torch.zeros(300, dtype=torch.long)), betas)
    assert torch.equal(sim.pred, result.pred) and torch.equal(sim.macs, result.macs)


def test_confidence_baseline_matches_reference():
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), mode="confidence"))
    x = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    spread_heads(ee, x)
    ee.set_thresholds([0.9, 0.8])
    with torch.no_grad():
        heads, final = ee.eval().outputs(x)
    probs = [torch.softmax(z.double(), 1).numpy() for z in heads]
    exp_exit = []
    for s in range(200):
        hit = [i for i, p in enumerate(probs) if p[s].max() > (0.9, 0.8)[i]]
        exp_exit.append(hit[0] if hit else 2)
    exp_pred = [
        int(probs[e][s].argmax()) if e < 2 else int(final[s].argmax()) for s, e in enumerate(exp_exit)
    ]
    result = skipping_forward(ee, x)
    assert torch.equal(result.exit_index, torch.tensor(exp_exit))
    assert torch.equal(result.pred, torch.tensor(exp_pred))
    assert len(set(exp_exit)) == 3


def test_mac_counts_match_hand_count():
    backbone, _ = small_vgg(num_classes=3, stages=(2, 4, 4))
    ee, record = attach_exits(backbone, Config(input_shape=(1, 8, 8), head_pool=2))
    # stage 1 on 8x8: conv 1->2 (64·2·9) + conv 2->2 (64·2·18); stage 2 on 4x4: 16·4·18 + 16·4·36;
    # stage 3 on 2x2: 4·4·36 + 4·4·36, then fc 4->3
    seg = [64 * 2 * 9 + 64 * 2 * 18, 16 * 4 * 18 + 16 * 4 * 36, 4 * 4 * 36 * 2 + 4 * 3]
    assert ee.segment_macs == seg
    assert [r["backbone_macs_to_here"] for r in record["exits"]] == [seg[0], seg[0] + seg[1]]
    # heads pool to 2x2: stage-1 head 2·4 inputs, stage-2 head 4·4 inputs, times 3 classes
    assert [r["head_macs_all_classes"] for r in record["exits"]] == [2 * 4 * 3, 4 * 4 * 3]
    assert record["backbone_macs"] == sum(seg)
    x = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    spread_heads(ee, x)
    ee.set_betas([0.4, 0.4])
    result = skipping_forward(ee.eval(), x)
    ref = reference(*ee.outputs(x), [0.4, 0.4], "ratio", [8, 16], seg)
    assert torch.equal(result.macs, torch.tensor([r[2] for r in ref]))
    assert len(set(result.exit_index.tolist())) == 3
    # flat heads + tiny β: every head runs on all 3 classes but nobody leaves
    with torch.no_grad():
        for h in ee.heads:
            h.fc.weight.zero_()
            h.fc.bias.zero_()
    ee.set_betas([1e-6, 1e-6])
    assert (skipping_forward(ee, x).macs == sum(seg) + 8 * 3 + 16 * 3).all()
    assert infer_single(ee, x[0])[2] == sum(seg) + 8 * 3 + 16 * 3
    ee.set_betas([0.0, 0.4])  # β = 0 switches a head off: it costs nothing
    assert infer_single(ee, x[1])[2] == sum(seg) + 16 * 3
    ee.set_betas([0.0, 0.0])
    assert (skipping_forward(ee, x).macs == sum(seg)).all()


def test_exit_loss_matches_formula():
    gen = torch.Generator().manual_seed(6)
    heads = [torch.randn(7, 4, generator=gen) for _ in range(3)]
    final = torch.randn(7, 4, generator=gen)
    y = torch.randint(0, 4, (7,), generator=gen)
    got = float(exit_loss(heads, final, y, "exclusion", pos_weight=12.0))
    f, yy = final.double().numpy(), y.numpy()
    ce = np.mean([-(f[i, yy[i]] - np.log(np.exp(f[i]).sum())) for i in range(7)])
    total = ce
    for i, z in enumerate(heads, start=1):
        z = z.double().numpy()
        t = np.eye(4)[yy]
        p = 1 / (1 + np.exp(-z))
        bce = -(12.0 * t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
        total += bce / (3 - i + 1)
    assert got == pytest.approx(total, rel=1e-5)


def test_search_respects_tolerance_and_range():
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8)))
    x = torch.randn(400, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    spread_heads(ee, x)
    with torch.no_grad():
        y = backbone(x).argmax(1)
    y[::4] = (y[::4] + 1) % 5  # the backbone is right on 75%
    outs = collect_outputs(ee, x, y)
    for tol in (0.0, 0.02, 0.1):
        r = search_betas(ee, outs, tolerance=tol)
        assert r.accuracy >= r.baseline_accuracy - tol - 1e-9
        assert all(b == 0.0 or 0.01 <= b <= 0.99 for b in r.values)
        c = search_thresholds(ee, outs, tolerance=tol)
        assert c.accuracy >= c.baseline_accuracy - tol - 1e-9
    assert search_betas(ee, outs, tolerance=0.99).values == [0.99, 0.99]
    r = search(ee, x, y, tolerance=0.05)
    assert ee.betas.tolist() == pytest.approx(r.values)
    assert evaluate(ee, x, y)["accuracy"] == pytest.approx(r.accuracy)


def test_save_load_round_trip(tmp_path):
    backbone, spec = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), exits=("blocks.1",), head_pool=2))
    x = torch.randn(50, 1, 8, 8)
    spread_heads(ee, x)
    ee.set_betas([0.25])
    save_early_exit(tmp_path / "ee", ee, spec)
    back, spec2, meta = load_early_exit(tmp_path / "ee")
    assert (
        spec2 == spec
        and back.exit_names == ("blocks.1",)
        and transform_config(meta, "early_exit")["head_pool"] == 2
    )
    assert torch.equal(back.eval()(x), ee.eval()(x))


def test_checkpoint_from_before_the_transforms_list_loads(tmp_path):
    """Old early-exit checkpoints kept the wrapper's config under a top-level ``early_exit`` key."""
    import json

    backbone, spec = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), exits=("blocks.1",)))
    x = torch.randn(20, 1, 8, 8)
    spread_heads(ee, x)
    save_early_exit(tmp_path / "ee", ee, spec)
    path = tmp_path / "ee" / "checkpoint.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({"spec": meta["spec"], "early_exit": meta["transforms"][0]["config"]}))
    back, _, _ = load_checkpoint(tmp_path / "ee")
    assert isinstance(back, EarlyExitModel)
    assert torch.equal(back.eval()(x), ee.eval()(x))


def test_bad_input_is_reported():
    backbone, _ = small_vgg()
    with pytest.raises(ConfigError, match="does not exist"):
        attach_exits(backbone, Config(input_shape=(1, 8, 8), exits=("blocks.7",)))
    with pytest.raises(ConfigError, match="last layer"):
        attach_exits(backbone, Config(input_shape=(1, 8, 8), exits=("fc",)))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        attach_exits(backbone, Config(input_shape=(1, 8, 8), betas=(0.2, 1.5)))
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8)))
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ee.set_betas([-0.1, 0.2])
    with pytest.raises(ConfigError, match="one per exit"):
        ee.set_betas([0.1])
    with pytest.raises(ConfigError, match="validation set is empty"):
        search(ee, torch.empty(0, 1, 8, 8), torch.empty(0, dtype=torch.long))
    with pytest.raises(ConfigError, match="input_shape"):
        attach_exits(backbone, Config(input_shape=(3, 8, 8)))

    class Skip(nn.Module):  # forward is not the chain of its children
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, padding=1)
            self.b = nn.Conv2d(2, 1, 3, padding=1)
            self.fc = nn.Linear(64, 3)

        def forward(self, x):
            return self.fc(torch.flatten(self.b(self.a(x)) + x, 1))

    with pytest.raises(UnsupportedModelError, match="plain chain"):
        attach_exits(Skip(), Config(input_shape=(1, 8, 8), exits=("a",)))


def test_prepared_copy_gives_the_same_decisions():
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8)))
    x = torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    spread_heads(ee, x)
    ee.set_betas(BETAS["ratio"])
    fast = prepare_cpu_inference(ee, x[:4])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in ee.modules())  # the original is untouched
    a = skipping_forward(ee, x)
    b = skipping_forward(fast, x.contiguous(memory_format=torch.channels_last))
    assert (a.pred == b.pred).double().mean() > 0.98
    assert (a.exit_index == b.exit_index).double().mean() > 0.98


def test_exit_inside_a_stage_and_after_it():
    backbone, _ = small_vgg(num_classes=3, stages=(2, 4, 4))
    ee, record = attach_exits(
        backbone, Config(input_shape=(1, 8, 8), exits=("blocks.0.2", "blocks.0", "blocks.1"))
    )
    # after conv 1->2 + BN + ReLU on 8x8; then the rest of stage 1; then stage 2 (hand counts as above)
    assert [r["backbone_macs_to_here"] for r in record["exits"]] == [64 * 2 * 9, 3456, 3456 + 3456]
    x = torch.randn(20, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ee.eval()(x), backbone(x), atol=1e-5)
    with pytest.raises(ConfigError, match="out of network order"):
        attach_exits(backbone, Config(input_shape=(1, 8, 8), exits=("blocks.1", "blocks.0")))


@pytest.mark.parametrize("side", [28, 14, 8, 7])
def test_head_pooling_equals_adaptive_average_pool(side):
    """The head picks a faster pooling kernel by map size and layout; the averages stay the same."""
    head = ExitHead(6, 3, pool=4)
    x = torch.randn(5, 6, side, side, generator=torch.Generator().manual_seed(side))
    want = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 4), 1)
    for layout in (torch.contiguous_format, torch.channels_last):
        assert torch.allclose(head.features(x.contiguous(memory_format=layout)), want, atol=1e-6)
