"""power_prune end to end on digits with a hand-built CNN (real gate-level characterisation, short
streams), the checkpoint round trip, the CLI, and the bad-input errors."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.cli import main
from frugalnn.core.checkpoint import load_checkpoint, save_checkpoint
from frugalnn.core.config import FieldError
from frugalnn.core.data import load_digits
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import UnsupportedModelError
from frugalnn.hw.mac import CharacterizeConfig, MacConfig, characterize_mac
from frugalnn.hw.mac_report import save_characterisation
from frugalnn.methods.power_pruning import PowerPruningConfig, power_prune

FAST = {
    "energy": "zero-delay",
    "transitions": 256,
    "timed_transitions": 64,
    "delay_transitions": 256,
    "stream_sites": 4,
    "stats_images": 32,
    "calibration_images": 256,
}


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pp_cache"))


def hand_built() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def trained(digits) -> nn.Module:
    model = hand_built()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(digits.x_train), digits.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_k256_without_delay_step_is_the_baseline(digits, cache):
    cfg = PowerPruningConfig(keep=256, delay_step=False, cache_dir=cache, **FAST)
    model, rec = frugalnn.apply(trained(digits), cfg, data=digits)
    assert rec["finetune_steps_run"] == 0
    assert rec["power_reduction_nominal"] == pytest.approx(0.0, abs=1e-12)
    assert rec["accuracy"] == rec["accuracy_int8"] > 0.8
    assert rec["power_after_nominal"]["energy_pj"] == pytest.approx(
        rec["power_before"]["energy_pj"], rel=1e-12
    )
    assert len(rec["selection"]["weight_codes"]) == 255


def test_small_k_with_delay_step_saves_power_and_round_trips(digits, cache, tmp_path):
    cfg = PowerPruningConfig(
        keep=8, delay_step=True, delay_target=0.85, finetune_steps=20, cache_dir=cache, **FAST
    )
    model, rec = power_prune(trained(digits), cfg, digits, progress=False)
    sel = rec["selection"]
    assert len(sel["weight_codes"]) <= 8 and sel["target_met"]
    assert sel["max_delay_ns"] <= 0.85 * sel["baseline_delay_ns"] + 1e-9
    assert (
        rec["power_reduction_nominal"] > 0.1
        and rec["power_reduction_scaled"] > rec["power_reduction_nominal"]
    )
    v = rec["voltage"]
    assert v["delay_ns"] <= rec["clock_ns"] + 1e-9 < v["next_lower_delay_ns"]
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            codes = (m.weight / m.w_scale).detach()
            assert torch.allclose(codes, codes.round(), atol=1e-4)
            assert set(codes.round().int().unique().tolist()) <= set(sel["weight_codes"])
    spec = ModelSpec("custom")
    save_checkpoint(tmp_path / "ck", model, spec, {"transforms": [rec["transform"]]})
    meta = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert meta["transforms"][0]["name"] == "power-pruning"
    # the plug-in rebuilds the layers on a fresh plain model, then the weights load
    from frugalnn.core.checkpoint import apply_transforms, load_tensors, load_weights

    fresh = apply_transforms(hand_built(), meta["transforms"], "test")
    load_weights(fresh, load_tensors(tmp_path / "ck" / "model.safetensors"), "test")
    x = digits.x_test[:50]
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_bad_input(digits, cache, tmp_path):
    for keep in (0, 257):
        with pytest.raises(FieldError, match="keep"):
            PowerPruningConfig(keep=keep).validate()
    with pytest.raises(FieldError, match="multiple of 64"):
        PowerPruningConfig(transitions=100).validate()
    odd = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten())
    with pytest.raises(UnsupportedModelError, match=r"layer '0' \(Conv1d\)"):
        power_prune(odd, PowerPruningConfig(cache_dir=cache, **FAST), digits)
    grouped = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2))
    with pytest.raises(UnsupportedModelError, match="layer '0' is a Conv2d with groups=2"):
        power_prune(grouped, PowerPruningConfig(cache_dir=cache, **FAST), digits)
    with pytest.raises(FieldError, match="clock_ns .*cannot meet"):
        power_prune(hand_built(), PowerPruningConfig(clock_ns=1.0, cache_dir=cache, **FAST), digits)
    # a real 4-bit characterisation is not the 8-bit MAC's
    four = characterize_mac(
        CharacterizeConfig(mac=MacConfig(bits=4, psum_bits=8), transitions=64, timed_transitions=64),
        progress=False,
    )
    save_characterisation(four, tmp_path / "four", 0)
    path = str(tmp_path / "four" / "mac_characterisation.json")
    with pytest.raises(FieldError, match="4-bit MAC"):
        power_prune(
            hand_built(), PowerPruningConfig(delay_characterisation=path, cache_dir=cache, **FAST), digits
        )


def test_cli_writes_an_eval_loadable_checkpoint(tmp_path, capsys, cache):
    spec = ModelSpec("mlp", image_size=8, options={"hidden": [16]})
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "mlp", build_model(spec), spec)
    args = ["power-prune", "--model", str(tmp_path / "mlp"), "--data", "digits", "--keep", "16"]
    flags = {
        "--energy": "zero-delay",
        "--transitions": "256",
        "--delay-transitions": "256",
        "--stream-sites": "4",
    }
    flags |= {"--stats-images": "32", "--finetune-steps": "5", "--cache-dir": cache}
    args += [x for kv in flags.items() for x in kv]
    assert main([*args, "--out", str(tmp_path / "pp")]) == 0
    printed = capsys.readouterr().out
    assert "MAC-array power reduction" in printed and "Vdd" in printed
    assert main(["eval", "--model", str(tmp_path / "pp"), "--data", "digits"]) == 0
    assert '"accuracy"' in capsys.readouterr().out
    model, _, meta = load_checkpoint(tmp_path / "pp")
    assert (tmp_path / "pp" / "power_pruning.json").exists()
    codes = set(meta["transforms"][0]["config"]["weight_codes"])
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert set((m.weight / m.w_scale).round().int().unique().tolist()) <= codes


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keep", "0"], "--keep must be in [1, 256]"),
        (["--keep", "300"], "--keep must be in [1, 256]"),
        (["--clock-ns", "-1"], "--clock-ns"),
    ],
)
def test_cli_bad_input_exit_2(tmp_path, capsys, flags, message):
    spec = ModelSpec("mlp", image_size=8, options={"hidden": [16]})
    save_checkpoint(tmp_path / "mlp", build_model(spec), spec)
    code = main(
        [
            "power-prune",
            "--model",
            str(tmp_path / "mlp"),
            "--data",
            "digits",
            *flags,
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
