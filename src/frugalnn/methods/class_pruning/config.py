"""Class-aware pruning configuration (DATE 2024, arXiv 2312.05875) and the L1 / Taylor baselines as settings.

The method and its two baselines share everything but the filter criterion (and, for class-aware, the
pruning-friendly regulariser), so a comparison at equal FLOPs changes one field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from frugalnn.core.config import MethodConfig, option
from frugalnn.core.train import check_device

METHODS = ("class-aware", "l1", "taylor")
ALLOCATIONS = ("auto", "global", "uniform")


# Fine-tuning budgets (the same for every criterion in a comparison). full: 700 SGD steps of 128 images
# (~1.6 epochs of Fashion-MNIST); long: twice the steps with distillation from the dense model in every
# phase; xlong: three times long (the <= 1 point target at 80% fewer MACs); quick: the demo's smoke run.
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"iterations": 3, "pretrain_steps": 100, "finetune_steps": 100, "final_steps": 300},
    "long": {
        "iterations": 3, "pretrain_steps": 200, "finetune_steps": 200, "final_steps": 600,
        "distill_weight": 0.5, "distill_temperature": 4.0,
    },
    "xlong": {
        "iterations": 3, "pretrain_steps": 600, "finetune_steps": 600, "final_steps": 1800,
        "distill_weight": 0.5, "distill_temperature": 4.0,
    },
    "quick": {"iterations": 1, "pretrain_steps": 4, "finetune_steps": 12, "final_steps": 24, "val_images": 500},
}  # fmt: skip


@dataclass
class ClassPruningConfig(MethodConfig):
    """What to prune, how far, and with how much fine-tuning; see each field's help.

    The method and its two baselines share everything but the filter criterion (and, for class-aware,
    the pruning-friendly regulariser), so a comparison at equal MACs changes one field. Each round
    removes filters until the model's MACs are dense_macs · (1 − ratio)^(round/iterations).
    """

    METHOD: ClassVar[str] = "class-pruning"
    VERSION: ClassVar[int] = 2  # 2: ``ratio`` (share of MACs removed) replaced ``target_flops`` (share kept)
    # the variants a comparison names (criterion + config change); "paper" is the publication's setting
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        # measured best class-aware variant on ResNet-20 (docs/class_pruning.md ablation): no
        # orthogonality regulariser, scores binarised at 0.1 x each layer's mean |a·dL/da|, long budget
        "ours": {"relative_threshold": 0.1, "orth_weight": 0.0, "l1_weight": 0.0, **BUDGETS["long"]},
        "class-aware": {},
        "class-aware-noreg": {"orth_weight": 0.0, "l1_weight": 0.0},
        "class-aware-global": {"allocation": "global"},
        "class-aware-rel": {"relative_threshold": 0.1},
        "class-aware-rel-noreg": {"relative_threshold": 0.1, "orth_weight": 0.0, "l1_weight": 0.0},
        "l1": {"method": "l1"},
        "taylor": {"method": "taylor"},
    }

    method: str = option(
        "class-aware",
        "filter criterion: class-aware (per-class binarised Taylor score, paper Sec. III-A), l1 (filter "
        "weight L1 norm, Li et al. 2017) or taylor (class-agnostic |mean(a·dL/da)|, Molchanov et al. 2017)",
        choices=METHODS,
    )
    ratio: float | None = option(
        0.6,
        "share of the dense model's MACs removed, in (0, 1): 0.6 = 60% fewer; None: paper mode, prune "
        "until no filter qualifies (min_class_score)",
        low=0.0, high=1.0, low_open=True, high_open=True,
    )  # fmt: skip
    iterations: int = option(3, "prune -> fine-tune rounds; the MAC budget shrinks geometrically", low=1)
    allocation: str = option(
        "auto",
        "global: rank all filters on one scale; uniform: remove the same share of every layer; auto = uniform "
        "(global collapsed ResNet-20's last stage to 4 channels: docs/class_pruning.md)",
        choices=ALLOCATIONS,
    )
    round_to: int = option(4, "kept channel counts are multiples of this (and at least this)", low=1)
    images_per_class: int = option(
        12, "images per class for the class-aware score (taylor: as many in all)", low=1
    )
    score_threshold: float = option(
        1e-50, "binarisation threshold on |a·dL/da| (the reference: non-zero)", low=0.0
    )
    relative_threshold: float = option(
        0.0,
        "> 0: binarise at this multiple of each conv's mean |a·dL/da| instead (ours); 0: the paper's",
        low=0.0,
    )
    min_class_score: float = option(
        5.0, "paper mode: a filter qualifies for removal when its score is below this", low=0.0
    )
    orth_weight: float = option(
        0.01, "weight of the orthogonality regulariser on 3x3 kernels (paper: 0.01)", low=0.0
    )
    l1_weight: float = option(0.0, "weight of the L1 regulariser on all parameters (paper: 1e-4)", low=0.0)
    regularize_baselines: bool = option(False, "also train l1 / taylor with the regularisers")
    pretrain_steps: int = option(100, "regularised steps before the first scoring (class-aware)", low=0)
    finetune_steps: int = option(150, "SGD steps after each pruning round", low=0)
    final_steps: int = option(400, "extra SGD steps after the last round", low=0)
    equal_budget: bool = option(
        True, "baselines get class-aware's pre-training steps in their final fine-tune"
    )
    lr: float = option(0.01, "fine-tuning learning rate (cosine within each phase)", low=0.0, low_open=True)
    batch_size: int = option(128, "images per fine-tuning step", low=1)
    max_accuracy_drop: float | None = option(
        None, "stop (keeping the previous round) when validation accuracy falls more than this fraction",
        low=0.0, high=1.0, high_open=True,
    )  # fmt: skip
    val_images: int | None = option(2000, "validation images for the per-round check (None: all)", low=1)
    seed: int = option(0, "image choice for the scores and fine-tuning batch order", low=0)
    distill_weight: float = option(
        0.0,
        "knowledge distillation from the dense model while fine-tuning: (1-w)·CE + w·T²·KL",
        low=0.0,
        high=1.0,
    )
    distill_temperature: float = option(
        4.0, "temperature T of the distillation softmax", low=0.0, low_open=True
    )
    device: str = option("cpu", "where fine-tuning runs (cpu, cuda); scoring and pruning stay on the CPU")

    def check(self) -> None:
        check_device(self.device)

    @classmethod
    def migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        if version < 2 and "target_flops" in data:
            data = dict(data)
            kept = data.pop("target_flops")
            data["ratio"] = None if kept is None else round(1.0 - kept, 12)
        return data

    @property
    def resolved_allocation(self) -> str:
        return "uniform" if self.allocation == "auto" else self.allocation

    @property
    def regularized(self) -> bool:
        """Whether this run trains with the pruning-friendly regulariser."""
        wants = self.method == "class-aware" or self.regularize_baselines
        return wants and (self.orth_weight > 0 or self.l1_weight > 0)


Config = ClassPruningConfig
