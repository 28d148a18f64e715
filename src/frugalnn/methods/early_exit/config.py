"""Early-exit configuration: class exclusion (AICAS 2024, arXiv 2309.13443) and the confidence baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from frugalnn.core.config import FieldError, MethodConfig, option

MODES = ("exclusion", "confidence", "hybrid")
RULES = ("ratio", "absolute")


@dataclass
class EarlyExitConfig(MethodConfig):
    """Where the exit heads go, how they decide, and how they are trained and tuned.

    mode ``hybrid`` (ours, not in the paper): every exit carries two heads on the same pooled features,
    the paper's sigmoid head (BCE loss) and a softmax head (CE loss, as the baseline's); the paper's
    exclusion with β_i on the sigmoid head, then a sample leaves when the softmax of the softmax head's
    logits over its *remaining* classes has a maximum above τ_i. β = 0 everywhere gives the confidence
    baseline's decisions, τ = 1 everywhere the paper's rule.
    """

    METHOD: ClassVar[str] = "early-exit"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"mode": "exclusion", "rule": "ratio"},
        # measured best on ResNet-20 / VGG-small (docs/early_exit.md): two heads per exit, β and τ
        # searched together, a tolerance that keeps the test loss within 0.5 point
        "ours": {"mode": "hybrid", "tolerance": 0.004},
    }

    exits: tuple[str, ...] | None = option(
        None,
        "child modules of the backbone after which a head attaches (e.g. blocks.0, layer2.1); "
        "None: after each block or stage but the last",
    )
    mode: str = option(
        "exclusion",
        "exclusion: sigmoid heads remove classes (the paper); confidence: softmax heads, leave above a "
        "threshold (the baseline); hybrid: both (ours)",
        choices=MODES,
    )
    rule: str = option(
        "ratio",
        "exclusion test with s = sigmoid(z): ratio keeps c if s_c > β·max(s) (paper Eq. 2); absolute if s_c > β",
        choices=RULES,
    )
    betas: tuple[float, ...] | None = option(None, "β per exit in [0, 1]; None: all 0 until searched")
    thresholds: tuple[float, ...] | None = option(
        None, "confidence threshold per exit in [0, 1]; None: all 1 (nobody leaves on confidence)"
    )
    head_pool: int = option(1, "output side of the head's average pool (1: the paper's global pool)", low=1)
    pos_weight: float | None = option(
        None,
        "positive-class weight of the heads' BCE; None: 4·(K−1) as the EECE code",
        low=0.0,
        low_open=True,
    )
    tolerance: float = option(
        0.001,
        "validation accuracy the search may give up, a fraction (0.005 = 0.5 point)",
        low=0.0,
        high=1.0,
        high_open=True,
    )
    step: float = option(
        0.01, "β step of the search (paper: 0.01)", low=0.0, high=1.0, low_open=True, high_open=True
    )
    backoff_steps: int = option(2, "steps taken back after the first β that breaks the tolerance", low=0)
    input_shape: tuple[int, ...] = option((1, 28, 28), "(C, H, W) of one input image", cli=False)
    head_epochs: int = option(30, "epochs of head training on the frozen backbone's features", low=0)
    head_lr: float = option(3e-3, "Adam learning rate of the heads", low=0.0, low_open=True)
    head_batch_size: int = option(256, "batch size of head training", low=1)
    head_weight_decay: float = option(1e-4, "weight decay of head training", low=0.0)
    joint_epochs: int = option(0, "epochs of optional joint fine-tuning of backbone + heads (SGD)", low=0)
    joint_lr: float = option(0.005, "learning rate of joint fine-tuning", low=0.0, low_open=True)
    train_subset: int | None = option(None, "train the heads on only this many images; None: all", low=1)
    seed: int = option(0, "seed of head training", low=0)

    def check(self) -> None:
        if self.exits is not None:
            if len(self.exits) == 0:
                raise FieldError("exits", "is empty; name at least one layer (e.g. blocks.0) or pass None")
            if len(set(self.exits)) != len(self.exits):
                raise FieldError("exits", f"{list(self.exits)} names a layer twice; list each position once")
        for name in ("betas", "thresholds"):
            if getattr(self, name) is not None:
                check_unit_values(name, getattr(self, name))
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise FieldError("input_shape", f"must be (C, H, W) with positive sizes, got {self.input_shape}")

    def check_exit_count(self, num_exits: int) -> Self:
        """betas / thresholds, when given, hold one value per exit of the built model."""
        for name in ("betas", "thresholds"):
            values = getattr(self, name)
            if values is not None and len(values) != num_exits:
                raise FieldError(
                    name, f"has {len(values)} values but the model has {num_exits} exits; give one per exit"
                )
        return self


Config = EarlyExitConfig


def check_unit_values(name: str, values: Any) -> None:
    """Every β / threshold must be a number in [0, 1]."""
    for v in values:
        if not isinstance(v, int | float) or math.isnan(float(v)) or not 0.0 <= float(v) <= 1.0:
            raise FieldError(name, f"must lie in [0, 1], got {v!r}; β = 0 disables an exit, 1 excludes most")


def default_pos_weight(num_classes: int) -> float:
    """4·(K−1): reproduces the EECE code's 36 (CIFAR-10) and 396 (CIFAR-100)."""
    return 4.0 * (num_classes - 1)
