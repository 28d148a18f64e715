import json
import subprocess
import sys

import pytest

from frugalnn.cli import main


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bits", "9"], "--bits"),
        (["--bits", "1"], "--bits"),
        (["--threshold", "0"], "--threshold"),
        (["--threshold", "1.5"], "--threshold"),
    ],
)
def test_search_bad_input_is_one_line_exit_2(args, needle, tmp_path, capsys):
    code, out = run_cli(["encoding", "search", *args, "--out", str(tmp_path / "e")], capsys)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_search_writes_a_checkable_encoder(tmp_path, capsys):
    out = tmp_path / "enc"
    code, _ = run_cli(["encoding", "search", "--bits", "3", "--threshold", "0.3", "--kept-bits", "8",
                       "--outputs", "16", "--rows", "24", "--generations", "3", "--out", str(out), "--no-progress"], capsys)  # fmt: skip
    assert code == 0
    data = json.loads((out / "encoder.json").read_text())
    assert data["bits"] == 3 and len(data["lut"]) == 8 and len(data["lut"][0]) == 8
    assert len(data["kept"]) == len(data["weights"]) == 8 and data["gates"]


def test_apply_rejects_a_corrupt_encoder(tmp_path, capsys):
    (tmp_path / "encoder.json").write_text("{not json")
    code, out = run_cli(["encoding", "apply", "--model", "lenet5", "--encoder", str(tmp_path), "--out",
                         str(tmp_path / "o")], capsys)  # fmt: skip
    assert code == 2 and "not valid JSON" in out.err and len(out.err.strip().splitlines()) == 1


def test_apply_then_eval_loads_the_checkpoint(enc4, tmp_path):
    import torch

    from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
    from frugalnn.core.data import load_digits
    from frugalnn.core.measure import accuracy
    from frugalnn.core.models import ModelSpec, build_model

    data = load_digits()
    spec = ModelSpec("mlp", data.num_classes, data.in_channels, data.image_size)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "plain", build_model(spec), spec)
    enc4.save(tmp_path / "enc")
    cli = [sys.executable, "-m", "frugalnn.cli"]
    ck = tmp_path / "ck"
    r = subprocess.run([*cli, "encoding", "apply", "--model", str(tmp_path / "plain"), "--encoder", str(tmp_path / "enc"),
                        "--data", "digits", "--max-steps", "2", "--batch-size", "32", "--out", str(ck), "--no-progress"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    meta = json.loads((ck / "checkpoint.json").read_text())
    assert meta["transforms"][0]["name"] == "encodingnet"
    assert meta["transforms"][0]["config"]["encoder"]["lut"] == enc4.lut.tolist()
    r = subprocess.run([*cli, "eval", "--model", str(ck), "--data", "digits"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    model, _, _ = load_checkpoint(ck)
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(accuracy(model, data.x_test, data.y_test))
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(meta["encodingnet"]["acc"])
