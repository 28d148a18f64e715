"""PowerPruning (Li et al., DAC 2023, arXiv 2303.13997): weight and activation values chosen for low
MAC power and short sensitised delays, retraining onto them, and supply-voltage scaling.

One verb: ``power_prune(model, config, data) -> (power-pruned int8 model, record)``, also reached as
``frugalnn.apply(model, PowerPruningConfig(...), data=data)``.
"""

from frugalnn.methods import register_method
from frugalnn.methods.power_pruning.config import PowerPruningConfig
from frugalnn.methods.power_pruning.layers import (
    PowerPrunedConv2d,
    PowerPrunedLinear,
    bake,
    integer_forward,
    nearest_code,
    to_pruned,
)
from frugalnn.methods.power_pruning.prune import TRANSFORM, power_prune, quantise_int8
from frugalnn.methods.power_pruning.voltage import VoltageModel, choose_vdd

register_method(PowerPruningConfig, power_prune)

__all__ = [
    "TRANSFORM",
    "PowerPrunedConv2d",
    "PowerPrunedLinear",
    "PowerPruningConfig",
    "VoltageModel",
    "bake",
    "choose_vdd",
    "integer_forward",
    "nearest_code",
    "power_prune",
    "quantise_int8",
    "to_pruned",
]
