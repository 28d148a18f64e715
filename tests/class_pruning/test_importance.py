"""Importance criteria and regularisers against brute-force references (per image, float64 numpy)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.methods.class_pruning import class_aware_scores, l1_scores, taylor_scores
from frugalnn.methods.class_pruning.regularizers import orth_distance


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 5, 3, padding=1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.b1(self.c1(x)))
        return self.fc(F.relu(self.c2(h)).mean((2, 3)))


def _tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = Tiny().double()
    with torch.no_grad():
        model.b1.running_mean.uniform_(-0.2, 0.2)
        model.b1.running_var.uniform_(0.5, 2.0)
    x = torch.randn(21, 1, 6, 6, dtype=torch.float64)
    y = torch.arange(21) % 3
    return model, x, y


def _per_image_terms(model: Tiny, xi: torch.Tensor, yi: torch.Tensor) -> list[np.ndarray]:
    """a·∂L/∂a at c1 and c2 for one image, written out by hand (no hooks)."""
    model.eval()
    a1 = model.c1(xi[None])
    a2 = model.c2(F.relu(model.b1(a1)))
    loss = F.cross_entropy(model.fc(F.relu(a2).mean((2, 3))), yi[None])
    g1, g2 = torch.autograd.grad(loss, [a1, a2])
    return [(a1 * g1)[0].detach().numpy(), (a2 * g2)[0].detach().numpy()]


def test_class_aware_score_matches_brute_force() -> None:
    model, x, y = _tiny()
    terms = [_per_image_terms(model, x[i], y[i]) for i in range(len(x))]
    threshold = float(np.median(np.abs(np.concatenate([t[1].ravel() for t in terms]))))
    expected = []
    for layer in range(2):
        total = 0.0
        for k in range(3):
            members = [terms[i][layer] for i in range(len(x)) if int(y[i]) == k]
            total = total + np.mean([np.abs(t) > threshold for t in members], axis=0)  # (C, H, W)
        expected.append(total.reshape(total.shape[0], -1).max(1))
    got = class_aware_scores(model, x, y, num_classes=3, per_class=100, threshold=threshold)
    np.testing.assert_allclose(got.score["c1"].numpy(), expected[0], atol=1e-6)
    np.testing.assert_allclose(got.score["c2"].numpy(), expected[1], atol=1e-6)
    assert np.ptp(expected[1]) > 0 and 0 < expected[1].max() <= 3  # the threshold makes the test bite


def test_taylor_and_l1_match_references() -> None:
    model, x, y = _tiny()
    terms = [_per_image_terms(model, x[i], y[i]) for i in range(len(x))]
    expected = np.mean([np.abs(t[1].reshape(5, -1).mean(1)) for t in terms], axis=0)
    got = taylor_scores(model, x, y, images=len(x), batch=4)
    np.testing.assert_allclose(got["c2"].numpy(), expected, rtol=1e-5)
    w = model.c2.weight.detach().numpy()
    np.testing.assert_allclose(l1_scores(model)["c2"].numpy(), np.abs(w).reshape(5, -1).sum(1), rtol=1e-12)


def test_orthogonality_distance_matches_loops() -> None:
    torch.manual_seed(1)
    k = torch.randn(3, 2, 3, 3, dtype=torch.float64)
    w = k.numpy()
    total = 0.0
    for o1 in range(3):
        for o2 in range(3):
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    s = 0.0
                    for i in range(2):
                        for u in range(3):
                            for v in range(3):
                                if 0 <= u + dy < 3 and 0 <= v + dx < 3:
                                    s += w[o1, i, u + dy, v + dx] * w[o2, i, u, v]
                    target = 1.0 if (o1 == o2 and dy == 0 and dx == 0) else 0.0
                    total += (s - target) ** 2
    assert abs(float(orth_distance(k)) - np.sqrt(total)) < 1e-9


def test_relative_threshold_is_a_multiple_of_the_layer_mean() -> None:
    model, x, y = _tiny()
    terms = [_per_image_terms(model, x[i], y[i]) for i in range(len(x))]
    got = class_aware_scores(model, x, y, num_classes=3, per_class=100, relative_threshold=0.7)
    for layer, name in enumerate(("c1", "c2")):
        tau = 0.7 * np.mean(np.abs(np.stack([t[layer] for t in terms])))  # the layer's mean |a·∂L/∂a|
        total = sum(
            np.mean([np.abs(terms[i][layer]) > tau for i in range(len(x)) if int(y[i]) == k], axis=0)
            for k in range(3)
        )
        np.testing.assert_allclose(got.score[name].numpy(), total.reshape(len(total), -1).max(1), atol=1e-6)
