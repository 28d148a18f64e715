"""Class-aware pruning (Class-Aware Pruning for Efficient Neural Networks, DATE 2024, arXiv 2312.05875).

One verb: ``prune(model, config, data) -> (thinner model, record)``; L1 and class-agnostic Taylor
filter pruning are the same verb with ``Config(method="l1" | "taylor")``.
"""

from frugalnn.methods.class_pruning.config import METHODS, Config
from frugalnn.methods.class_pruning.graph import (
    ChannelGraph,
    MacModel,
    check_supported,
    prune_channels,
    save_pruned,
)
from frugalnn.methods.class_pruning.importance import class_aware_scores, l1_scores, taylor_scores
from frugalnn.methods.class_pruning.prune import prune

__all__ = [
    "METHODS",
    "ChannelGraph",
    "Config",
    "MacModel",
    "check_supported",
    "class_aware_scores",
    "l1_scores",
    "prune",
    "prune_channels",
    "save_pruned",
    "taylor_scores",
]
