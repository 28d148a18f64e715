"""Configuration of ``quadratize``: which quadratic form, which layers, and how wide."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from frugalnn.core.config import FieldError, MethodConfig, option
from frugalnn.methods.quadratic.layers import FORMS

#: ``linear`` swaps nothing (only ``width`` acts): the wider linear baseline at a matched budget
CONFIG_FORMS = (*FORMS, "linear")
LAYER_KINDS = ("all", "linear", "conv")


@dataclass
class QuadraticConfig(MethodConfig):
    METHOD: ClassVar[str] = "quadratic"
    VERSION: ClassVar[int] = 1
    PRESETS: ClassVar[dict[str, dict]] = {
        # the spec's form (arXiv 2306.07294 gives no rank we could read): low rank on every layer
        "paper": {"form": "efficient", "rank": 4, "layers": "all"},
        # measured here (docs/quadratic.md): rank 1 on the classifier's linear layers keeps LeNet-5's
        # overhead under 2 % of parameters and 0.2 % of MACs
        "ours": {"form": "efficient", "rank": 1, "layers": "linear"},
    }

    form: str = option("efficient", "quadratic neuron form (linear = widen only)", choices=CONFIG_FORMS)
    rank: int = option(4, "shared projections k of the efficient form (1 .. layer input size)", low=1)
    layers: str = option("all", "which layer types to swap: all, linear or conv", choices=LAYER_KINDS)
    include: tuple[str, ...] = option(
        (), "only layers whose names match one of these fnmatch patterns (empty: every layer of the kinds)"
    )
    width: float = option(
        1.0,
        "multiply the outputs of swapped hidden layers (matched-parameter comparisons)",
        low=0.05,
        high=16,
    )
    init_scale: float = option(
        0.0,
        "std of the quadratic weights at the swap (0: the layer starts as its linear part)",
        low=0,
        high=1,
    )

    def check(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int):
            raise FieldError("rank", f"must be a whole number, got {self.rank!r}")
        if any(not isinstance(p, str) or not p for p in self.include):
            raise FieldError("include", f"must be non-empty name patterns, got {list(self.include)}")
