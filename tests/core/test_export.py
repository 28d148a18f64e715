"""``frugalnn export`` and core.export: each format runs in its own runtime and agrees with PyTorch on
real images, for a trained, a pruned and an early-exit checkpoint; bad input is one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from frugalnn.cli import main
from frugalnn.core.checkpoint import save_checkpoint
from frugalnn.core.data import load_digits
from frugalnn.core.export import FORMATS, export_model, run_exported
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.methods.class_pruning import prune_channels, save_pruned
from frugalnn.methods.early_exit import EarlyExitConfig, attach_exits, save_early_exit

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "torch.export": ".pt2"}


def _spec() -> ModelSpec:
    return ModelSpec("resnet20", image_size=8)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    spec = _spec()
    dense = build_model(spec).eval()
    save_checkpoint(root / "dense", dense, spec)
    pruned = build_model(spec).eval()
    prune_channels(pruned, torch.zeros(1, 1, 8, 8), {"stem.0": [0, 1, 2, 3]})
    save_pruned(root / "pruned", pruned, spec)
    ee, _ = attach_exits(build_model(spec).eval(), EarlyExitConfig(input_shape=(1, 8, 8), mode="hybrid"))
    save_early_exit(root / "ee", ee, spec)
    return root


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_matches_pytorch_on_real_images(fmt, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(_spec()).eval()
    x = load_digits().x_test[:32]
    path = export_model(model, x[:2], fmt, tmp_path / f"m{SUFFIX[fmt]}")
    (got,) = run_exported(path, fmt, x)  # a batch size other than the traced one: dynamic batch
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temp file left


@pytest.mark.parametrize(
    ("kind", "fmt"), [("dense", "onnx"), ("pruned", "torch.export"), ("ee", "torchscript")]
)
def test_cli_exports_and_checks(checkpoints, tmp_path, capsys, kind, fmt) -> None:
    out = tmp_path / f"model{SUFFIX[fmt]}"
    args = ["export", "--model", str(checkpoints / kind), "--format", fmt, "--out", str(out)]
    assert main([*args, "--data", "digits", "--check-images", "64"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images_checked"] == 64 and report["max_abs_difference"] <= 1e-3
    if kind == "ee":
        rule = json.loads((tmp_path / f"{out.name}.exits.json").read_text())
        assert rule["mode"] == "hybrid" and len(rule["outputs"]) == 1 + len(rule["betas"])
        outs = run_exported(out, fmt, load_digits().x_test[:4])
        assert len(outs) == len(rule["outputs"]) and outs[1].shape == (4, 20)  # two heads of 10 classes


def test_cli_bad_input(checkpoints, tmp_path, capsys) -> None:
    model = str(checkpoints / "dense")
    cases = [
        (["--format", "torch.export", "--out", str(tmp_path / "m.onnx")], "writes a .pt2 archive"),
        (["--format", "onnx", "--out", str(tmp_path)], "must be a file path"),
        (
            ["--format", "onnx", "--out", str(tmp_path / "a.onnx"), "--tolerance", "-1"],
            "--tolerance must be positive",
        ),
    ]
    for extra, message in cases:
        assert main(["export", "--model", model, "--data", "digits", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    (tmp_path / "taken.onnx").write_text("mine")
    assert main(["export", "--model", model, "--format", "onnx", "--out", str(tmp_path / "taken.onnx")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "taken.onnx").read_text() == "mine"
    assert main(["export", "--model", model, "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 2
    assert "takes 1x8x8 images, fashion-mnist has 1x28x28" in capsys.readouterr().err
