"""The baselines experiment end to end in its quick form (bundled zoo weights, 2,000 test images, 150
LeNet-5 steps from scratch): accuracy, parameters and MACs match independent counts on the zoo models."""

from __future__ import annotations

import json

import pytest
import torch

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.baselines import run


def test_quick_baselines_run_matches_independent_counts(tmp_path):
    headline = run(tmp_path, quick=True, seed=0)
    record = json.loads((tmp_path / "baselines.json").read_text())
    models = {r["model"]: r for r in record["results"]["models"]}
    assert set(models) == {"lenet5", "vgg-small", "resnet20"}
    data = load_fashion_mnist(seed=0)
    lenet, _, _ = load_pretrained("lenet5")
    with torch.no_grad():
        acc = (lenet.eval()(data.x_test[:2000]).argmax(1) == data.y_test[:2000]).float().mean().item()
    r = models["lenet5"]
    assert r["test_images"] == 2000 and r["test_acc"] == pytest.approx(acc, abs=1e-6)
    assert r["params"] == sum(p.numel() for p in lenet.parameters())
    # LeNet-5 on 28x28: conv 6@5x5 (pad 2) 28x28, conv 16@5x5 10x10, fc 400-120-84-10
    assert r["macs_per_image"] == 6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10
    scratch = record["results"]["from_scratch"]
    assert scratch["steps"] == 150 and scratch["val_accuracy"] > 0.5
    acc_row = next(h for h in headline if h["metric"].startswith("lenet5 test accuracy"))
    assert acc_row["ours"] == pytest.approx(acc, rel=1e-3)
    assert (tmp_path / "baselines.md").exists() and (tmp_path / "baselines_accuracy.png").exists()
