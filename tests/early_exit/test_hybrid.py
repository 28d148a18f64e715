"""Hybrid exit (our extension, not in the paper): every exit carries the paper's sigmoid exclusion head
and a softmax confidence head on the same pooled features; exclusion with β first, then a confidence
exit over the remaining classes with τ. Checked against per-sample float64 numpy references: β = 0 is
the confidence baseline, τ = 1 the paper's rule, and the skipping forwards equal the simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_early_exit import reference, small_vgg, spread_heads  # same directory (rootdir-style import)

from frugalnn.core.checkpoint import transform_config
from frugalnn.core.data import ImageData
from frugalnn.methods.early_exit import (
    Config,
    Outputs,
    attach_exits,
    collect_outputs,
    drop_idle_exits,
    infer_single,
    load_early_exit,
    save_early_exit,
    search,
    search_hybrid,
    search_thresholds,
    simulate,
    skipping_forward,
    train_heads,
)
from frugalnn.methods.early_exit.chain import MASKED

K = 5  # classes of small_vgg


def softmax64(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def hybrid_reference(head_logits, final_logits, betas, taus, in_features, seg_macs):
    """Per sample: ratio exclusion (paper Eq. 2) on the sigmoid head (the first K logits), then leave
    when one class remains or when the softmax of the softmax head (the last K logits) over the
    remaining classes exceeds τ -> (prediction, exit index, MACs). A head costs in_features × the
    classes it computes: the sigmoid head runs when β > 0, the softmax head when τ < 1 and more than
    one class is left."""
    heads = [z.detach().double().numpy() for z in head_logits]
    final = final_logits.detach().double().numpy()
    n, k = final.shape
    out = []
    for s_idx in range(n):
        remaining = list(range(k))
        spent, done = 0, None
        for i, z in enumerate(heads):
            spent += seg_macs[i]
            zs, zc = z[s_idx, :k], z[s_idx, k:]
            if betas[i] > 0:
                spent += in_features[i] * len(remaining)
                s = 1.0 / (1.0 + np.exp(-zs))
                top = max(remaining, key=lambda c: s[c])
                remaining = [c for c in remaining if s[c] > betas[i] * s[top] or c == top]
            if len(remaining) == 1:
                done = (remaining[0], i, spent)
                break
            if taus[i] < 1:
                spent += in_features[i] * len(remaining)
                p = softmax64(zc[remaining])
                if p.max() > taus[i]:
                    done = (remaining[int(p.argmax())], i, spent)
                    break
        if done is None:
            done = (max(remaining, key=lambda c: final[s_idx, c]), len(heads), spent + seg_macs[-1])
        out.append(done)
    return out


def confidence_reference(conf_logits, final_logits, taus, in_features, seg_macs):
    """The confidence baseline, per sample: leave at the first exit whose softmax maximum exceeds τ
    (every head that runs costs in_features × K) -> (prediction, exit index, MACs)."""
    heads = [z.detach().double().numpy() for z in conf_logits]
    final = final_logits.detach().double().numpy()
    out = []
    for s_idx in range(len(final)):
        spent, done = 0, None
        for i, z in enumerate(heads):
            spent += seg_macs[i]
            if taus[i] >= 1:
                continue
            spent += in_features[i] * z.shape[1]
            p = softmax64(z[s_idx])
            if p.max() > taus[i]:
                done = (int(p.argmax()), i, spent)
                break
        out.append(done or (int(final[s_idx].argmax()), len(heads), spent + seg_macs[-1]))
    return out


def spread_both(ee, x: torch.Tensor) -> None:
    """Spread the sigmoid heads (spread_heads) and, with another seed, the softmax heads."""
    spread_heads(ee, x)
    fcs = [h.fc for h in ee.heads]
    for h in ee.heads:
        h.fc = h.conf
    spread_heads(ee, x, scale=2.0, seed=11)
    for h, fc in zip(ee.heads, fcs):
        h.fc = fc


def _hybrid_model(n: int = 300, seed: int = 3):
    backbone, spec = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), mode="hybrid"))
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    spread_both(ee, x)
    return ee.eval(), x, spec


def _one_head_copy(ee, mode: str):
    """An exclusion (or confidence) model on the same backbone whose heads are the hybrid's sigmoid
    (or softmax) heads."""
    other, _ = attach_exits(ee.backbone, Config(input_shape=(1, 8, 8), mode=mode))
    for h, src in zip(other.heads, ee.heads):
        h.fc.load_state_dict((src.fc if mode == "exclusion" else src.conf).state_dict())
    return other.eval()


def _same(a, b, scores: bool = True) -> None:
    for f in ("pred", "exit_index", "macs"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    if scores:
        assert torch.equal(a.scores, b.scores)


def _forwards_match(ee, other, x, ref) -> None:
    """Per-batch and re-batched skipping forwards of ``ee`` give the reference's exits, answers and MACs,
    and the same result as the one-head model ``other``; every exit is exercised."""
    exits = torch.tensor([r[1] for r in ref])
    assert all((exits == i).sum() >= 10 for i in range(ee.num_exits + 1)), "every exit must be exercised"
    for rebatch in (False, True):
        got = skipping_forward(ee, x, batch_size=64, rebatch=rebatch)
        assert torch.equal(got.exit_index, exits)
        assert torch.equal(got.pred, torch.tensor([r[0] for r in ref]))
        assert torch.equal(got.macs, torch.tensor([r[2] for r in ref]))
        _same(got, skipping_forward(other, x, batch_size=64, rebatch=rebatch))


def test_hybrid_with_beta_zero_is_the_confidence_baseline():
    ee, x, _ = _hybrid_model()
    taus = [0.9, 0.8]
    ee.set_betas([0.0, 0.0])
    ee.set_thresholds(taus)
    conf = _one_head_copy(ee, "confidence")
    conf.set_thresholds(taus)
    with torch.no_grad():
        heads, final = ee.outputs(x)
    in_features = [h.fc.in_features for h in ee.heads]
    ref = confidence_reference([z[:, K:] for z in heads], final, taus, in_features, ee.segment_macs)
    _forwards_match(ee, conf, x, ref)  # conf: the baseline itself
    y = torch.zeros(len(x), dtype=torch.long)
    _same(simulate(ee, collect_outputs(ee, x, y), [0.0, 0.0], taus=taus),
          simulate(conf, collect_outputs(conf, x, y), taus))  # fmt: skip
    for i in range(0, len(x), 29):
        assert infer_single(ee, x[i]) == infer_single(conf, x[i]) == ref[i]


def test_hybrid_with_tau_one_is_the_paper_rule():
    ee, x, _ = _hybrid_model()
    betas = [0.7, 0.3]
    ee.set_betas(betas)
    ee.set_thresholds([1.0, 1.0])
    paper = _one_head_copy(ee, "exclusion")
    paper.set_betas(betas)
    with torch.no_grad():
        heads, final = ee.outputs(x)
    in_features = [h.fc.in_features for h in ee.heads]
    ref = reference([z[:, :K] for z in heads], final, betas, "ratio", in_features, ee.segment_macs)
    _forwards_match(ee, paper, x, ref)
    y = torch.zeros(len(x), dtype=torch.long)
    _same(simulate(ee, collect_outputs(ee, x, y), betas, taus=[1.0, 1.0]),
          simulate(paper, collect_outputs(paper, x, y), betas))  # fmt: skip
    for i in range(0, len(x), 29):
        assert infer_single(ee, x[i]) == infer_single(paper, x[i]) == ref[i][:3]


@pytest.mark.parametrize(
    "betas,taus",
    [
        ([0.5, 0.3], [0.9, 0.8]),
        ([0.0, 0.4], [0.95, 1.0]),
        ([0.6, 0.0], [1.0, 0.7]),
        ([0.3, 0.5], [0.99, 0.9]),
    ],
)
def test_hybrid_skipping_forward_matches_reference(betas, taus):
    ee, x, _ = _hybrid_model()
    ee.set_betas(betas)
    ee.set_thresholds(taus)
    with torch.no_grad():
        heads, final = ee.outputs(x)
    in_features = [h.fc.in_features for h in ee.heads]
    ref = hybrid_reference(heads, final, betas, taus, in_features, ee.segment_macs)
    exits = torch.tensor([r[1] for r in ref])
    assert all((exits == i).sum() >= 5 for i in range(ee.num_exits + 1)), "every exit must be exercised"
    for rebatch in (False, True):  # each batch alone, or survivors re-batched to full batches
        result = skipping_forward(ee, x, batch_size=64, rebatch=rebatch)
        assert torch.equal(result.exit_index, exits)
        assert torch.equal(result.pred, torch.tensor([r[0] for r in ref]))
        assert torch.equal(result.macs, torch.tensor([r[2] for r in ref]))
        assert torch.equal(result.scores.argmax(1), result.pred)  # scores rank the answer first
    for i in range(0, len(x), 23):
        assert infer_single(ee, x[i]) == ref[i]
    sim = simulate(ee, collect_outputs(ee, x, torch.zeros(len(x), dtype=torch.long)), betas, taus=taus)
    assert torch.equal(sim.pred, torch.tensor([r[0] for r in ref]))
    assert torch.equal(sim.exit_index, exits)
    assert torch.equal(sim.macs, torch.tensor([r[2] for r in ref]))


def test_hybrid_head_macs_by_hand():
    """Flat heads: nobody is excluded or confident, so every sample pays for the heads that run."""
    ee, x, _ = _hybrid_model(n=40)
    with torch.no_grad():
        for h in ee.heads:
            for fc in (h.fc, h.conf):
                fc.weight.zero_()
                fc.bias.zero_()
    f0, f1 = (h.fc.in_features for h in ee.heads)
    full = sum(ee.segment_macs)
    # flat sigmoids keep every class (s_c = 0.5 > β · 0.5 for β < 1); a uniform softmax (1/K) never passes τ
    for betas, taus, heads_cost in (
        ([0.5, 0.5], [1.0, 1.0], K * (f0 + f1)),  # sigmoid heads only (the paper's rule)
        ([0.0, 0.0], [0.9, 0.9], K * (f0 + f1)),  # softmax heads only (the baseline)
        ([0.5, 0.0], [0.9, 1.0], 2 * K * f0),  # exit 0: both heads; exit 1 off
        ([0.5, 0.5], [0.9, 0.9], 2 * K * (f0 + f1)),  # both heads at both exits
    ):
        ee.set_betas(betas)
        ee.set_thresholds(taus)
        assert (skipping_forward(ee, x).macs == full + heads_cost).all()
        assert infer_single(ee, x[0])[2] == full + heads_cost


def test_rebatched_forward_equals_per_batch_forward_for_every_mode():
    ee, x, _ = _hybrid_model(n=500, seed=5)
    paper, conf = _one_head_copy(ee, "exclusion"), _one_head_copy(ee, "confidence")
    for m, betas, taus in (
        (paper, [0.7, 0.3], [1.0, 1.0]),
        (conf, [0, 0], [0.9, 0.8]),
        (ee, [0.5, 0.3], [0.9, 0.8]),
    ):
        m.set_betas(betas)
        m.set_thresholds(taus)
        a = skipping_forward(m, x, batch_size=32)
        b = skipping_forward(m, x, batch_size=32, rebatch=True)
        for f in ("pred", "exit_index", "macs"):
            assert torch.equal(getattr(a, f), getattr(b, f))
        assert torch.allclose(a.scores, b.scores, atol=1e-5)
        assert (a.scores == MASKED).any() or m is conf
        assert len(skipping_forward(m, x[:0], batch_size=32, rebatch=True).pred) == 0


def test_hybrid_search_keeps_tolerance_and_dominates_the_baselines_first_step():
    ee, x, _ = _hybrid_model(n=400, seed=7)
    with torch.no_grad():
        y = ee.backbone(x).argmax(1)
    y[::4] = (y[::4] + 1) % 5  # the backbone is right on 75 %
    outs = collect_outputs(ee, x, y)
    conf = _one_head_copy(ee, "confidence")
    c_outs = Outputs([z[:, K:] for z in outs.head_logits], outs.final_logits, y)
    for tol in (0.0, 0.02, 0.1):
        r, taus = search_hybrid(ee, outs, tolerance=tol)
        assert r.accuracy >= r.baseline_accuracy - tol - 1e-9
        assert all(b == 0.0 or 0.01 <= b <= 0.99 for b in r.values)
        assert all(0.0 < t <= 1.0 for t in taus)
        # the baseline's first step is the reference of the first exit: never cheaper than the hybrid's
        first = simulate(ee, outs, [r.values[0], 0.0], taus=[taus[0], 1.0])
        c = search_thresholds(conf, c_outs, tolerance=tol).values[0]
        ref = simulate(conf, c_outs, [c, 1.0])
        assert first.macs.double().mean() <= ref.macs.double().mean() + 1e-6
        assert (first.pred == y).double().mean() >= (ref.pred == y).double().mean() - 1e-9
    r = search(ee, x, y, tolerance=0.05)
    assert ee.betas.tolist() == pytest.approx(r.values)
    assert float(ee.thresholds.min()) < 1.0 or r.macs_per_image == pytest.approx(sum(ee.segment_macs))


def test_hybrid_heads_train_like_the_one_head_models():
    """train_heads in hybrid mode trains the sigmoid head as the exclusion model trains its head and
    the softmax head as the confidence baseline trains its head (same start, data and order)."""
    ee, x, _ = _hybrid_model(n=200, seed=9)
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, K, (200,), generator=gen)
    data = ImageData("toy", x, y, x[:50], y[:50], x[:0], y[:0], K)
    cfg = dict(input_shape=(1, 8, 8), head_epochs=3, head_batch_size=32)
    ee.config = Config(mode="hybrid", **cfg)
    paper, conf = _one_head_copy(ee, "exclusion"), _one_head_copy(ee, "confidence")
    paper.config, conf.config = Config(mode="exclusion", **cfg), Config(mode="confidence", **cfg)
    for m in (ee, paper, conf):
        train_heads(m, data, progress=False)
    for h, hp, hc in zip(ee.heads, paper.heads, conf.heads):
        assert torch.allclose(h.fc.weight, hp.fc.weight, atol=1e-6)
        assert torch.allclose(h.conf.weight, hc.fc.weight, atol=1e-6)
        assert torch.allclose(h.conf.bias, hc.fc.bias, atol=1e-6)


def test_hybrid_save_load_round_trip(tmp_path):
    ee, x, spec = _hybrid_model(n=100)
    ee.set_betas([0.5, 0.3])
    ee.set_thresholds([0.9, 0.8])
    save_early_exit(tmp_path / "hy", ee, spec)
    back, _, meta = load_early_exit(tmp_path / "hy")
    assert transform_config(meta, "early_exit")["mode"] == "hybrid" and back.heads[0].conf is not None
    _same(skipping_forward(back.eval(), x), skipping_forward(ee, x))


def test_one_head_hybrid_checkpoint_gets_a_retrain_error(tmp_path):
    """A hybrid checkpoint from before the two-head hybrid: no softmax head tensors -> a clear error."""
    from safetensors.torch import load_file, save_file

    from frugalnn.errors import CheckpointError

    ee, _, spec = _hybrid_model(n=50)
    save_early_exit(tmp_path / "old", ee, spec)
    path = tmp_path / "old" / "model.safetensors"
    save_file({k: v for k, v in load_file(path).items() if ".conf." not in k}, path)
    with pytest.raises(CheckpointError, match="one head per exit.*re-train"):
        load_early_exit(tmp_path / "old")


def test_drop_idle_exits_switches_off_rarely_used_exits():
    ee, x, _ = _hybrid_model(n=300)
    outs = collect_outputs(ee, x, torch.zeros(len(x), dtype=torch.long))
    betas, taus = [0.5, 0.3], [0.9, 0.8]
    share = torch.bincount(simulate(ee, outs, betas, taus=taus).exit_index, minlength=3) / len(x)
    assert float(share[:2].min()) > 0.02
    assert drop_idle_exits(ee, outs, betas, taus, min_share=0.0) == (betas, taus)  # nothing to drop
    low = int(share[:2].argmin())
    cut = (float(share[:2].min()) + float(share[:2].max())) / 2
    got_b, got_t = drop_idle_exits(ee, outs, betas, taus, min_share=cut)
    assert got_b[low] == 0.0 and got_t[low] == 1.0 and got_b[1 - low] == betas[1 - low]
    conf = _one_head_copy(ee, "confidence")
    c_outs = Outputs([z[:, K:] for z in outs.head_logits], outs.final_logits, outs.labels)
    assert drop_idle_exits(conf, c_outs, [0.9, 0.8], min_share=1.0) == ([1.0, 1.0], None)
