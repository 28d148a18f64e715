"""Class-aware pruning configuration (DATE 2024, arXiv 2312.05875) and the L1 / Taylor baselines as settings.

The method and its two baselines share everything but the filter criterion (and, for class-aware, the
pruning-friendly regulariser), so a comparison at equal FLOPs changes one field.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugalnn.core.train import check_device
from frugalnn.errors import ConfigError

METHODS = ("class-aware", "l1", "taylor")
ALLOCATIONS = ("auto", "global", "uniform")


@dataclass
class Config:
    """What to prune, how far, and with how much fine-tuning.

    method: ``class-aware`` (per-class binarised Taylor score, Sec. III-A of the paper), ``l1`` (filter
        weight L1 norm, Li et al. 2017) or ``taylor`` (class-agnostic |mean(a·∂L/∂a)|, Molchanov et al. 2017).
    target_flops: share of the dense model's MACs the pruned model keeps, strictly inside (0, 1):
        0.4 means 60% fewer MACs. None: paper mode, prune until no filter qualifies (see min_class_score).
    iterations: prune → fine-tune rounds; the MAC budget shrinks geometrically to the target.
    allocation: ``global`` ranks all filters of the network on one scale (class-aware scores lie in
        [0, K] and are comparable across layers); ``uniform`` removes the same share of every layer (the
        peer run's L1 / Taylor setting); ``auto`` = uniform (global ranking collapsed the last residual
        stage of ResNet-20 to 4 channels in a pilot: see docs/class_pruning.md).
    round_to: kept channel counts are multiples of this (CPU kernels vectorise over 4 / 8 channels);
        it is also the fewest channels a layer keeps.
    images_per_class: images per class for the class-aware score (paper: about 1/500 of a class, ~12 here);
        the Taylor baseline uses the same total number of images drawn across classes.
    score_threshold: binarisation threshold on |a·∂L/∂a| (the reference code uses 1e-50, i.e. "non-zero").
    relative_threshold: > 0 binarises at this multiple of each conv's mean |a·∂L/∂a| over the scoring
        images instead of at score_threshold (a deviation from the paper: with the absolute "non-zero"
        threshold 55% of ResNet-20's filters score exactly K on the trained zoo model, and the ranking
        falls to the tie-breaker; 0.1 spreads them over 1–6 classes). 0 (default): the paper's threshold.
    min_class_score: paper mode only (target_flops None): a filter qualifies for removal when its score
        (≈ number of classes it matters for) is below this; pruning stops when none qualifies.
    orth_weight, l1_weight: regulariser weights while training the class-aware model (paper: 0.01 on
        the orthogonality of 3x3 kernels, 1e-4 on the L1 norm of all parameters); 0 turns one off.
    regularize_baselines: also train L1 / Taylor with those regularisers (default: they train plainly).
    pretrain_steps: regularised training of the dense model before the first scoring (class-aware only;
        with ``equal_budget`` the baselines get the same number of extra steps in their final fine-tune).
    finetune_steps: SGD steps after each pruning round; final_steps: extra steps after the last round.
    lr: fine-tuning learning rate (cosine within each phase), batch_size: images per step.
    max_accuracy_drop: stop (and keep the previous round's model) when validation accuracy falls more
        than this below the dense model's (fraction, 0.02 = 2 points); None: no floor.
    val_images: validation images for the per-round accuracy check (None: all of them).
    seed: image choice for the scores and fine-tuning batch order.
    distill_weight: weight w of knowledge distillation from the dense model in every fine-tuning phase,
        loss (1 − w)·CE + w·T²·KL (Hinton et al. 2015; not in the paper, applied to all three criteria
        alike); 0 (default): plain cross-entropy.
    distill_temperature: T of the distillation softmax (4 is the usual choice for 10 classes).
    device: where the fine-tuning steps run (``cpu``, ``cuda``); scoring, pruning and evaluation stay on
        the CPU, and the model handed back is on the CPU.
    """

    method: str = "class-aware"
    target_flops: float | None = 0.4
    iterations: int = 3
    allocation: str = "auto"
    round_to: int = 4
    images_per_class: int = 12
    score_threshold: float = 1e-50
    relative_threshold: float = 0.0
    min_class_score: float = 5.0
    orth_weight: float = 0.01
    l1_weight: float = 0.0
    regularize_baselines: bool = False
    pretrain_steps: int = 100
    finetune_steps: int = 150
    final_steps: int = 400
    equal_budget: bool = True
    lr: float = 0.01
    batch_size: int = 128
    max_accuracy_drop: float | None = None
    val_images: int | None = 2000
    seed: int = 0
    distill_weight: float = 0.0
    distill_temperature: float = 4.0
    device: str = "cpu"

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown pruning method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.target_flops is not None and not 0.0 < self.target_flops < 1.0:
            raise ConfigError(
                f"target FLOPs ratio must lie strictly between 0 and 1 (share of MACs kept), got "
                f"{self.target_flops}; e.g. 0.4 keeps 40% of the MACs"
            )
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"allocation must be one of {', '.join(ALLOCATIONS)}, got {self.allocation!r}")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be 1 or more, got {self.iterations}")
        if self.round_to < 1:
            raise ConfigError(f"round_to must be a positive channel count, got {self.round_to}")
        if self.relative_threshold < 0:
            raise ConfigError(f"relative_threshold must be 0 or more, got {self.relative_threshold}")
        if self.images_per_class < 1:
            raise ConfigError(f"images_per_class must be positive, got {self.images_per_class}")
        for name in ("pretrain_steps", "finetune_steps", "final_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.orth_weight < 0 or self.l1_weight < 0:
            raise ConfigError("regulariser weights must be 0 or more; use 0 to turn one off")
        if not self.lr > 0 or self.batch_size < 1:
            raise ConfigError(f"need lr > 0 and batch_size >= 1, got lr {self.lr}, batch {self.batch_size}")
        if not 0 <= self.distill_weight <= 1 or not self.distill_temperature > 0:
            raise ConfigError(
                f"need distill_weight in [0, 1] and distill_temperature > 0, got {self.distill_weight}, "
                f"{self.distill_temperature}"
            )
        check_device(self.device)
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop < 1:
            raise ConfigError(f"max_accuracy_drop is a fraction in [0, 1), got {self.max_accuracy_drop}")

    @property
    def resolved_allocation(self) -> str:
        if self.allocation != "auto":
            return self.allocation
        return "uniform"  # global collapsed ResNet-20's last stage in the pilot (docs/class_pruning.md)

    @property
    def regularized(self) -> bool:
        """Whether this run trains with the pruning-friendly regulariser."""
        wants = self.method == "class-aware" or self.regularize_baselines
        return wants and (self.orth_weight > 0 or self.l1_weight > 0)
