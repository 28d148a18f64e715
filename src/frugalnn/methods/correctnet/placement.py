"""Placement of the compensation modules: REINFORCE over layer subsets (CorrectNet Sec. III-C).

The policy is one Bernoulli per candidate layer, p_l = sigmoid(θ_l). Each iteration samples
placements, scores each (reward = accuracy − overhead_weight · overhead %, minus 1 when the overhead
exceeds the budget) and takes the policy-gradient step θ ← θ + lr·Σ (R − b)·∇log π(a), b the running
mean reward (Williams 1992). Scores are cached, as a bandit does, so a placement is paid for once;
the answer is the best placement scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm


@dataclass
class SearchResult:
    best: tuple[str, ...]
    best_reward: float
    scored: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)
    probabilities: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "best": list(self.best), "best_reward": self.best_reward, "probabilities": self.probabilities,
            "scored": [{"layers": list(k), **v} for k, v in sorted(self.scored.items(), key=lambda kv: -kv[1]["reward"])],
        }  # fmt: skip


def reinforce_placement(
    candidates: list[str],
    score: Callable[[tuple[str, ...]], tuple[float, float]],
    *,
    budget_pct: float,
    overhead_weight: float,
    iterations: int,
    samples: int,
    seed: int,
    lr: float = 2.0,
    progress: bool = True,
) -> SearchResult:
    """``score(placement) -> (accuracy, overhead % of MACs)``; returns the best placement found.

    The empty placement (no compensation) and every single layer are scored first, so the search
    always beats the no-compensation baseline and starts from each layer's own worth.
    """
    gen = torch.Generator().manual_seed(seed)
    theta = torch.zeros(len(candidates), dtype=torch.float64)
    scored: dict[tuple[str, ...], dict[str, float]] = {}

    def reward(mask: torch.Tensor) -> float:
        key = tuple(c for c, on in zip(candidates, mask.tolist(), strict=True) if on)
        if key not in scored:
            acc, ovh = score(key)
            r = acc - overhead_weight * ovh - (1.0 if ovh > budget_pct else 0.0)
            scored[key] = {"accuracy": acc, "overhead_macs_pct": ovh, "reward": r}
        return scored[key]["reward"]

    eye = torch.eye(len(candidates), dtype=torch.bool)
    seeds = [torch.zeros(len(candidates), dtype=torch.bool), *eye]
    baseline = sum(reward(m) for m in seeds) / len(seeds)
    for _ in tqdm(range(iterations), desc="placement search", disable=not progress):
        p = torch.sigmoid(theta)
        masks = torch.rand((samples, len(candidates)), generator=gen, dtype=torch.float64) < p
        rewards = torch.tensor([reward(m) for m in masks], dtype=torch.float64)
        advantage = rewards - baseline
        grad = (advantage[:, None] * (masks.double() - p)).mean(0)  # ∇θ log Bernoulli(mask; sigmoid θ)
        theta += lr * grad / (advantage.abs().mean() + 1e-9)  # step scaled to the reward spread
        baseline = 0.8 * baseline + 0.2 * float(rewards.mean())
    greedy = torch.sigmoid(theta) > 0.5
    reward(greedy)  # the policy's own answer is scored too
    best = max(scored, key=lambda k: scored[k]["reward"])
    probs = {c: float(v) for c, v in zip(candidates, torch.sigmoid(theta), strict=True)}
    return SearchResult(best, scored[best]["reward"], scored, probs)
