"""Head training on real data (sklearn digits, 8x8) and the ``frugalnn early-exit`` commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from frugalnn.cli import main
from frugalnn.core.checkpoint import save_checkpoint, transform_config
from frugalnn.core.data import load_image_data
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.core.train import TrainConfig, train
from frugalnn.methods.early_exit import Config, attach_exits, load_early_exit, train_heads, train_joint


def trained_digits_vgg():
    data = load_image_data("digits")
    spec = ModelSpec("vgg-small", 10, 1, 8, {"stages": [8, 16, 16]})
    torch.manual_seed(0)
    model = build_model(spec)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, augment=False)
    train(model, data, cfg, progress=False, evaluate_test=False)
    return model.eval(), spec, data


def test_heads_learn_on_frozen_backbone_and_loss_falls():
    model, _, data = trained_digits_vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for mode in ("exclusion", "confidence"):
        ee, _ = attach_exits(
            model, Config(mode=mode, input_shape=(1, 8, 8), head_pool=2, head_epochs=20, head_batch_size=64)
        )
        out = train_heads(ee, data, progress=False)
        losses = [h["loss"] for h in out["history"]]
        assert losses[-1] < 0.7 * losses[0]
        assert min(out["head_val_accuracy"]) > 0.3  # ten classes: chance is 0.1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the backbone stayed frozen


def test_cli_train_search_eval(tmp_path, capsys):
    model, spec, _ = trained_digits_vgg()
    save_checkpoint(tmp_path / "base", model, spec)
    ee_dir = tmp_path / "ee"
    args = ["--data", "digits", "--threads", "1"]
    assert (
        main(
            [
                "early-exit",
                "train",
                "--model",
                str(tmp_path / "base"),
                "--out",
                str(ee_dir),
                "--epochs",
                "5",
                "--head-pool",
                "2",
                *args,
            ]
        )
        == 0
    )
    assert main(["early-exit", "search", "--model", str(ee_dir), "--tolerance", "0.02", *args]) == 0
    meta = json.loads((ee_dir / "checkpoint.json").read_text())
    assert meta["search"]["tolerance"] == 0.02 and len(transform_config(meta, "early_exit")["betas"]) == 2
    capsys.readouterr()
    assert main(["early-exit", "eval", "--model", str(ee_dir), "--json", *args]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["exit_histogram"]) == {"blocks.0", "blocks.1", "final"}
    assert sum(result["exit_histogram"].values()) == 300  # the digits test split
    assert main(["early-exit", "eval", "--model", str(ee_dir), "--throughput", *args]) == 0
    text = capsys.readouterr().out
    assert "MACs per image (heads included)" in text and "images/s skipping" in text
    loaded, _, _ = load_early_exit(ee_dir)
    assert loaded.betas.tolist() == pytest.approx(transform_config(meta, "early_exit")["betas"])
    # bad input: exit position that does not exist, plain checkpoint given to search
    assert (
        main(
            [
                "early-exit",
                "train",
                "--model",
                str(tmp_path / "base"),
                "--out",
                str(tmp_path / "x"),
                "--exits",
                "blocks.9",
                *args,
            ]
        )
        == 2
    )
    assert main(["early-exit", "search", "--model", str(tmp_path / "base"), *args]) == 2
    assert "exit position 'blocks.9' does not exist" in capsys.readouterr().err


def test_joint_fine_tuning_trains_backbone_and_heads():
    model, _, data = trained_digits_vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ee, _ = attach_exits(model, Config(input_shape=(1, 8, 8), head_pool=2, joint_epochs=2, joint_lr=0.01))
    heads_before = [h.fc.weight.clone() for h in ee.heads]
    result = train_joint(ee, data, progress=False)
    assert len(result.history) == 2 and all(np.isfinite(h["train_loss"]) for h in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert not torch.equal(before["blocks.0.0.weight"], model.state_dict()["blocks.0.0.weight"])
    assert all(not torch.equal(a, h.fc.weight) for a, h in zip(heads_before, ee.heads))
    assert result.val_accuracy > 0.5  # the skipping forward (β = 0) is the final classifier here


def test_cli_hybrid_mode_searches_beta_and_tau(tmp_path, capsys):
    model, spec, _ = trained_digits_vgg()
    save_checkpoint(tmp_path / "base", model, spec)
    ee_dir = tmp_path / "hy"
    args = ["--data", "digits", "--threads", "1"]
    train_args = ["--out", str(ee_dir), "--epochs", "5", "--head-pool", "2", "--mode", "hybrid"]
    assert main(["early-exit", "train", "--model", str(tmp_path / "base"), *train_args, *args]) == 0
    assert main(["early-exit", "search", "--model", str(ee_dir), "--tolerance", "0.02", *args]) == 0
    out = capsys.readouterr().out
    assert "tau per exit" in out
    meta = json.loads((ee_dir / "checkpoint.json").read_text())
    assert len(meta["search"]["taus"]) == 2 and transform_config(meta, "early_exit")["mode"] == "hybrid"
    assert main(["early-exit", "eval", "--model", str(ee_dir), "--throughput", "--rebatch", *args]) == 0
    assert "images/s skipping" in capsys.readouterr().out
    loaded, _, _ = load_early_exit(ee_dir)
    assert loaded.thresholds.tolist() == pytest.approx(transform_config(meta, "early_exit")["thresholds"])


def test_cli_search_drop_costly_exits_keeps_a_subset_of_the_plain_setting(tmp_path, capsys):
    """--drop-costly-exits: every exit keeps the plain search's (β, τ) or is switched off, and the
    validation accuracy stays within the tolerance (timing decides which go, so only that is fixed)."""
    model, spec, _ = trained_digits_vgg()
    save_checkpoint(tmp_path / "base", model, spec)
    args = ["--data", "digits", "--threads", "1"]
    train_args = ["--epochs", "5", "--head-pool", "2", "--mode", "hybrid"]
    base = str(tmp_path / "base")
    assert (
        main(["early-exit", "train", "--model", base, "--out", str(tmp_path / "hy"), *train_args, *args]) == 0
    )
    search = ["early-exit", "search", "--model", str(tmp_path / "hy"), "--tolerance", "0.02", *args]
    assert main([*search, "--out", str(tmp_path / "plain")]) == 0
    assert main([*search, "--out", str(tmp_path / "lean"), "--drop-costly-exits"]) == 0
    capsys.readouterr()
    plain = transform_config(json.loads((tmp_path / "plain" / "checkpoint.json").read_text()), "early_exit")
    lean_meta = json.loads((tmp_path / "lean" / "checkpoint.json").read_text())
    lean = transform_config(lean_meta, "early_exit")
    assert lean_meta["search"]["drop_costly_exits"] is True
    for i in range(2):
        kept = (lean["betas"][i], lean["thresholds"][i]) == (plain["betas"][i], plain["thresholds"][i])
        assert kept or (lean["betas"][i], lean["thresholds"][i]) == (0.0, 1.0)
    data = load_image_data("digits")
    ee = load_early_exit(tmp_path / "lean")[0].eval()
    base_acc = float((ee.backbone(data.x_val).argmax(1) == data.y_val).double().mean())
    assert lean_meta["search"]["val_accuracy"] >= base_acc - 0.02 - 1e-9
