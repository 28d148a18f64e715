"""Efficient quadratic neurons (arXiv 2306.07294) and the earlier quadratic forms as options.

``quadratize(model, QuadraticConfig(...), filter_fn=None) -> (model, record)`` swaps Linear/Conv2d
layers of any model for ``QuadraticLinear`` / ``QuadraticConv2d``; ``frugalnn.apply`` reaches it too.
"""

from frugalnn.core import plugins
from frugalnn.methods import register_method
from frugalnn.methods.quadratic.config import CONFIG_FORMS, QuadraticConfig
from frugalnn.methods.quadratic.layers import FORMS, QuadraticConv2d, QuadraticLinear
from frugalnn.methods.quadratic.quadratize import quadratize, rebuild, select_layers, widen

register_method(QuadraticConfig, quadratize)
plugins.register("model_transform", "quadratic")(rebuild)

__all__ = [
    "CONFIG_FORMS",
    "FORMS",
    "QuadraticConfig",
    "QuadraticConv2d",
    "QuadraticLinear",
    "quadratize",
    "select_layers",
    "widen",
]
