import json

import pytest

from frugalnn.experiments.encodingnet import protocol, run


def _run_small(out, finetune_steps=2):
    """The --quick protocol with a still smaller sweep: one threshold, few images, short stream."""
    return run(
        out, True, 0,
        sweep=((0.2, 12, 5),), main=0.2, vectors=128,
        finetune={"lenet5": {"finetune_epochs": 1.0, "max_steps": finetune_steps, "eval_images": 200}},
        search={"outputs": 32, "rows": 64, "mutation_start": 0.05, "mutation_end": 0.01},
    )  # fmt: skip


def test_quick_experiment_end_to_end_small(tmp_path, monkeypatch):
    """The --quick protocol with a still smaller sweep: one threshold, few images, short stream."""
    head = _run_small(tmp_path)
    rec = json.loads((tmp_path / "encodingnet_quick.json").read_text())
    row = rec["results"]["rows"][0]
    for key in ("model", "bits", "threshold", "max_re", "area_encoded", "area_multiplier", "energy_encoded_pj",
                "energy_multiplier_pj", "acc", "acc_exact"):  # fmt: skip
        assert key in row
    assert row["bits"] == 4 and row["max_re"] <= 0.2
    assert (tmp_path / "encodingnet_quick.md").is_file() and (tmp_path / "encodingnet_quick.png").is_file()
    assert (tmp_path / "search4" / "th0.2" / "encoder.json").is_file()
    assert {h["metric"] for h in head} >= {"MAC area saving", "MAC energy/op saving", "lenet5 accuracy"}

    # a rerun with the same settings measures nothing again: rows, exact accuracy and hardware come back
    # from encodingnet_quick_state.json (a network run would fail here)
    def no_training(*args, **kwargs):
        raise AssertionError("the rerun trained a network")

    monkeypatch.setattr(protocol, "_apply", no_training)
    again = _run_small(tmp_path)

    def measured(heads):  # the search's evaluations/s is timed afresh when it reloads its checkpoint
        return [h for h in heads if h["metric"] != "fitness evaluations/s"]

    assert measured(again) == measured(head)
    assert json.loads((tmp_path / "encodingnet_quick.json").read_text())["results"]["rows"] == [row]
    with pytest.raises(AssertionError, match="trained"):  # other fine-tuning settings: measured anew
        _run_small(tmp_path, finetune_steps=3)
