import contextlib
import io
import json
import subprocess

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.cli import main
from frugalnn.core.config import FieldError
from frugalnn.errors import UnsupportedModelError
from frugalnn.methods.logic_flatten import LogicFlattenConfig, LogicMLP, save_logic_mlp
from frugalnn.methods.logic_flatten.sim import simulate_design


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2))


def test_apply_on_a_hand_built_mlp_gives_a_bit_exact_design():
    x = torch.randn(300, 6)
    design, record = frugalnn.apply(_mlp(), LogicFlattenConfig(hidden=(3,)), calib=x, synthesize=False)
    assert "module top" in design.verilog and design.io["latency_cycles"] == 0
    assert record["sizes"] == [6, 3, 2] and record["hardware"] is None
    m = LogicMLP.from_module(_mlp(), 4, 4, 4).calibrate(x)
    codes = m.input_codes(x).numpy()
    sim = simulate_design(design.verilog, codes, design.io, "iverilog")
    ref = design.net.forward(codes)
    assert (sim.pred == ref["pred"]).all() and (sim.logits == ref["logits"]).all()
    # the float model's own predictions mostly survive 4-bit quantisation of this random net
    assert float((torch.from_numpy(ref["pred"]) == _mlp()(x).argmax(1)).float().mean()) > 0.6


def test_bad_inputs_raise_named_errors():
    x = torch.randn(50, 16)
    cnn = nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)
    )
    with pytest.raises(UnsupportedModelError, match="Conv2d"):
        frugalnn.apply(cnn, LogicFlattenConfig(), calib=x, synthesize=False)
    big = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 10))
    with pytest.raises(
        FieldError, match=r"max_adders is 50, but the 16-64-10 network needs \d+ two-input adders"
    ):
        frugalnn.apply(big, LogicFlattenConfig(max_adders=50), calib=x, synthesize=False)
    with pytest.raises(FieldError, match="pipeline_ns is 0.05 ns, below one register plus one cell delay"):
        frugalnn.apply(_mlp(), LogicFlattenConfig(pipeline_ns=0.05), calib=torch.randn(9, 6))
    with pytest.raises(FieldError, match="retime"):
        LogicFlattenConfig(retime="abc").validate()


def _cli(*args):
    """The CLI in-process (argument parsing, FrugalError -> one line + exit 2 included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path):
    r = _cli("logic", "export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "d"))
    assert (
        r.returncode == 2
        and "not a logic-MLP checkpoint" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )
    m = LogicMLP([64, 4, 10], 4, 4, 4).calibrate(torch.randn(100, 64))
    save_logic_mlp(m, tmp_path / "ck", {"config": LogicFlattenConfig(hidden=(4,)).to_dict()})
    r = _cli(
        "logic",
        "export",
        "--model",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "d"),
        "--pipeline-ns",
        "0.01",
    )
    assert r.returncode == 2 and "--pipeline-ns is 0.01 ns, below one register" in r.stderr
    r = _cli("logic", "verify", str(tmp_path / "d"), "--data", "digits")
    assert r.returncode == 2 and "lacks top.v" in r.stderr


def test_cli_train_export_verify_digits(tmp_path):
    ck, d = tmp_path / "ck", tmp_path / "design"
    r = _cli(
        "logic",
        "train",
        "--data",
        "digits",
        "--hidden",
        "4",
        "--epochs",
        "3",
        "--qat-epochs",
        "2",
        "--out",
        str(ck),
    )
    assert r.returncode == 0, r.stderr[-500:]
    r = _cli("logic", "export", "--model", str(ck), "--out", str(d), "--no-synth")
    assert r.returncode == 0, r.stderr[-500:]
    io = json.loads((d / "io.json").read_text())
    assert io["input"]["width"] == 64 * 4 and io["output"]["port"] == "y" and io["latency_cycles"] == 0
    r = _cli("logic", "verify", str(d), "--data", "digits", "--simulator", "iverilog", "--limit", "3000")
    assert r.returncode == 0, r.stderr[-500:]
    out = json.loads((d / "verify_iverilog.json").read_text())
    assert out["mismatches"] == 0 and out["inputs_checked"] == 3000
