import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from frugalnn.core.checkpoint import load_checkpoint, load_tensors
from frugalnn.core.data import load_digits
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.core.train import TrainConfig, augment_batch, train
from frugalnn.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _fresh(seed=0):
    torch.manual_seed(seed)
    return build_model("vgg-small", image_size=8, stages=(8, 16, 16))


def _tiny_cfg(**kw):
    base = dict(epochs=3, batch_size=64, lr=0.05, augment=True, flip=False, checkpoint_every_steps=7, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns(digits):
    model = _fresh()
    result = train(
        model, digits, _tiny_cfg(epochs=6, augment=False, checkpoint_every_steps=0), progress=False
    )
    assert result.test_accuracy > 0.8, result
    assert len(result.history) == 6 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_after_kill_is_bit_exact(digits, tmp_path, optimizer):
    cfg = _tiny_cfg(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 1e-3)
    spec = ModelSpec("vgg-small", image_size=8, options={"stages": [8, 16, 16]})
    reference = _fresh()
    train(reference, digits, cfg, progress=False)

    killed = _fresh()
    with pytest.raises(KeyboardInterrupt):  # dies mid-epoch 2, after the checkpoint at step 35
        train(killed, digits, cfg, out_dir=tmp_path, spec=spec, progress=False, _interrupt_after_steps=38)
    latest = json.loads((tmp_path / "train_state" / "LATEST.json").read_text())
    assert latest["folder"] == "step-00000035"
    resumed = _fresh(seed=123)  # different init: everything must come from the checkpoint
    result = train(resumed, digits, cfg, out_dir=tmp_path, spec=spec, progress=False)
    assert result.resumed_from_step == 35
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resume"
    model, _, meta = load_checkpoint(tmp_path)
    assert meta["result"]["resumed_from_step"] == 35
    assert torch.equal(model.state_dict()["fc.weight"], reference.state_dict()["fc.weight"])


def test_resume_refuses_other_config(digits, tmp_path):
    cfg = _tiny_cfg(epochs=1)
    train(
        _fresh(),
        digits,
        cfg,
        out_dir=tmp_path,
        spec=ModelSpec("vgg-small", image_size=8, options={"stages": [8, 16, 16]}),
        progress=False,
    )
    with pytest.raises(CheckpointError, match="another config"):
        train(_fresh(), digits, _tiny_cfg(epochs=1, lr=0.2), out_dir=tmp_path, progress=False)


def test_bad_configs(digits):
    with pytest.raises(ConfigError, match="epochs"):
        train(_fresh(), digits, TrainConfig(epochs=-1), progress=False)
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        train(_fresh(), digits, TrainConfig(batch_size=0), progress=False)
    with pytest.raises(ConfigError, match="exceeds"):
        train(_fresh(), digits, TrainConfig(batch_size=100_000), progress=False)


def test_training_on_the_cpu_device_matches_the_default(digits):
    """device="cpu" is the default path; the step loop moves batches to the model's device."""
    runs = []
    for device in (None, "cpu"):
        model = _fresh()
        extra = {} if device is None else {"device": device}
        train(model, digits, TrainConfig(epochs=1, max_steps_per_epoch=3, **extra), progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            TrainConfig(device="cuda").validate()


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "checkpoint.json").write_text(json.dumps({"spec": ModelSpec("resnet20").to_dict()}))
    from frugalnn.core.checkpoint import save_tensors

    save_tensors(folder / "model.safetensors", build_model("lenet5").state_dict())
    with pytest.raises(CheckpointError, match="does not match this architecture"):
        load_checkpoint(folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_tensors(folder / "model.safetensors")


def test_augment_is_a_crop_and_flip():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0), flip=True)
    assert out.shape == x.shape
    # every output row is a shifted (possibly flipped) window of the zero-padded input row
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        found = any(
            torch.equal(out[b, 0], padded[b, 0, dy : dy + 8, dx : dx + 8])
            or torch.equal(out[b, 0], padded[b, 0, dy : dy + 8, dx : dx + 8].flip(-1))
            for dy in range(5)
            for dx in range(5)
        )
        assert found


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from frugalnn.core.data import load_digits
    from frugalnn.core.models import build_model
    from frugalnn.core.train import TrainConfig, init_distributed, train
    rank, world = init_distributed()
    data = load_digits()
    torch.manual_seed(0)
    model = build_model("mlp", image_size=8, hidden=(32,))
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.1, augment=True, flip=False, seed=5)
    train(model, data, cfg, progress=False, evaluate_test=False)
    if rank == 0:
        torch.save(model.state_dict(), sys.argv[1])
    """
)


def _run_or_show(cmd: list[str], env: dict[str, str]) -> None:
    """Run a child; on failure put its stderr in the assertion so CI logs say why."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{cmd[2:4]} exited {proc.returncode}:\n{proc.stderr[-3000:]}"


def test_ddp_two_gloo_processes_match_single_process(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp_out, single_out = tmp_path / "ddp.pt", tmp_path / "single.pt"
    # --standalone: torchrun picks a free port itself; a fixed --master_port failed CI when it was taken
    _run_or_show(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(ddp_out),
        ],
        env,
    )
    _run_or_show([sys.executable, str(script), str(single_out)], env)
    ddp, single = torch.load(ddp_out), torch.load(single_out)
    for key in single:
        # same global batch, gradients averaged over ranks: equal up to float summation order
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5)
    assert Path(ddp_out).stat().st_size > 0


def test_load_checkpoint_rebuilds_recorded_layer_widths(tmp_path):
    """A structurally thinner model (e.g. pruned) saves its widths and loads back with plain load_checkpoint."""
    from frugalnn.core.checkpoint import layer_widths, save_checkpoint

    spec = ModelSpec("vgg-small", image_size=8, options={"stages": [8, 16, 16]})
    thin = build_model("vgg-small", image_size=8, stages=(8, 12, 16))  # a different middle width
    save_checkpoint(tmp_path, thin, spec, transforms=[{"name": "layer_widths", "config": layer_widths(thin)}])
    loaded, _, _ = load_checkpoint(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    thin.eval()
    loaded.eval()
    assert loaded.blocks[1][0].out_channels == 12
    assert torch.equal(loaded(x), thin(x))


def test_checkpoints_from_before_the_transforms_list_still_load(tmp_path):
    """Old pruned checkpoints kept the widths under a top-level ``layer_shapes`` key."""
    from frugalnn.core.checkpoint import layer_widths, save_checkpoint

    spec = ModelSpec("vgg-small", image_size=8, options={"stages": [8, 16, 16]})
    thin = build_model("vgg-small", image_size=8, stages=(8, 12, 16)).eval()
    save_checkpoint(tmp_path, thin, spec)
    (tmp_path / "checkpoint.json").write_text(
        json.dumps({"spec": spec.to_dict(), "layer_shapes": layer_widths(thin)})
    )
    loaded, _, _ = load_checkpoint(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(loaded.eval()(x), thin(x))
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    (tmp_path / "checkpoint.json").write_text(json.dumps({**meta, "transforms": [{"name": "os.system"}]}))
    with pytest.raises(CheckpointError, match="no model_transform named 'os.system' is registered"):
        load_checkpoint(tmp_path)


def test_a_diverging_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    import dataclasses

    from frugalnn.errors import ConfigError

    data = load_digits()
    data = dataclasses.replace(data, x_train=data.x_train[:256], y_train=data.y_train[:256])
    torch.manual_seed(0)
    model = build_model("mlp", image_size=8)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e9, momentum=0.9, seed=0)  # certain to blow up
    with pytest.raises(ConfigError, match="training diverged: the loss became .* lower lr"):
        train(model, data, cfg, out_dir=tmp_path / "run", progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no step was taken with it


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_gradient_clipping_rescales_the_step_to_the_norm(digits, clip):
    """One full-batch SGD step (lr 1, no momentum or decay) moves the weights by exactly the gradient,
    rescaled to norm ``clip`` when it is larger; the gradient is computed here independently."""
    n = len(digits.x_train)
    cfg = TrainConfig(epochs=1, batch_size=n, lr=1.0, momentum=0.0, weight_decay=0.0, schedule="constant",
                      augment=False, grad_clip_norm=clip, checkpoint_every_steps=0)  # fmt: skip
    model = _fresh()
    start = [p.detach().clone() for p in model.parameters()]
    reference = _fresh().train()
    loss = torch.nn.functional.cross_entropy(reference(digits.x_train), digits.y_train)
    grads = torch.autograd.grad(loss, list(reference.parameters()))
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads]))
    assert norm > 0.05  # the clipped case really clips
    scale = min(1.0, clip / float(norm)) if clip else 1.0
    train(model, digits, cfg, progress=False)
    for before, after, g in zip(start, model.parameters(), grads):
        torch.testing.assert_close(before - after.detach(), scale * g, atol=2e-5, rtol=1e-3)


def test_negative_or_infinite_gradient_clip_is_refused():
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="grad_clip_norm"):
            TrainConfig(grad_clip_norm=bad).validate()
