"""The crossbar experiment end to end in a smaller quick form (2 chips per sigma, the digits MLP only):
the cost table is consistent with itself, accuracy on ideal crossbars matches the digital model, and the
record, table, plots and headline agree."""

from __future__ import annotations

import json

import pytest

from frugalnn.experiments.crossbar import SIGMAS, run


def test_quick_crossbar_run_is_consistent(tmp_path):
    headline = run(tmp_path, quick=True, seed=0, draws=2, lenet=False)
    record = json.loads((tmp_path / "crossbar.json").read_text())
    costs = record["results"]["costs"]
    for model in {c["model"] for c in costs}:
        mine = sorted((c for c in costs if c["model"] == model), key=lambda c: -c["n_crossbars"])
        assert mine[0]["fits"] and mine[0]["edp_vs_resident"] == pytest.approx(1.0)
        # fewer crossbars than tiles: reprogramming makes every inference dearer, never cheaper
        edps = [c["edp_vs_resident"] for c in mine]
        assert all(b >= a * (1 - 1e-9) for a, b in zip(edps, edps[1:]))
        assert all(c["write_share"] > 0 for c in mine if not c["fits"])
    (mlp,) = record["results"]["accuracy"]
    assert [r["sigma"] for r in mlp["sweep"]] == list(SIGMAS) and mlp["draws"] == 2
    assert mlp["digital_accuracy"] > 0.85  # a 2-layer MLP on 8x8 digits after 30 epochs
    # sigma 0: only the converters' quantisation and output noise separate the chip from the digital model
    assert abs(mlp["sweep"][0]["mean"] - mlp["digital_accuracy"]) < 0.03
    assert all(r["min"] <= r["mean"] <= r["max"] for r in mlp["sweep"])
    worst = next(h for h in headline if h["metric"].startswith("mlp-digits accuracy at sigma 0.5: worst"))
    assert worst["ours"] == pytest.approx(mlp["sweep"][-1]["min"], rel=1e-3)
    assert worst["baseline"] == pytest.approx(mlp["digital_accuracy"], rel=1e-3)
    for name in ("crossbar.md", "crossbar_accuracy.png", "crossbar_cost.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert record["seed"] == 0 and record["versions"]["torch"] and record["data"]["mlp-digits"]
