"""Knowledge distillation from the dense model while the pruned one is fine-tuned (Hinton et al. 2015).

Not part of the class-aware paper: an optional recovery aid applied *equally* to all three criteria, so
the comparison stays one field apart. The pruned network is trained on (1 − w)·CE(y) + w·T²·KL(p_T ‖ q_T),
where p_T / q_T are the dense teacher's / the student's softmax at temperature T; the T² keeps the soft
term's gradient scale independent of T (Hinton et al. 2015, Sec. 2).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    y: torch.Tensor,
    weight: float,
    temperature: float,
) -> torch.Tensor:
    """(1 − weight)·mean CE(student, y) + weight·T²·mean_n KL(softmax(t/T) ‖ softmax(s/T))."""
    ce = F.cross_entropy(student_logits, y)
    if weight <= 0:
        return ce
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1 - weight) * ce + weight * t * t * soft


def make_kd_loss(
    teacher: nn.Module, weight: float, temperature: float
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``loss_fn(model, x, y)`` for core.train: the teacher runs frozen in eval mode (its BN uses the
    running statistics, so it gives the same targets it would give at test time) on the same augmented
    batch the student sees."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        teacher.to(x.device)  # a no-op once it is there; fine-tuning may run on a GPU
        with torch.no_grad():
            target = teacher(x)
        return kd_loss(model(x), target, y, weight, temperature)

    return loss
