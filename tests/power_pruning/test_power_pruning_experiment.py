"""The experiment end to end in a still smaller form than --quick (one K, few steps, short streams)."""

from __future__ import annotations

import json

from frugalnn.experiments import get


def test_experiment_smallest_form_writes_table_plots_and_headline(tmp_path):
    run = get("power-pruning").fn
    small = {"transitions": 1024, "timed_transitions": 64, "delay_transitions": 256, "stream_sites": 8}
    small |= {"stats_images": 32, "finetune_steps": 10, "test_images": 500, "calibration_images": 256}
    heads = run(tmp_path, True, 0, keeps=[16], delay_steps=[True], crosscheck_sites=4, **small)
    for name in ("power_pruning.json", "power_pruning.md", "power_vs_accuracy.png", "weight_histogram.png"):
        assert (tmp_path / name).is_file(), name
    record = json.loads((tmp_path / "power_pruning.json").read_text())
    rows = record["results"]["rows"]
    assert {r["voltage_scaling"] for r in rows} == {False, True}
    for key in ("model", "keep", "delay_step", "vdd", "power_reduction", "acc", "acc_loss_pt"):
        assert key in rows[0]
    scaled = [r for r in rows if r["voltage_scaling"]][0]
    assert scaled["vdd"] < 1.8 and scaled["power_reduction"] > rows[0]["power_reduction"]
    assert {h["metric"].split(":")[0] for h in heads} >= {"lenet5"}
    assert all(set(h) == {"metric", "ours", "baseline", "target", "met"} for h in heads)
    # resumable: the finished run is saved and a restart returns it instead of running again
    from frugalnn.experiments.power_pruning.protocol import _run_one, settings

    saved = tmp_path / "runs" / "lenet5_k16_delay.json"
    assert saved.is_file()
    again = _run_one("lenet5", 16, True, settings(True, 0, **small), tmp_path, data=None)
    assert again == json.loads(saved.read_text())
    # a longer-retraining run is a run of its own beside the sweep's (the sweep's run is not redone)
    longer = {"lenet5": {"keeps": [16], "finetune_steps": 12}}
    run(tmp_path, True, 0, keeps=[16], delay_steps=[True], crosscheck_sites=4, longer=longer, **small)
    rows = json.loads((tmp_path / "power_pruning.json").read_text())["results"]["rows"]
    assert sorted({r["retrain_steps"] for r in rows}) == [10, 12]
    assert (tmp_path / "runs" / "lenet5_k16_delay_steps12.json").is_file()
    assert json.loads(saved.read_text()) == again
