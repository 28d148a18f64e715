"""``frugalnn crossbar eval`` and ``frugalnn correctnet ...`` end to end (small settings), bad input."""

import json

import pytest
import torch
from torch import nn

from frugalnn.cli import main
from frugalnn.core.checkpoint import save_checkpoint
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import UnsupportedModelError
from frugalnn.hw.crossbar import CrossbarConfig
from frugalnn.hw.crossbar_mc import monte_carlo_accuracy
from frugalnn.methods.correctnet import CorrectNetConfig, insert_compensation, transform_entry


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_crossbar_eval_on_compensated_checkpoint(tmp_path, capsys):
    spec = ModelSpec("lenet5", 10, 1, 28)
    model = insert_compensation(build_model(spec), ["classifier.3"], 2)
    save_checkpoint(
        tmp_path / "ck", model, spec, {"transforms": [transform_entry(model, CorrectNetConfig(comp_rank=2))]}
    )
    out = tmp_path / "r.json"
    code = main(["crossbar", "eval", "--model", str(tmp_path / "ck"), "--sigma", "0.3", "--draws", "3",
                 "--images", "40", "--json", str(out)])  # fmt: skip
    assert code == 0
    res = json.loads(out.read_text())
    assert len(res["per_draw"]) == 3 and res["worst"] <= res["p5"] <= res["mean"]
    assert (
        main(["correctnet", "eval", "--model", str(tmp_path / "ck"), "--draws", "2", "--images", "20"]) == 0
    )


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["crossbar", "eval", "--model", "lenet5", "--sigma", "-0.1"], "--sigma"),
        (["crossbar", "eval", "--model", "lenet5", "--draws", "0"], "--draws"),
        (["crossbar", "eval", "--model", "lenet5", "--adc-bits", "0"], "--adc-bits"),
        (
            [
                "correctnet",
                "train",
                "--model",
                "lenet5",
                "--placement",
                "given",
                "--layers",
                "nope",
                "--out",
                "x",
            ],
            "nope",
        ),
        (["correctnet", "train", "--model", "lenet5", "--sigma", "-1", "--out", "x"], "--sigma"),
    ],
)
def test_cli_bad_input_exit_2_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    _one_line_error(capsys, needle)


def test_model_without_mappable_layer_is_refused():
    with pytest.raises(UnsupportedModelError, match="analog layers"):
        monte_carlo_accuracy(
            nn.Sequential(nn.Flatten()), torch.zeros(2, 3), torch.zeros(2), 2, CrossbarConfig()
        )
