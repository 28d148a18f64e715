"""Hybrid exit (our extension: class exclusion + a confidence exit over the remaining classes) and the
re-batched skipping forward, checked against a per-sample float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_early_exit import small_vgg, spread_heads  # same directory (rootdir-style test import)

from frugalnn.methods.early_exit import (
    Config,
    attach_exits,
    collect_outputs,
    infer_single,
    search,
    search_betas,
    search_hybrid,
    simulate,
    skipping_forward,
)


def hybrid_reference(head_logits, final_logits, betas, taus, in_features, seg_macs):
    """Per sample: ratio exclusion (paper Eq. 2), then leave when one class remains or when the
    softmax over the remaining classes' logits exceeds τ -> (prediction, exit index, MACs)."""
    heads = [z.detach().double().numpy() for z in head_logits]
    final = final_logits.detach().double().numpy()
    n, k = final.shape
    out = []
    for s_idx in range(n):
        remaining = list(range(k))
        spent, done = 0, None
        for i, z in enumerate(heads):
            spent += seg_macs[i]
            if betas[i] <= 0 and taus[i] >= 1:
                continue
            spent += in_features[i] * len(remaining)
            zs = z[s_idx]
            if betas[i] > 0:
                s = 1.0 / (1.0 + np.exp(-zs))
                top = max(remaining, key=lambda c: s[c])
                remaining = [c for c in remaining if s[c] > betas[i] * s[top] or c == top]
            if len(remaining) == 1:
                done = (remaining[0], i, spent)
                break
            e = np.exp(zs[remaining] - zs[remaining].max())
            p = e / e.sum()
            if p.max() > taus[i]:
                done = (remaining[int(p.argmax())], i, spent)
                break
        if done is None:
            done = (max(remaining, key=lambda c: final[s_idx, c]), len(heads), spent + seg_macs[-1])
        out.append(done)
    return out


def _hybrid_model(n: int = 300, seed: int = 3):
    backbone, _ = small_vgg()
    ee, _ = attach_exits(backbone, Config(input_shape=(1, 8, 8), mode="hybrid"))
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    spread_heads(ee, x)
    return ee.eval(), x


def test_hybrid_with_tau_one_is_the_paper_rule():
    ee, x = _hybrid_model()
    betas = [0.7, 0.3]
    ee.set_betas(betas)
    paper, _ = attach_exits(ee.backbone, Config(input_shape=(1, 8, 8), mode="exclusion"))
    paper.heads.load_state_dict(ee.heads.state_dict())
    paper.set_betas(betas)
    a, b = skipping_forward(ee, x, 64), skipping_forward(paper.eval(), x, 64)
    for f in ("pred", "exit_index", "macs"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    outs = collect_outputs(ee, x, torch.zeros(len(x), dtype=torch.long))
    s1, s2 = simulate(ee, outs, betas, taus=[1.0, 1.0]), simulate(paper, outs, betas)
    assert torch.equal(s1.pred, s2.pred) and torch.equal(s1.macs, s2.macs)


@pytest.mark.parametrize("betas,taus", [([0.5, 0.3], [0.999, 0.95]), ([0.0, 0.4], [0.99, 1.0])])
def test_hybrid_skipping_forward_matches_reference(betas, taus):
    ee, x = _hybrid_model()
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
    for i in range(0, len(x), 23):
        assert infer_single(ee, x[i]) == ref[i]
    sim = simulate(ee, collect_outputs(ee, x, torch.zeros(len(x), dtype=torch.long)), betas, taus=taus)
    assert torch.equal(sim.pred, torch.tensor([r[0] for r in ref]))
    assert torch.equal(sim.macs, torch.tensor([r[2] for r in ref]))


def test_rebatched_forward_equals_per_batch_forward_for_every_mode():
    ee, x = _hybrid_model(n=500, seed=5)
    for mode, betas, taus in (("exclusion", [0.7, 0.3], [1.0, 1.0]), ("confidence", [0, 0], [0.9, 0.8])):
        ee.config.mode = mode
        ee.set_betas(betas)
        ee.set_thresholds(taus)
        a = skipping_forward(ee, x, batch_size=32)
        b = skipping_forward(ee, x, batch_size=32, rebatch=True)
        for f in ("pred", "exit_index", "macs"):
            assert torch.equal(getattr(a, f), getattr(b, f))
        assert torch.allclose(a.scores, b.scores, atol=1e-5)
        assert len(skipping_forward(ee, x[:0], batch_size=32, rebatch=True).pred) == 0
    ee.config.mode = "hybrid"


def test_hybrid_search_keeps_tolerance_and_beats_or_equals_the_paper_rule():
    ee, x = _hybrid_model(n=400, seed=7)
    with torch.no_grad():
        y = ee.backbone(x).argmax(1)
    y[::4] = (y[::4] + 1) % 5  # the backbone is right on 75 %
    outs = collect_outputs(ee, x, y)
    for tol in (0.0, 0.02, 0.1):
        r, taus = search_hybrid(ee, outs, tolerance=tol)
        assert r.accuracy >= r.baseline_accuracy - tol - 1e-9
        assert all(b == 0.0 or 0.01 <= b <= 0.99 for b in r.values)
        assert all(0.0 < t <= 1.0 for t in taus)
        # τ = 1 (the paper's rule) is among the first exit's candidates: never worse there
        ee.config.mode = "exclusion"
        paper = search_betas(ee, outs, tolerance=tol)
        ee.config.mode = "hybrid"
        first_only = simulate(ee, outs, [r.values[0], 0.0], taus=[taus[0], 1.0])
        paper_first = simulate(ee, outs, [paper.values[0], 0.0], mode="exclusion")
        assert first_only.macs.double().mean() <= paper_first.macs.double().mean() + 1e-6
    r = search(ee, x, y, tolerance=0.05)
    assert ee.betas.tolist() == pytest.approx(r.values)
    assert float(ee.thresholds.min()) < 1.0 or r.macs_per_image == pytest.approx(sum(ee.segment_macs))
