"""Early-exit configuration: class exclusion (AICAS 2024, arXiv 2309.13443) and the confidence baseline."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from frugalnn.errors import ConfigError

MODES = ("exclusion", "confidence", "hybrid")
RULES = ("ratio", "absolute")


@dataclass
class Config:
    """Where the exit heads go, how they decide, and how they are trained and tuned.

    exits: names of child modules of the backbone after which a head attaches (e.g. ``blocks.0``,
        ``layer1``, ``layer2.1``); None = after each block or stage but the last (VGG-small: its
        stages; ResNet-20: every residual block; see heads.default_exits).
    mode: ``exclusion`` — sigmoid heads that remove classes (the paper); ``confidence`` — softmax heads,
        a sample leaves when its top probability passes the exit's threshold (the baseline of Sec. IV);
        ``hybrid`` — our extension, not in the paper: every exit carries two heads on the same pooled
        features, the paper's sigmoid head (BCE loss) and a softmax head (CE loss, as the baseline's);
        the paper's exclusion with β_i on the sigmoid head, then a sample leaves when the softmax of
        the softmax head's logits over its *remaining* classes has a maximum above τ_i. β = 0
        everywhere gives the confidence baseline's decisions, τ = 1 everywhere the paper's rule.
    rule: exclusion test at exit i with s = sigmoid(z_i): ``ratio`` keeps class c if s_c > β_i · max(s)
        (paper Eq. 2); ``absolute`` keeps c if s_c > β_i. The top remaining class always stays.
    betas: β_i per exit in [0, 1]; None = all 0, i.e. no class is ever excluded until searched.
    thresholds: confidence threshold per exit in [0, 1] (confidence and hybrid modes); None = all 1.0,
        i.e. nobody leaves on confidence.
    head_pool: output side of the head's adaptive average pool; 1 is the paper's global average pool.
    pos_weight: positive-class weight of the heads' BCE (EECE code: 36 on CIFAR-10, 396 on CIFAR-100,
        i.e. 4·(K−1)); None = 4·(K−1).
    tolerance: accuracy the search may give up on validation data, as a fraction (0.001 = 0.1 point).
    step: β step of the search (0.01 in the paper); backoff_steps: steps taken back after the first
        β that breaks the tolerance (2 in the paper).
    input_shape: (C, H, W) of one input image; used to trace the backbone and count MACs.
    head_epochs / head_lr / head_batch_size / head_weight_decay: training of the heads on the frozen
        backbone's cached pooled features (Adam; cheap: the backbone runs once per image).
    joint_epochs / joint_lr: optional joint fine-tuning of backbone + heads with the full loss (SGD).
    train_subset: train the heads on only this many training images (quick runs); None = all.
    """

    exits: tuple[str, ...] | None = None
    mode: str = "exclusion"
    rule: str = "ratio"
    betas: tuple[float, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    head_pool: int = 1
    pos_weight: float | None = None
    tolerance: float = 0.001
    step: float = 0.01
    backoff_steps: int = 2
    input_shape: tuple[int, int, int] = (1, 28, 28)
    head_epochs: int = 30
    head_lr: float = 3e-3
    head_batch_size: int = 256
    head_weight_decay: float = 1e-4
    joint_epochs: int = 0
    joint_lr: float = 0.005
    train_subset: int | None = None
    seed: int = 0

    def validate(self, num_exits: int | None = None) -> Config:
        if self.exits is not None:
            if len(self.exits) == 0:
                raise ConfigError("exits is empty; name at least one layer (e.g. blocks.0) or pass None")
            if len(set(self.exits)) != len(self.exits):
                raise ConfigError(f"exits {list(self.exits)} names a layer twice; list each position once")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.rule not in RULES:
            raise ConfigError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for name in ("betas", "thresholds"):
            values = getattr(self, name)
            if values is None:
                continue
            check_unit_values(name, values)
            if num_exits is not None and len(values) != num_exits:
                raise ConfigError(
                    f"{name} has {len(values)} values but the model has {num_exits} exits; give one per exit"
                )
        if self.head_pool < 1:
            raise ConfigError(f"head_pool must be 1 or more (1 = global average pool), got {self.head_pool}")
        if self.pos_weight is not None and not self.pos_weight > 0:
            raise ConfigError(f"pos_weight must be positive, got {self.pos_weight}")
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(
                f"tolerance must lie in [0, 1) (a fraction: 0.005 = 0.5 point), got {self.tolerance}"
            )
        if not 0.0 < self.step < 1.0:
            raise ConfigError(f"step must lie in (0, 1), got {self.step}")
        if self.backoff_steps < 0:
            raise ConfigError(f"backoff_steps must be 0 or more, got {self.backoff_steps}")
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ConfigError(f"input_shape must be (C, H, W) with positive sizes, got {self.input_shape}")
        for name in ("head_epochs", "joint_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.head_batch_size < 1:
            raise ConfigError(f"head_batch_size must be positive, got {self.head_batch_size}")
        if not (self.head_lr > 0 and self.joint_lr > 0):
            raise ConfigError("head_lr and joint_lr must be positive")
        if self.train_subset is not None and self.train_subset < 1:
            raise ConfigError(f"train_subset must be positive or None, got {self.train_subset}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown early-exit config keys {unknown}; the checkpoint is from another version"
            )
        kwargs = dict(data)
        for key in ("exits", "betas", "thresholds", "input_shape"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


def check_unit_values(name: str, values: Any) -> None:
    """Every β / threshold must be a number in [0, 1]."""
    for v in values:
        if not isinstance(v, int | float) or math.isnan(float(v)) or not 0.0 <= float(v) <= 1.0:
            raise ConfigError(
                f"{name} must lie in [0, 1], got {v!r}; β = 0 disables an exit, 1 excludes most"
            )


def default_pos_weight(num_classes: int) -> float:
    """4·(K−1): reproduces the EECE code's 36 (CIFAR-10) and 396 (CIFAR-100)."""
    return 4.0 * (num_classes - 1)
