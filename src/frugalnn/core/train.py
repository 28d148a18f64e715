"""Train and evaluate image classifiers: SGD/Adam, cosine/step schedules, crop+flip augmentation,
progress bars, checkpoints that resume bit-exactly after a kill, and data parallelism (torchrun/DDP).
Flips are used only where the data set allows them (``core.data.DATASETS``) unless the config says.

Determinism: the batch order and augmentation of step ``s`` of epoch ``e`` depend only on
(seed, e, s), and the learning rate only on the global step, so a resumed run replays exactly the
steps the killed run would have taken.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from frugalnn.core.checkpoint import load_tensors, load_weights, save_checkpoint, save_tensors
from frugalnn.core.config import FieldError
from frugalnn.core.data import ImageData, flips_valid
from frugalnn.core.io import atomic_output_dir, atomic_write_json
from frugalnn.core.measure import accuracy
from frugalnn.core.models import ModelSpec
from frugalnn.errors import CheckpointError, ConfigError


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128  # global batch: split across DDP ranks
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step | constant
    step_epochs: int = 30
    gamma: float = 0.1
    augment: bool = True  # random crop (pad 2 px on 28x28, 4 on 32x32) + horizontal flip
    flip: bool | None = None  # None: flip where the data set allows it (core.data.DATASETS)
    seed: int = 0
    checkpoint_every_steps: int = 0  # 0: checkpoint at epoch ends only
    max_steps_per_epoch: int | None = None  # quick runs
    eval_batch_size: int = 512
    grad_clip_norm: float = 0.0  # > 0: rescale the gradient to at most this global L2 norm (0: off)
    device: str = "cpu"  # "cuda" / "cuda:1": the model moves there and stays; batches are built on the CPU

    def validate(self) -> None:
        if self.epochs < 0:
            raise FieldError("epochs", f"must be 0 or more, got {self.epochs}")
        if self.batch_size <= 0:
            raise FieldError("batch_size", f"must be positive, got {self.batch_size}")
        if not self.lr > 0:
            raise FieldError("lr", f"must be positive, got {self.lr}")
        if not 0 <= self.weight_decay < float("inf"):
            raise FieldError("weight_decay", f"must be 0 or more, got {self.weight_decay}")
        if self.optimizer not in ("sgd", "adam"):
            raise FieldError("optimizer", f"must be sgd or adam, got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "constant"):
            raise FieldError("schedule", f"must be cosine, step or constant, got {self.schedule!r}")
        if not 0 <= self.grad_clip_norm < float("inf"):
            raise FieldError(
                "grad_clip_norm", f"must be 0 (off) or a positive norm, got {self.grad_clip_norm}"
            )
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch <= 0:
            raise FieldError("max_steps_per_epoch", f"must be positive, got {self.max_steps_per_epoch}")
        check_device(self.device)


def check_device(device: str) -> torch.device:
    """The torch.device for a device string, or a FieldError("device", ...) that says what to use instead."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise FieldError("device", f"{device!r} is unknown; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FieldError("device", f"{device!r} asked for, but this torch sees no CUDA GPU; use cpu")
    if dev.type not in ("cpu", "cuda"):
        raise FieldError("device", f"type {dev.type!r} is not supported; use cpu or cuda")
    return dev


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    val_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    seconds: float = 0.0
    images_per_s: float = 0.0
    resumed_from_step: int = 0


def init_distributed() -> tuple[int, int]:
    """Join the process group that torchrun describes (RANK/WORLD_SIZE/MASTER_ADDR env vars).

    gloo on CPU, nccl when CUDA is there. A plain ``python`` run stays single-process.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _world()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def lr_at(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    if config.schedule == "step":
        return config.lr * config.gamma ** ((step // max(1, steps_per_epoch)) // config.step_epochs)
    return config.lr


def augment_batch(x: torch.Tensor, gen: torch.Generator, flip: bool = True) -> torch.Tensor:
    """Vectorised random crop with zero padding and random horizontal flip."""
    b, _, h, w = x.shape
    pad = 2 if h <= 28 else 4
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (b, h, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (b, 1, w)
    out = padded.permute(0, 2, 3, 1)[torch.arange(b)[:, None, None], rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(b, generator=gen) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out.contiguous()


def _batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + step)


def _state_dir(out_dir: Path) -> Path:
    return out_dir / "train_state"


def _save_train_state(
    out_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, progress: dict[str, Any]
) -> None:
    """Write weights + optimizer buffers into a fresh step folder, then move the LATEST pointer."""
    root = _state_dir(out_dir)
    name = f"step-{progress['global_step']:08d}"
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    scalars: dict[str, Any] = {}
    for idx, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    with atomic_output_dir(root / name, overwrite=True) as tmp:
        save_tensors(tmp / "state.safetensors", tensors)
        atomic_write_json(tmp / "progress.json", {**progress, "optim_scalars": scalars})
    atomic_write_json(root / "LATEST.json", {"folder": name})
    for old in root.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _load_train_state(out_dir: Path, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any] | None:
    latest = _state_dir(out_dir) / "LATEST.json"
    if not latest.exists():
        return None
    folder = _state_dir(out_dir) / json.loads(latest.read_text())["folder"]
    progress = json.loads((folder / "progress.json").read_text())
    tensors = load_tensors(folder / "state.safetensors")
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(folder))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in progress.pop("optim_scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    opt_state = opt.state_dict()
    opt_state["state"] = state
    opt.load_state_dict(opt_state)
    return progress


def _placement(model: nn.Module, config: TrainConfig, world: int) -> tuple[torch.device, nn.Module]:
    """Move the model to its device; under torchrun wrap it in DDP (one GPU per process)."""
    device = check_device(config.device)
    if device.type == "cuda" and device.index is None and world > 1:
        import os

        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    model.to(device)
    return device, (nn.parallel.DistributedDataParallel(model) if world > 1 else model)


def _steps_per_epoch(config: TrainConfig, n: int) -> int:
    steps = n // config.batch_size
    if steps == 0:
        raise FieldError(
            "batch_size", f"{config.batch_size} exceeds the {n} training samples; use a smaller one"
        )
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps


def _resume(
    out: Path | None, model: nn.Module, opt: torch.optim.Optimizer, config: TrainConfig, result: TrainResult
) -> tuple[int, int]:
    """Load the state a killed run left in ``out``; (epoch, step) to continue from, (0, 0) when none."""
    state = _load_train_state(out, model, opt) if out is not None else None
    if state is None:
        return 0, 0
    if state.get("config") != asdict(config):
        raise CheckpointError(
            f"{out} holds a run with another config; use a new output folder or the same config to resume"
        )
    result.history = state.get("history", [])
    result.resumed_from_step = state["global_step"]
    return state["epoch"], state["step_in_epoch"]


@dataclass
class _Run:
    """What one training run carries from step to step."""

    model: nn.Module
    net: nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    data: ImageData
    config: TrainConfig
    criterion: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    extra_loss: Callable[[nn.Module], torch.Tensor] | None
    device: torch.device
    rank: int
    world: int
    flip: bool
    steps_per_epoch: int
    out: Path | None
    result: TrainResult
    images_seen: int = 0

    def progress_state(self, epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": epoch * self.steps_per_epoch + step_in_epoch,
            "config": asdict(self.config),
            "history": self.result.history,
        }


def _train_step(run: _Run, epoch: int, step: int, order: torch.Tensor) -> float:
    """One SGD/Adam step on batch ``step`` of ``order``; returns its loss."""
    cfg = run.config
    global_step = epoch * run.steps_per_epoch + step
    idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
    xb, yb = run.data.x_train[idx], run.data.y_train[idx]
    if cfg.augment:  # augment the global batch, then shard: ranks see what one process would
        xb = augment_batch(xb, _batch_generator(cfg.seed, epoch, step), run.flip)
    xb, yb = xb[run.rank :: run.world].to(run.device), yb[run.rank :: run.world].to(run.device)
    for group in run.opt.param_groups:
        group["lr"] = lr_at(cfg, global_step, run.steps_per_epoch * cfg.epochs, run.steps_per_epoch)
    loss = run.criterion(run.net, xb, yb)
    if run.extra_loss is not None:
        loss = loss + run.extra_loss(run.model)
    if not torch.isfinite(loss.detach()):  # stop before the step: the weights and checkpoints stay good
        kept = f"; the last good checkpoint in {run.out} is kept" if run.out is not None else ""
        raise ConfigError(
            f"training diverged: the loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1} "
            f"(lr {run.opt.param_groups[0]['lr']:.3g}); lower lr or check the data{kept}"
        )
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip_norm > 0:  # after backward: under DDP the gradients are already all-reduced
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip_norm)
    run.opt.step()
    run.images_seen += len(xb) * run.world
    return float(loss.detach())


def _train_epoch(
    run: _Run, epoch: int, first_step: int, progress: bool, interrupt_after: int | None
) -> dict[str, float]:
    """Steps ``first_step ..`` of one epoch (mid-epoch checkpoints as configured); the history entry."""
    cfg = run.config
    run.net.train()
    order = torch.randperm(
        len(run.data.x_train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
    )
    bar = tqdm(
        range(first_step, run.steps_per_epoch),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not progress or run.rank != 0,
        leave=False,
        mininterval=1.0,
    )
    loss_sum, loss_count, epoch_start = 0.0, 0, time.perf_counter()
    for step in bar:
        loss_sum += _train_step(run, epoch, step, order)
        loss_count += 1
        bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}")
        global_step = epoch * run.steps_per_epoch + step + 1
        if (
            run.out is not None
            and run.rank == 0
            and cfg.checkpoint_every_steps
            and global_step % cfg.checkpoint_every_steps == 0
            and step + 1 < run.steps_per_epoch
        ):
            _save_train_state(run.out, run.model, run.opt, run.progress_state(epoch, step + 1))
        if interrupt_after is not None and global_step >= interrupt_after:
            raise KeyboardInterrupt(f"simulated kill after step {global_step}")
    bar.close()
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum / max(1, loss_count),
        "seconds": time.perf_counter() - epoch_start,
    }


def _end_epoch(run: _Run, entry: dict[str, float], progress: bool) -> None:
    """Validate, log, record the epoch and checkpoint its end."""
    data, cfg = run.data, run.config
    if len(data.x_val):
        entry["val_accuracy"] = accuracy(run.model, data.x_val, data.y_val, cfg.eval_batch_size)
    run.result.history.append(entry)
    if progress and run.rank == 0:
        val = f", val acc {entry['val_accuracy']:.4f}" if "val_accuracy" in entry else ""
        print(
            f"epoch {entry['epoch']}/{cfg.epochs}: loss {entry['train_loss']:.4f}{val} ({entry['seconds']:.0f} s)",
            flush=True,
        )
    if run.out is not None and run.rank == 0:
        _save_train_state(run.out, run.model, run.opt, run.progress_state(int(entry["epoch"]), 0))


def train(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    spec: ModelSpec | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    evaluate_test: bool = True,
    _interrupt_after_steps: int | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data.x_train``; resumes from ``out_dir`` when a state is there.

    ``loss_fn(model, x, y)`` replaces cross-entropy (e.g. early-exit heads); ``extra_loss(model)``
    adds a regulariser (e.g. orthogonality or L1 for pruning). Under torchrun, each rank takes its
    share of every global batch and DDP averages the gradients.
    """
    config.validate()
    rank, world = _world()
    if config.batch_size % world:
        raise FieldError("batch_size", f"{config.batch_size} must divide by the {world} DDP processes")
    torch.manual_seed(config.seed)
    out = Path(out_dir) if out_dir else None
    device, net = _placement(model, config, world)
    opt = make_optimizer(model.parameters(), config)
    result = TrainResult()
    run = _Run(
        model, net, opt, data, config,
        criterion=loss_fn or (lambda m, xb, yb: F.cross_entropy(m(xb), yb)),
        extra_loss=extra_loss, device=device, rank=rank, world=world,
        flip=flips_valid(data.name) if config.flip is None else config.flip,
        steps_per_epoch=_steps_per_epoch(config, len(data.x_train)), out=out, result=result,
    )  # fmt: skip
    start_epoch, start_step = _resume(out, model, opt, config, result)
    started = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        first = start_step if epoch == start_epoch else 0
        _end_epoch(run, _train_epoch(run, epoch, first, progress, _interrupt_after_steps), progress)
    result.seconds = time.perf_counter() - started
    result.images_per_s = run.images_seen / result.seconds if result.seconds > 0 else 0.0
    if len(data.x_val):
        result.val_accuracy = accuracy(model, data.x_val, data.y_val, config.eval_batch_size)
    if evaluate_test:
        result.test_accuracy = accuracy(model, data.x_test, data.y_test, config.eval_batch_size)
    if out is not None and rank == 0 and spec is not None:
        meta = {"train_config": asdict(config), "data": data.identity, "result": asdict(result)}
        save_checkpoint(out, model, spec, meta)
    return result
