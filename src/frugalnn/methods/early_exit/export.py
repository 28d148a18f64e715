"""What an early-exit model exports: the full-depth path with every head's logits (a static graph), and
the exit rule as data, since the skipping forward's data-dependent control flow is not exportable."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .heads import EarlyExitModel


class FullDepth(nn.Module):
    """``forward(x) -> (final logits, head 0 logits, head 1 logits, ...)``: no sample skips, so the
    graph is static; a runtime applies the exit rule (``exit_rule``) to the head logits itself."""

    def __init__(self, model: EarlyExitModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heads, final = self.model.outputs(x)
        return (final, *heads)


def exit_rule(model: EarlyExitModel) -> dict[str, Any]:
    """The decision each exit applies to its head's logits, with the searched β and τ per exit."""
    return {
        "outputs": ["final"] + [f"exit:{name}" for name in model.exit_names],
        "mode": model.config.mode,
        "rule": model.config.rule,
        "betas": [float(b) for b in model.betas],
        "thresholds": [float(t) for t in model.thresholds],
        "head_logits": "hybrid: (N, 2K) = [sigmoid-head logits, softmax-head logits]; else (N, K)",
        "config": model.config.to_dict(),
    }
