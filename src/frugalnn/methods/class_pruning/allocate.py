"""Channel allocation: which output channels of each channel group to remove to fit a MAC budget."""

from __future__ import annotations

import torch

from frugalnn.errors import ConfigError
from frugalnn.methods.class_pruning.graph import MacModel


def _round_keep(n: int, keep: float, round_to: int) -> int:
    """Nearest multiple of round_to (at least round_to, at most n) — CPU kernels like 4/8-wide channels."""
    if n <= round_to:
        return n
    return int(min(n, max(round_to, round_to * round(keep / round_to))))


def allocate_uniform(
    scores: dict[str, torch.Tensor],
    macs: MacModel,
    budget: float,
    round_to: int,
    base: dict[str, int] | None = None,
) -> dict[str, list[int]]:
    """Keep the same share (1 − r) of every group's *dense* width ``base`` (lowest scores go first);
    bisect r to fit the MAC budget, then hand back whole ``round_to`` chunks the rounding took in excess."""
    sizes = {g: len(s) for g, s in scores.items()}
    base = {g: base.get(g, n) for g, n in sizes.items()} if base else dict(sizes)

    def counts(r: float) -> dict[str, int]:
        return {g: min(n, _round_keep(base[g], base[g] * (1 - r), round_to)) for g, n in sizes.items()}

    if macs.macs(counts(1.0)) > budget:
        raise ConfigError(
            f"MAC target unreachable: even {round_to} channels per layer exceed it; lower ratio or round_to"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if macs.macs(counts(mid)) <= budget else (mid, hi)
    keep = counts(hi)
    grown = True
    while grown:  # give back chunks, thinnest layer (relative to dense) first, while the budget holds
        grown = False
        for g in sorted(keep, key=lambda g: keep[g] / base[g]):
            trial = {**keep, g: min(sizes[g], keep[g] + round_to)}
            if trial[g] > keep[g] and macs.macs(trial) <= budget:
                keep, grown = trial, True
                break
    return {g: torch.argsort(s)[: sizes[g] - keep[g]].tolist() for g, s in scores.items()}


def allocate_global(
    scores: dict[str, torch.Tensor],
    macs: MacModel,
    budget: float | None,
    round_to: int,
    qualify: float | None,
) -> dict[str, list[int]]:
    """Greedy over the whole network: repeatedly drop the chunk of ``round_to`` lowest-scored channels
    whose mean score is the lowest anywhere, until the MAC budget holds.

    Paper mode (budget None): drop chunks whose channels all score below ``qualify`` until none does.
    """
    order = {g: torch.argsort(s) for g, s in scores.items()}
    keep = {g: len(s) for g, s in scores.items()}

    def next_chunk(g: str) -> tuple[float, int] | None:
        n = keep[g]
        target = _round_keep(len(scores[g]), n - 1, round_to) if n > round_to else n
        while target >= n and target > round_to:  # nearest-rounding may land on n: go one step lower
            target -= round_to
        if target >= n or target < min(round_to, len(scores[g])):
            return None
        chunk = scores[g][order[g][len(scores[g]) - n : len(scores[g]) - target]]
        if qualify is not None and budget is None and float(chunk.max()) >= qualify:
            return None
        return float(chunk.mean()), n - target

    while budget is None or macs.macs(keep) > budget:
        options = [(c[0], g, c[1]) for g in scores if (c := next_chunk(g)) is not None]
        if not options:
            if budget is None:
                break
            raise ConfigError(
                f"MAC target unreachable with at least {round_to} channels per layer; lower ratio or round_to"
            )
        _, g, size = min(options)
        keep[g] -= size
    return {g: order[g][: len(s) - keep[g]].tolist() for g, s in scores.items()}
