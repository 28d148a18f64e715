"""`frugalnn reproduce basisn --quick` end to end, in a still smaller form; a rerun resumes from runs/."""

import json

from frugalnn.experiments.basisn.protocol import COLUMNS, run_protocol

SMALL = {"steps": 20, "test_images": 500, "analog_images": 100, "draws": 1, "progress": False}


def test_quick_experiment_end_to_end(tmp_path):
    headline = run_protocol(tmp_path, quick=True, seed=0, **SMALL)
    for name in ("basisn.json", "basisn.md", "basisn_edp.png", "basisn_cycles.png", "basisn_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 0
    record = json.loads((tmp_path / "basisn.json").read_text())
    rows = record["results"]["rows"]
    assert [r["crossbars"] for r in rows] == [1, 4]
    for row in rows:
        assert set(COLUMNS) <= set(row)
        assert row["crossbars_used"] <= row["crossbars"] and row["n_basis"] == 64
        assert row["cycles"] < row["cycles_reprogram"] and row["edp"] < row["edp_reprogram"]
        assert 0.1 < row["acc"] <= 1 and 0.1 < row["acc_float"] <= 1
    assert record["seed"] == 0 and record["data"]["sha256"] and record["versions"]["torch"]
    assert {h["metric"].split(":")[0] for h in headline} == {"lenet5 4-bit", "lenet5"}
    # resumable: the trained runs are read back, not recomputed
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["lenet5-b4-n64-s0.json", "lenet5-plain-s0.json"]
    assert run_protocol(tmp_path, quick=True, seed=0, **SMALL) == headline
