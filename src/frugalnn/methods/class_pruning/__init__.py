"""Class-aware pruning (Class-Aware Pruning for Efficient Neural Networks, DATE 2024, arXiv 2312.05875).

Two verbs, as Torch-Pruning splits them:

    prune_step(model, example_inputs, L1Importance(), ratio=0.5)        # one data-light step, in place
    model, record = prune_and_finetune(model, ClassPruningConfig(ratio=0.6), (x_train, y_train))
    model, record = frugalnn.apply(model, ClassPruningConfig(ratio=0.6), data=train_loader)

L1 and class-agnostic Taylor filter pruning are the same loop with ``method="l1" | "taylor"``
(``ClassPruningConfig.preset("l1")``); ``prune`` is ``prune_and_finetune``.
"""

from frugalnn.methods import register_method
from frugalnn.methods.class_pruning.config import BUDGETS, METHODS, ClassPruningConfig, Config
from frugalnn.methods.class_pruning.graph import (
    ChannelGraph,
    MacModel,
    check_supported,
    prune_channels,
    save_pruned,
)
from frugalnn.methods.class_pruning.importance import (
    ClassAwareImportance,
    L1Importance,
    TaylorImportance,
    class_aware_scores,
    l1_scores,
    taylor_scores,
)
from frugalnn.methods.class_pruning.prune import as_image_data, prune, prune_and_finetune, prune_step

register_method(ClassPruningConfig, prune_and_finetune)

__all__ = [
    "BUDGETS",
    "ClassAwareImportance",
    "ClassPruningConfig",
    "L1Importance",
    "TaylorImportance",
    "as_image_data",
    "prune_and_finetune",
    "prune_step",
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
