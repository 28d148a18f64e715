"""The early-exit experiment end to end in its quick form (VGG-small zoo model, Fashion-MNIST subsets):
the real skipping forward must give the simulated answers, and the record must carry what the docs read."""

from __future__ import annotations

import json

import pytest

import frugalnn.experiments.early_exit.timing as timing
from frugalnn.experiments.early_exit import run


def test_quick_study_writes_a_consistent_record(tmp_path, monkeypatch):
    monkeypatch.setattr(timing, "REPEATS", 2)  # speed figures are the bench's job, not this test's
    headline = run(tmp_path, quick=True, seed=0)
    record = json.loads((tmp_path / "early_exit_vgg-small.json").read_text())
    r = record["results"]
    assert record["seed"] == 0 and record["data"] and record["versions"]["torch"]
    # the skipping forward (per batch and re-batched) gives exactly the simulated predictions and exits
    assert r["real_forward_mismatches_vs_simulation"] and not any(
        r["real_forward_mismatches_vs_simulation"].values()
    )
    for method in ("exclusion", "confidence", "hybrid"):
        costs = r["exit_costs_us"][method]
        assert len(costs["segment"]) == 3 and len(costs["exit"]) == 2
        assert all(c > 0 for c in costs["segment"] + costs["exit"])
        lean, main = r["lean"][method], r["main"][method]
        for i, v in enumerate(lean["values"]):  # the lean setting keeps or switches off each exit
            assert v == main["values"][i] or v in (0.0, 1.0)
        assert 0.0 <= main["mac_reduction"] < 1.0
    cut = next(h for h in headline if h["metric"].startswith("vgg-small hybrid: MAC cut"))
    assert cut["ours"] == pytest.approx(100 * r["main"]["hybrid"]["mac_reduction"], rel=1e-3)
    assert cut["baseline"] == pytest.approx(100 * r["main"]["confidence"]["mac_reduction"], rel=1e-3)
    assert cut["met"] == r["targets"]["hybrid"]["ge_40pct_fewer_macs_at_le_0.5pt_loss"]
    assert (tmp_path / "early_exit.md").exists() and (tmp_path / "early_exit_acc_vs_macs.png").exists()
