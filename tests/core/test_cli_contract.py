"""The CLI contract: every sub-command, every option, generated bad values -> exit 2, one line on
stderr naming the problem, no traceback, nothing at --out (frugalnn.core.contract holds the table)."""

import subprocess
import sys
from collections import Counter

import pytest

from frugalnn.core import contract


@pytest.fixture(scope="module")
def paths(tmp_path_factory, smol_tokenizer, pytestconfig):
    import importlib.util

    # tests/conftest.py's writer (several conftest modules exist, so load that one by path)
    spec = importlib.util.spec_from_file_location(
        "root_conftest", pytestconfig.rootpath / "tests" / "conftest.py"
    )
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    root = tmp_path_factory.mktemp("contract")
    llm = root_conftest._write_tiny_llama(root / "tiny-llama", smol_tokenizer, layers=1)
    return contract.make_fixtures(root / "fixtures", llm)


def test_every_command_has_a_base_invocation():
    """A command added later fails here until it registers a valid invocation in contract.BASE."""
    found = set(contract.commands())
    assert found - set(contract.BASE) == set(), "add these commands to frugalnn.core.contract.BASE"
    assert set(contract.BASE) - found == set(), "BASE names commands that no longer exist"


@pytest.mark.parametrize("command", sorted(contract.BASE))
def test_bad_inputs_are_one_clear_line(command, paths, tmp_path):
    parser = contract.commands()[command]
    cases = contract.cases(command, parser, per_option=2)  # the bench runs every value of every kind
    assert cases
    outcomes = [contract.run_case(case, paths, tmp_path, timeout_s=20) for case in cases]
    bad = [
        f"{o.status}: frugalnn {' '.join(o.case.argv)} -> exit {o.code}, {o.stderr[-200:]!r} {o.notes}"
        for o in outcomes
        if o.status != "clean"
    ]
    assert not bad, "\n".join(bad)
    assert Counter(o.status for o in outcomes)["clean"] == len(cases)


def test_the_real_entry_point_keeps_the_contract(tmp_path):
    """Two cases through a fresh interpreter: the exit status and stderr a shell sees."""
    for argv in (
        ["train", "--model", "mlp", "--lr", "nan", "--out", str(tmp_path / "o")],
        ["llm", "compress", "--ratio", "0.2", "--out", str(tmp_path / "o"), "--threads", "0"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "frugalnn.cli", *argv], capture_output=True, text=True, timeout=120
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()


def test_out_rules_empty_folder_accepted_full_needs_overwrite(tmp_path, capsys):
    from frugalnn.cli import main

    out = tmp_path / "empty"
    out.mkdir()
    base = ["logic", "train", "--data", "digits", "--epochs", "0", "--qat-epochs", "0", "--out", str(out)]
    assert main(base) == 0 and (out / "logic_model.json").exists()
    assert main(base) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*base, "--overwrite"]) == 0


def test_atomic_output_dir_empty_folder_and_leftovers(tmp_path):
    from frugalnn.core.io import atomic_output_dir

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / ".out.abc.partial").mkdir()  # what a killed run leaves
    (tmp_path / ".out.abc.partial" / "half.bin").write_bytes(b"x")
    (tmp_path / ".out.old").mkdir()
    with atomic_output_dir(out) as tmp:  # an empty folder needs no overwrite
        (tmp / "done.txt").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "done.txt").read_text() == "ok"
