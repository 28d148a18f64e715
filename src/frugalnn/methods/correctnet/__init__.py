"""CorrectNet (Eldebiky et al., DATE 2023, arXiv 2211.14917): robustness of analog RRAM networks.

One verb: ``correct(model, config, data) -> (compensated model, record)``, also reachable as
``frugalnn.apply(model, CorrectNetConfig(...), data=data)``. A compensated model saves with
``save_corrected`` and loads back through ``frugalnn.core.checkpoint.load_checkpoint`` (its
``"transforms"`` entry re-inserts the modules by name).
"""

from typing import Any

from torch import nn

from frugalnn.core import plugins
from frugalnn.methods import register_method
from frugalnn.methods.correctnet.compensation import (
    Compensated,
    Compensation,
    compensations,
    insert_compensation,
    mappable_layers,
    overhead,
    strip_compensation,
)
from frugalnn.methods.correctnet.config import CorrectNetConfig
from frugalnn.methods.correctnet.correct import correct, train_compensation
from frugalnn.methods.correctnet.lipschitz import gram_penalty, lipschitz_penalty
from frugalnn.methods.correctnet.placement import reinforce_placement

register_method(CorrectNetConfig, correct)


@plugins.register("model_transform", "correctnet")
def rebuild(model: nn.Module, config: dict[str, Any]) -> nn.Module:
    """Re-insert the compensation modules a checkpoint records (``{"layers": [...], "comp_rank": r}``)."""
    from frugalnn.errors import CheckpointError

    layers, rank = config.get("layers"), config.get("comp_rank")
    if not isinstance(layers, list) or not isinstance(rank, int):
        raise CheckpointError(
            "correctnet transform needs 'layers' (list) and 'comp_rank' (int); re-save the model"
        )
    return insert_compensation(model, layers, rank)


def transform_entry(model: nn.Module, config: CorrectNetConfig) -> dict[str, Any]:
    """The checkpoint ``"transforms"`` entry that rebuilds ``model``'s compensation modules."""
    return {
        "name": "correctnet",
        "config": {"layers": list(compensations(model)), "comp_rank": config.comp_rank},
    }


__all__ = [
    "Compensated",
    "Compensation",
    "CorrectNetConfig",
    "compensations",
    "correct",
    "gram_penalty",
    "insert_compensation",
    "lipschitz_penalty",
    "mappable_layers",
    "overhead",
    "rebuild",
    "reinforce_placement",
    "strip_compensation",
    "train_compensation",
    "transform_entry",
]
