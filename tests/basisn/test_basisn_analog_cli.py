"""Analog evaluation through the crossbar simulator, and the CLI (train -> eval -> frugalnn eval)."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.hw.crossbar import CrossbarConfig
from frugalnn.methods.basisn import BasisNConfig
from frugalnn.methods.basisn.analog import analog_accuracy, on_crossbars


def _basis_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    cfg = BasisNConfig(crossbars=1, crossbar_size=16, n_basis=8, coef_bits=4, group_size=4, steps=0)
    return frugalnn.apply(net, cfg)[0].eval()


def test_ideal_crossbar_equals_the_digital_basis_network():
    model = _basis_net()
    x = torch.randn(4, 2, 5, 5)
    with torch.no_grad():
        ref = model(x)
        with on_crossbars(model, CrossbarConfig.ideal(rows=16, cols=16), torch.Generator().manual_seed(0)):
            out = model(x)
        back = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(back, ref)  # the hooks are gone afterwards


def test_variation_perturbs_and_monte_carlo_is_reproducible():
    model = _basis_net()
    x = torch.randn(64, 2, 5, 5)
    with torch.no_grad():
        y = model(x).argmax(1)
        with on_crossbars(
            model, CrossbarConfig(rows=16, cols=16, variation_sigma=0.5), torch.Generator().manual_seed(1)
        ):
            noisy = model(x)
    assert not torch.allclose(noisy, model(x), atol=1e-3)
    cfg = CrossbarConfig(rows=16, cols=16, variation_sigma=0.3)
    a, b = (
        analog_accuracy(model, x, y, cfg, draws=3, seed=5),
        analog_accuracy(model, x, y, cfg, draws=3, seed=5),
    )
    assert a == b and len(a["per_draw"]) == 3 and a["min"] <= a["mean"] <= a["max"] <= 1.0


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "frugalnn.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--coef-bits", "0"], "--coef-bits must be in [1, 32], got 0"),
        (
            ["--crossbars", "1", "--n-basis", "128"],
            "--crossbars of 1 is too small even for the basis: 128 basis vectors need at least 2",
        ),
        (["--crossbars", "0"], "--crossbars must be >= 1, got 0"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, text):
    r = _cli("basisn", "train", "--model", "lenet5", "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0]


def test_cli_train_eval_and_frugalnn_eval(tmp_path):
    out = tmp_path / "ln"
    r = _cli("basisn", "train", "--model", "lenet5", "--crossbars", "1", "--crossbar-size", "64",
             "--coef-bits", "4", "--steps", "3", "--batch-size", "32", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["n_basis"] == 32 and 0 < rec["test_accuracy"] <= 1
    r = _cli(
        "basisn", "eval", "--model", str(out), "--draws", "1", "--test-images", "100", "--crossbars", "2"
    )
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["crossbars"] == 2 and ev["test_accuracy"] == pytest.approx(rec["test_accuracy"])
    assert ev["cycles"] < ev["cycles_reprogram"] and len(ev["analog"]["per_draw"]) == 1
    r = _cli("eval", "--model", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(rec["test_accuracy"])
