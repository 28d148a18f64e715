"""`frugalnn train --quadratic ...` -> eval / info load the swapped model; bad flags are one line, exit 2;
the experiment's protocol end to end on a tiny schedule (resumes from its runs.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from frugalnn.cli import main
from frugalnn.core.checkpoint import read_meta


def test_train_quadratic_then_eval_and_info(tmp_path, capsys):
    out = tmp_path / "q"
    args = ["train", "--model", "mlp", "--data", "digits", "--epochs", "1", "--batch-size", "64",
            "--quadratic", "efficient", "--quadratic-rank", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    meta = read_meta(out)
    assert meta["transforms"][0]["name"] == "quadratic"
    assert meta["transforms"][0]["config"]["include"] == ["net.1", "net.3", "net.5"]
    capsys.readouterr()
    assert main(["eval", "--model", str(out), "--data", "digits"]) == 0
    result = json.loads(capsys.readouterr().out)
    # 64-256-128-10 MLP with rank-2 projections: linear MACs + 2n + 2 + 2m per layer
    linear = 64 * 256 + 256 * 128 + 128 * 10
    extra = sum(2 * n + 2 + 2 * m for n, m in ((64, 256), (256, 128), (128, 10)))
    assert result["macs_per_image"] == linear + extra
    assert result["accuracy"] == pytest.approx(meta["result"]["test_accuracy"])  # the same model came back
    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "QuadraticLinear" in table and f"{linear + extra:,} MACs" in table


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--quadratic", "cubic"], "--quadratic must be one of"),
        (["--quadratic", "efficient", "--quadratic-rank", "0"], "--quadratic-rank must be >= 1"),
        (["--quadratic", "efficient", "--quadratic-rank", "100"], "--quadratic-rank must be at most"),
        (["--quadratic", "square", "--quadratic-layers", "conv"], "no layer of the model matches"),
    ],
)
def test_bad_quadratic_flags_are_one_line_exit_2(tmp_path, capsys, flags, needle):
    out = tmp_path / "out"
    code = main(["train", "--model", "mlp", "--data", "digits", "--out", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_flag_exit_code_from_the_shell(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "frugalnn.cli", "train", "--model", "mlp", "--data", "digits",
         "--out", str(tmp_path / "o"), "--quadratic", "efficient", "--quadratic-rank", "65"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "'net.1' has 64" in proc.stderr and "Traceback" not in proc.stderr


def test_experiment_protocol_end_to_end_and_resume(tmp_path):
    from frugalnn.experiments.quadratic import run

    tiny = {"epochs": 1, "max_steps_per_epoch": 2}
    heads = run(tmp_path, True, 0, seeds=1, forms=("linear", "efficient", "square"), train=tiny)
    assert {h["metric"].split(":")[0] for h in heads} == {"lenet5"}
    record = json.loads((tmp_path / "quadratic-quick.json").read_text())
    rows = {r["form"]: r for r in record["results"]["rows"]}
    for key in ("model", "form", "params", "macs", "acc_mean", "acc_std", "seeds", "train_img_s"):
        assert key in rows["efficient"]
    assert rows["efficient"]["params"] - rows["linear"]["params"] == (400 + 120) + (120 + 84) + (84 + 10)
    # square narrows its hidden layers to meet the efficient budget within 3 %
    assert abs(rows["square"]["params"] / rows["efficient"]["params"] - 1) < 0.03
    assert (tmp_path / "quadratic-quick.png").exists() and (tmp_path / "quadratic-quick.md").exists()
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    run(tmp_path, True, 0, seeds=1, forms=("linear", "efficient", "square"), train=tiny)
    assert (tmp_path / "runs.jsonl").read_text().splitlines() == lines  # every run was already there
