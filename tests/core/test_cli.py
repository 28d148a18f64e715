import subprocess
import sys

import pytest
import torch

from frugalnn.cli import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "frugalnn.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--model", "alexnet", "--data", "digits", "--out", "OUT"], "unknown model"),
        (["train", "--model", "mlp", "--data", "nope", "--out", "OUT"], "unknown data set"),
        (["train", "--model", "mlp", "--epochs", "-2", "--out", "OUT"], "must be 0 or more"),
        (["train", "--model", "mlp", "--batch-size", "0", "--out", "OUT"], "positive"),
        (["eval", "--model", "does/not/exist"], "neither a checkpoint folder nor a zoo name"),
        (["reproduce", "no-such-experiment"], "unknown experiment"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, needle):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists(), "no partial output after bad input"


def test_train_eval_info_end_to_end(tmp_path, capsys):
    out = tmp_path / "mlp"
    assert (
        main(
            [
                "train",
                "--model",
                "mlp",
                "--data",
                "digits",
                "--epochs",
                "2",
                "--no-augment",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "model.safetensors").exists() and (out / "checkpoint.json").exists()
    assert main(["eval", "--model", str(out), "--data", "digits"]) == 0
    printed = capsys.readouterr().out
    assert '"accuracy"' in printed
    assert main(["info", "resnet20"]) == 0
    assert "31,021,952 MACs" in capsys.readouterr().out
    proc = run_cli("eval", "--model", str(out), "--data", "fashion-mnist")
    assert proc.returncode == 2 and "evaluate on the data it was trained on" in proc.stderr


def test_help_everywhere():
    for sub in ([], ["train"], ["eval"], ["info"], ["reproduce"], ["zoo"]):
        proc = run_cli(*sub, "--help")
        assert proc.returncode == 0 and "usage" in proc.stdout


def test_help_lists_commands_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from frugalnn.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TORCH")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line[4] != " "]
    assert listed[:5] == ["train", "eval", "info", "zoo", "reproduce"]


def test_command_table_read_from_source_matches_what_modules_register() -> None:
    import argparse
    import importlib

    from frugalnn.cli import command_table

    table, opaque = command_table()
    assert not opaque  # every module's commands can be listed without importing it
    for module in {m for m, _ in table.values()}:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"frugalnn.commands.{module}").register(sub)
        assert set(sub.choices) == {n for n, (m, _) in table.items() if m == module}


def test_train_twice_with_one_seed_gives_bit_identical_weights(tmp_path):
    from frugalnn.cli import main
    from frugalnn.core.checkpoint import load_tensors

    args = [
        "train",
        "--model",
        "mlp",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--seed",
        "3",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = (
        load_tensors(tmp_path / "a" / "model.safetensors"),
        load_tensors(tmp_path / "b" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
