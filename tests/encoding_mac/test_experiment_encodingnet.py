import json

from frugalnn.experiments.encodingnet import run


def test_quick_experiment_end_to_end_small(tmp_path):
    """The --quick protocol with a still smaller sweep: one threshold, few images, short stream."""
    head = run(
        tmp_path, True, 0,
        sweep=((0.2, 12, 5),), main=0.2, vectors=128,
        finetune={"lenet5": {"finetune_epochs": 1.0, "max_steps": 2, "eval_images": 200}},
        search={"outputs": 32, "rows": 64, "mutation_start": 0.05, "mutation_end": 0.01},
    )  # fmt: skip
    rec = json.loads((tmp_path / "encodingnet_quick.json").read_text())
    row = rec["results"]["rows"][0]
    for key in ("model", "bits", "threshold", "max_re", "area_encoded", "area_multiplier", "energy_encoded_pj",
                "energy_multiplier_pj", "acc", "acc_exact"):  # fmt: skip
        assert key in row
    assert row["bits"] == 4 and row["max_re"] <= 0.2
    assert (tmp_path / "encodingnet_quick.md").is_file() and (tmp_path / "encodingnet_quick.png").is_file()
    assert (tmp_path / "search4" / "th0.2" / "encoder.json").is_file()
    assert {h["metric"] for h in head} >= {"MAC area saving", "MAC energy/op saving", "lenet5 accuracy"}
