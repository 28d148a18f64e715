"""The class-pruning experiment end to end in a smaller quick form (one criterion, 300 test images): the MAC
target is met, the dense figures match an independent count on the zoo model, and the table, record and
headline agree."""

from __future__ import annotations

import json

import pytest
import torch

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.class_pruning import run


def test_quick_class_pruning_run_with_one_criterion(tmp_path):
    headline = run(tmp_path, quick=True, seed=0, test_images=300, methods=("l1",))
    record = json.loads((tmp_path / "class_pruning.json").read_text())
    (r,) = record["results"]["rows"]
    assert r["model"] == "resnet20" and r["method"] == "l1" and r["target_flops"] == 0.4
    assert r["macs"] <= 0.4 * r["dense_macs"] * 1.001 and r["mac_reduction"] == pytest.approx(0.6, abs=0.03)
    # the starting model's figures, counted independently: parameters and plain argmax accuracy
    dense, _, _ = load_pretrained("resnet20")
    data = load_fashion_mnist(seed=0)
    with torch.no_grad():
        acc = (dense.eval()(data.x_test[:300]).argmax(1) == data.y_test[:300]).float().mean().item()
    assert r["dense_test_accuracy"] == pytest.approx(acc, abs=1e-6)
    assert r["dense_params"] == sum(p.numel() for p in dense.parameters())
    assert r["params"] < r["dense_params"] and 0.1 < r["test_accuracy"] <= 1.0
    (t,) = record["results"]["table"]
    assert t["test acc %"] == pytest.approx(100 * r["test_accuracy"])
    (h,) = headline  # one criterion, 60% fewer MACs: no rival to compare with, no 80% target
    assert h["ours"] == pytest.approx(t["test acc %"], rel=1e-3) and h["met"] is None
    assert record["config"]["methods"] == ["l1"] and record["seed"] == 0 and record["versions"]["torch"]
    assert (tmp_path / "class_pruning.md").exists() and (
        tmp_path / "class_pruning_resnet20_macs.png"
    ).exists()
