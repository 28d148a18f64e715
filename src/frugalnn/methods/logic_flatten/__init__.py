"""Flattened logic networks (Logic Design of Neural Networks for High-Throughput and Low-Power
Applications, arXiv 2309.10510): every neuron of a small quantised MLP as dedicated logic with its
weights embedded as constants, pipelined for one inference per cycle, proven bit-exact in simulation,
and trained hardware-aware to shrink the logic.

One verb: ``flatten(model, config, calib=..., measure_inputs=...) -> (LogicDesign, record)``.
"""

from frugalnn.methods import register_method
from frugalnn.methods.logic_flatten.checkpoint import load_logic_mlp, save_logic_mlp
from frugalnn.methods.logic_flatten.config import LogicFlattenConfig
from frugalnn.methods.logic_flatten.csd import csd_cost, csd_digits, csd_value
from frugalnn.methods.logic_flatten.design import LogicDesign, flatten, write_design
from frugalnn.methods.logic_flatten.model import IntegerMLP, LogicMLP, to_integer
from frugalnn.methods.logic_flatten.train import load_features, train_logic_mlp

register_method(LogicFlattenConfig, flatten)

__all__ = [
    "IntegerMLP",
    "LogicDesign",
    "LogicFlattenConfig",
    "LogicMLP",
    "csd_cost",
    "csd_digits",
    "csd_value",
    "flatten",
    "load_features",
    "load_logic_mlp",
    "save_logic_mlp",
    "to_integer",
    "train_logic_mlp",
    "write_design",
]
