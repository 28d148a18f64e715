"""Calibration statistics of the linears to be factorised: Gram XᵀX (float64), Σ|x| (ASVD) and token
count per input, accumulated by forward pre-hooks while one block of decoder layers runs.
"""

from __future__ import annotations

import torch
from torch import nn

from frugalnn.methods.basis_sharing.discover import Discovered


def symmetric_gram(x: torch.Tensor, blocks: int = 6) -> torch.Tensor:
    """XᵀX from its upper block triangle only, mirrored: (b+1)/(2b) of the full product's multiply-adds.

    The Gram matrices cost as much as the calibration forward itself (down_proj's 1536² per token);
    torch has no syrk, and b = 6 column blocks measured 0.61× the time of ``x.mT @ x`` for d = 1536
    (0.65× for 576) on one thread, with the same float32 rounding.
    """
    d = x.shape[1]
    if d < 64 * blocks:
        return x.mT @ x
    edges = [round(i * d / blocks) for i in range(blocks + 1)]
    gram = torch.empty(d, d, dtype=x.dtype, device=x.device)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        gram[a:b, a:] = x[:, a:b].mT @ x[:, a:]
        gram[b:, a:b] = gram[a:b, b:].mT
    return gram


class Stats:
    """Per-input statistics: Gram XᵀX (float64), Σ|x| (ASVD) and token count."""

    def __init__(self) -> None:
        self.gram: torch.Tensor | None = None
        self.abs_sum: torch.Tensor | None = None
        self.count = 0

    def add(self, x: torch.Tensor, need_abs: bool) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()
        g = symmetric_gram(x).double()
        self.gram = g if self.gram is None else self.gram + g
        if need_abs:
            a = x.abs().sum(0).double()
            self.abs_sum = a if self.abs_sum is None else self.abs_sum + a
        self.count += x.shape[0]


LAYER_INPUTS: dict[int, list[tuple[torch.Tensor, tuple[int, str]]]] = {}


def cached(cache: dict, key: tuple[int, str], need_abs: bool) -> bool:
    owner = cache.get(("alias", *key), key)
    stats = cache.get(("stats", *owner))
    return stats is not None and (not need_abs or stats.abs_sum is not None)


def save_stats(cache: dict, path: str) -> None:
    """Persist a stats cache (benchmarks: several processes share one calibration pass)."""
    plain = {k: ((v.gram, v.abs_sum, v.count) if isinstance(v, Stats) else v) for k, v in cache.items()}
    torch.save(plain, path)


def load_stats(path: str) -> dict:
    out = {}
    for k, v in torch.load(path, weights_only=True).items():
        if k[0] == "stats":
            st = Stats()
            st.gram, st.abs_sum, st.count = v
            v = st
        out[k] = v
    return out


def hook_block(
    found: Discovered,
    block: list[int],
    groups: list[tuple[str, list[int]]],
    need_abs: bool,
    layers: dict[int, nn.Module] | None = None,
) -> tuple[dict, dict, list]:
    """Forward pre-hooks that accumulate input statistics for each linear to be factorised.

    ``layers``: the modules that will actually run (a bfloat16 copy of the block), default the model's."""
    stats: dict[tuple[int, str], Stats] = {}
    alias: dict[tuple[int, str], tuple[int, str]] = {}
    handles = []
    wanted = {(li, t) for t, members in groups for li in members}
    for li, t in sorted(wanted):
        key = (li, t)

        def hook(module: nn.Module, args: tuple, key: tuple[int, str] = key) -> None:
            x = args[0]
            seen = LAYER_INPUTS.setdefault(key[0], [])
            for tensor, owner in seen:  # the very same tensor object: another type already counted it
                if tensor is x:
                    if owner != key:
                        alias[key] = owner
                    return
            seen.append((x, key))
            stats.setdefault(key, Stats()).add(x, need_abs)

        owner = layers[li] if layers is not None else found.layers[li]
        handles.append(owner.get_submodule(t).register_forward_pre_hook(hook))
    return stats, alias, handles
