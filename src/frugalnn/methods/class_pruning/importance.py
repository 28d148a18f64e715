"""Filter importance: per-class Taylor (the method), class-agnostic Taylor and L1 (the baselines).

All three return ``{conv_name: scores of its output channels}``; prune.py turns them into group scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClassScores:
    """Per-conv class-aware scores.

    score: max over positions of Σ_k mean_{n∈k} 1[|a·∂L/∂a| > τ], in [0, K] — roughly the number of
        classes the filter matters for (Sec. III-A of arXiv 2312.05875).
    magnitude: Σ_k mean_{n∈k} mean over positions of |a·∂L/∂a| from the same backward passes; only
        breaks ties between filters of equal score (on a trained net most filters matter for all K classes
        somewhere, so the count alone cannot order them; docs/class_pruning.md shows the score spread).
    """

    score: dict[str, torch.Tensor]
    magnitude: dict[str, torch.Tensor]
    num_classes: int

    def ranking(self) -> dict[str, torch.Tensor]:
        """score first; the layer-normalised magnitude (< 1e-3) orders filters within one score value."""
        out = {}
        for n, s in self.score.items():
            m = self.magnitude[n]
            out[n] = s + 1e-3 * m / (m.max() + 1e-30) * 0.999
        return out


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def class_samples(y: torch.Tensor, num_classes: int, per_class: int, seed: int) -> dict[int, torch.Tensor]:
    """Indices of ``per_class`` random training images of each class (fewer if a class is smaller)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k in range(num_classes):
        idx = torch.nonzero(y == k).flatten()
        if len(idx):
            out[k] = idx[torch.randperm(len(idx), generator=gen)[:per_class]]
    return out


def _taylor_terms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """a·∂L/∂a at every conv output, L = Σ_n CE(x_n, y_n) (eval mode: samples do not interact via BN,
    so ∂L/∂a_n = ∂L_n/∂a_n and each image gets its own per-image Taylor term)."""
    convs = conv_layers(model)
    acts: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, n=n: acts.__setitem__(n, o)) for n, m in convs.items()
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(True))
            loss = F.cross_entropy(logits, y, reduction="sum")
            names = list(acts)
            grads = torch.autograd.grad(loss, [acts[n] for n in names])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: (acts[n] * g).detach() for n, g in zip(names, grads, strict=True)}


def class_aware_scores(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    per_class: int = 12,
    threshold: float = 1e-50,
    seed: int = 0,
    relative_threshold: float = 0.0,
) -> ClassScores:
    """Per-class binarised Taylor importance, summed over classes, max over positions (the paper's score).

    relative_threshold > 0 binarises at max(threshold, relative_threshold · mean |a·∂L/∂a| of that conv
    over all the scoring images) instead of the absolute "non-zero" threshold: a deviation (see
    Config.relative_threshold) that lets the count separate filters on a trained network.
    """
    terms = {
        k: _taylor_terms(model, x[idx], y[idx])
        for k, idx in class_samples(y, num_classes, per_class, seed).items()
    }
    names = list(next(iter(terms.values()))) if terms else []
    tau = dict.fromkeys(names, threshold)
    if relative_threshold > 0:
        for n in names:
            layer_mean = torch.cat([t[n].abs().to(torch.float64).flatten() for t in terms.values()]).mean()
            tau[n] = max(threshold, relative_threshold * float(layer_mean))
    total: dict[str, torch.Tensor] = {}
    magnitude: dict[str, torch.Tensor] = {}
    for per_layer in terms.values():
        for name, t in per_layer.items():
            frac = (t.abs() > tau[name]).to(torch.float64).mean(0)  # (C, H, W): share of the class's images
            mag = t.abs().to(torch.float64).mean((0, 2, 3))
            total[name] = total[name] + frac if name in total else frac
            magnitude[name] = magnitude[name] + mag if name in magnitude else mag
    score = {n: s.flatten(1).amax(1).float() for n, s in total.items()}
    return ClassScores(score, {n: m.float() for n, m in magnitude.items()}, num_classes)


def taylor_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, images: int, seed: int = 0, batch: int = 128
) -> dict[str, torch.Tensor]:
    """Class-agnostic first-order Taylor (Molchanov et al. 2017, eq. 8): mean over images of
    |mean over positions of a·∂L/∂a|, on ``images`` random training images."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=gen)[:images]
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(idx), batch):
        part = idx[start : start + batch]
        for name, t in _taylor_terms(model, x[part], y[part]).items():
            s = t.flatten(2).mean(2).abs().sum(0).to(torch.float64)
            sums[name] = sums[name] + s if name in sums else s
    return {n: (s / len(idx)).float() for n, s in sums.items()}


def l1_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    """L1 norm of each filter (Li et al. 2017, "Pruning Filters for Efficient ConvNets")."""
    return {n: m.weight.detach().abs().sum((1, 2, 3)) for n, m in conv_layers(model).items()}


# Importance criteria as objects (Torch-Pruning's shape): ``importance(model, seed) -> {conv: scores}``,
# lower scores are removed first. ``raw`` holds the last call's per-class scores when there are any.


@dataclass
class L1Importance:
    """Filter L1 norm: needs no data."""

    name = "l1"
    raw = None

    def __call__(self, model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
        return l1_scores(model)


@dataclass
class TaylorImportance:
    """Class-agnostic Taylor on ``images`` random images of (x, y)."""

    x: torch.Tensor
    y: torch.Tensor
    images: int
    name = "taylor"
    raw = None

    def __call__(self, model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
        return taylor_scores(model, self.x, self.y, self.images, seed)


@dataclass
class ClassAwareImportance:
    """The paper's per-class binarised Taylor score on ``per_class`` images of each class of (x, y);
    filters of equal score are ordered by their magnitude (ClassScores.ranking)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    per_class: int = 12
    threshold: float = 1e-50
    relative_threshold: float = 0.0
    name = "class-aware"
    raw: dict[str, torch.Tensor] | None = None

    def __call__(self, model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
        scores = class_aware_scores(
            model, self.x, self.y, self.num_classes, self.per_class, self.threshold, seed,
            self.relative_threshold,
        )  # fmt: skip
        self.raw = scores.score
        return scores.ranking()
