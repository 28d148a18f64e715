"""`frugalnn prune` end to end on digits (tiny budget) and its bad-input errors (exit 2, one line)."""

from __future__ import annotations

import pytest
import torch

from frugalnn.cli import main
from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
from frugalnn.core.measure import count_macs
from frugalnn.core.models import ModelSpec, build_model


def _checkpoint(path, num_classes: int = 10, image_size: int = 8):
    spec = ModelSpec("resnet20", num_classes=num_classes, image_size=image_size)
    torch.manual_seed(0)
    model = build_model(spec)
    save_checkpoint(path, model, spec)
    return model


def test_prune_command_writes_a_loadable_thinner_checkpoint(tmp_path, capsys) -> None:
    dense = _checkpoint(tmp_path / "dense")
    out = tmp_path / "pruned"
    args = ["prune", "--method", "taylor", "--model", str(tmp_path / "dense"), "--data", "digits"]
    args += ["--target-flops", "0.5", "--iterations", "1", "--pretrain-steps", "0", "--finetune-steps", "1"]
    args += ["--distill-weight", "0.5"]
    assert main([*args, "--final-steps", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "--target-flops is deprecated; use --ratio" in captured.err
    assert "| layer3.2.conv2 | Conv2d |" in printed and "MACs after" in printed
    model, spec, meta = load_checkpoint(out)
    x = torch.zeros(1, 1, 8, 8)
    assert count_macs(model, x) == meta["prune"]["macs"] <= 0.5 * count_macs(dense, x)
    assert (out / "layers.md").exists() and (out / "prune_record.json").exists()
    assert meta["prune"]["config"]["distill_weight"] == 0.5 and meta["prune"]["config"]["ratio"] == 0.5


def test_prune_command_ratio_is_the_share_removed(tmp_path, capsys) -> None:
    dense = _checkpoint(tmp_path / "dense")
    args = [
        "prune",
        "--method",
        "l1",
        "--model",
        str(tmp_path / "dense"),
        "--data",
        "digits",
        "--ratio",
        "0.7",
    ]
    args += ["--iterations", "1", "--pretrain-steps", "0", "--finetune-steps", "1", "--final-steps", "1"]
    assert main([*args, "--out", str(tmp_path / "p")]) == 0
    model, _, meta = load_checkpoint(tmp_path / "p")
    x = torch.zeros(1, 1, 8, 8)
    assert count_macs(model, x) <= 0.3 * count_macs(dense, x) and meta["prune"]["config"]["ratio"] == 0.7
    capsys.readouterr()
    both = [*args, "--target-flops", "0.3", "--out", str(tmp_path / "q")]
    assert main(both) == 2 and "not both" in capsys.readouterr().err


def test_prune_command_bad_input(tmp_path, capsys) -> None:
    _checkpoint(tmp_path / "three", num_classes=3)
    code = main(
        ["prune", "--model", str(tmp_path / "three"), "--data", "digits", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "3 classes" in err and "digits has 1x8x8 and 10" in err
    assert not (tmp_path / "o").exists()
    _checkpoint(tmp_path / "sixteen", image_size=16)  # same channels and classes, another image size
    code = main(
        ["prune", "--model", str(tmp_path / "sixteen"), "--data", "digits", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "expects 1x16x16 images" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exc:
        main(["prune", "--model", "resnet20", "--target-flops", "1.2", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "strictly between 0 and 1" in capsys.readouterr().err
    assert main(["prune", "--model", "resnet20", "--ratio", "1.2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --ratio must be in (0.0, 1.0)") and len(err.strip().splitlines()) == 1
    assert main(["prune", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a checkpoint folder nor a zoo name" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_prune_command_refuses_a_gpu_it_does_not_have(tmp_path, capsys) -> None:
    _checkpoint(tmp_path / "dense")
    args = ["prune", "--model", str(tmp_path / "dense"), "--data", "digits", "--device", "cuda"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "sees no CUDA GPU" in err and "use cpu" in err and len(err.strip().splitlines()) == 1
    assert main([*args[:-1], "tpu", "--out", str(tmp_path / "o")]) == 2
    assert "'tpu' is unknown; use cpu, cuda" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
