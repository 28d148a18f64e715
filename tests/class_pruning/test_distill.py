"""Distillation during fine-tuning: the loss against a float64 hand computation, and the loop with it on."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from frugalnn.core.data import load_digits
from frugalnn.core.models import ResNetCifar
from frugalnn.errors import ConfigError
from frugalnn.methods.class_pruning import Config, prune
from frugalnn.methods.class_pruning.distill import kd_loss, make_kd_loss


def _softmax(z: list[float], t: float) -> list[float]:
    e = [math.exp(v / t) for v in z]
    return [v / sum(e) for v in e]


def _reference(s: list[list[float]], t_: list[list[float]], y: list[int], w: float, temp: float) -> float:
    """(1 − w)·CE + w·T²·KL(p ‖ q) written out with math.exp / math.log, averaged over the batch."""
    ce = kl = 0.0
    for sn, tn, yn in zip(s, t_, y, strict=True):
        ce += -math.log(_softmax(sn, 1.0)[yn])
        p, q = _softmax(tn, temp), _softmax(sn, temp)
        kl += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    n = len(y)
    return (1 - w) * ce / n + w * temp * temp * kl / n


def test_kd_loss_matches_hand_computation_in_float64() -> None:
    s = [[1.5, -0.3, 0.2], [0.1, 2.0, -1.0]]
    t = [[3.0, 0.5, -2.0], [-0.5, 1.0, 0.7]]
    y = [0, 2]
    got = kd_loss(
        torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64), torch.tensor(y), 0.5, 4.0
    )
    assert float(got) == pytest.approx(_reference(s, t, y, 0.5, 4.0), rel=1e-12)
    # weight 0 is plain cross-entropy; a student equal to its teacher adds no soft term
    plain = kd_loss(
        torch.tensor(s, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64), torch.tensor(y), 0, 4
    )
    assert float(plain) == pytest.approx(_reference(s, s, y, 0.0, 4.0), rel=1e-12)
    same = kd_loss(
        torch.tensor(s, dtype=torch.float64), torch.tensor(s, dtype=torch.float64), torch.tensor(y), 1, 4
    )
    assert float(same) == pytest.approx(0.0, abs=1e-12)


def test_teacher_is_frozen_and_only_the_student_gets_gradients() -> None:
    torch.manual_seed(0)
    teacher, student = ResNetCifar(1, 10, depth=8, width=8), ResNetCifar(1, 10, depth=8, width=4)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    loss_fn = make_kd_loss(teacher, 0.5, 4.0)
    student.train()
    loss_fn(student, torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # eval mode: BN stats kept


def test_prune_loop_with_distillation_and_bad_weights() -> None:
    data = load_digits()
    data = dataclasses.replace(data, x_test=data.x_test[:100], y_test=data.y_test[:100])
    torch.manual_seed(0)
    model = ResNetCifar(1, 10, depth=8, width=8)
    config = Config(
        method="l1", ratio=0.5, iterations=1, pretrain_steps=2, finetune_steps=2, final_steps=2,
        batch_size=32, distill_weight=0.5,
    )  # fmt: skip
    pruned, record = prune(model, config, data, progress=False)
    assert record["mac_reduction"] >= 0.5 and record["config"]["distill_weight"] == 0.5
    assert 0.0 <= record["val_accuracy"] <= 1.0 and "test_accuracy" not in record  # the caller's job
    for bad in ({"distill_weight": 1.5}, {"distill_weight": -0.1}, {"distill_temperature": 0.0}):
        with pytest.raises(ConfigError, match="distill"):
            Config(**bad).validate()
