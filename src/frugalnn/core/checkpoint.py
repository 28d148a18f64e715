"""Checkpoints as safetensors (tensors) + JSON (spec, config, progress); atomic; typed errors.

A checkpoint folder holds ``model.safetensors`` and ``checkpoint.json``; a training checkpoint adds
``train_state.safetensors`` (optimizer buffers) so a killed run resumes bit-exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from frugalnn.core.io import atomic_write_bytes, atomic_write_json
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import CheckpointError

MODEL_FILE = "model.safetensors"
META_FILE = "checkpoint.json"


def save_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    """Atomic safetensors write (shared storage is cloned so safetensors accepts it)."""
    plain = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    return atomic_write_bytes(path, save(plain, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; check --model / the path")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it is truncated or corrupt"
        ) from None


def save_checkpoint(
    folder: str | Path, model: torch.nn.Module, spec: ModelSpec, meta: dict[str, Any] | None = None
) -> Path:
    """Write weights and metadata (the spec rebuilds the architecture)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / MODEL_FILE, model.state_dict())
    atomic_write_json(folder / META_FILE, {"spec": spec.to_dict(), **(meta or {})})
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    meta_path = folder / META_FILE if folder.is_dir() else folder
    if not meta_path.is_file():
        raise CheckpointError(
            f"{folder} is not a frugalnn checkpoint (no {META_FILE}); train one with `frugalnn train`"
        )
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_path} is corrupt JSON ({err.msg}); re-create the checkpoint") from None


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, turning a shape or key mismatch into a CheckpointError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [k for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if missing or unexpected or wrong:
        detail = (
            (missing and f"missing {missing[:3]}")
            or (unexpected and f"unexpected {unexpected[:3]}")
            or (
                f"shape of {wrong[0]} is {tuple(tensors[wrong[0]].shape)}, model has {tuple(own[wrong[0]].shape)}"
            )
        )
        raise CheckpointError(
            f"checkpoint {source} does not match this architecture ({detail}); use the model it was trained with"
        )
    model.load_state_dict(tensors)


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Channel counts of every Conv2d / BatchNorm2d / Linear: enough to rebuild a pruned zoo model."""
    shapes: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[name] = {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels}
        elif isinstance(m, nn.BatchNorm2d):
            shapes[name] = {"type": "BatchNorm2d", "features": m.num_features}
        elif isinstance(m, nn.Linear):
            shapes[name] = {"type": "Linear", "in": m.in_features, "out": m.out_features}
    return shapes


def _resized(m: nn.Module, rec: dict[str, Any]) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(
            rec["in"], rec["out"], m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
            bias=m.bias is not None, padding_mode=m.padding_mode,
        )  # fmt: skip
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(rec["features"], m.eps, m.momentum, m.affine, m.track_running_stats)
    return nn.Linear(rec["in"], rec["out"], bias=m.bias is not None)


def apply_layer_shapes(model: nn.Module, shapes: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace the layers of a freshly built model by ones of the recorded widths (weights uninitialised)."""
    modules = dict(model.named_modules())
    for name, rec in shapes.items():
        m = modules.get(name)
        if m is None or type(m).__name__ != rec.get("type"):
            raise CheckpointError(
                f"pruned layer {name!r} ({rec.get('type')}) is not in this architecture; "
                "load the checkpoint with the model it was pruned from"
            )
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _resized(m, rec))
    return model


def apply_transforms(model: nn.Module, transforms: list[dict[str, Any]], source: str) -> nn.Module:
    """Re-apply, in order, the module swaps methods made to a model (``meta["transforms"]``).

    Each entry is ``{"name": registered name, "config": the method config's to_dict()}``; the name is
    looked up in the ``model_transform`` plug-in registry (``core.plugins``), never imported from the
    file, and the function ``fn(model, config_dict) -> model`` rebuilds the changed modules (weights
    are loaded afterwards).
    """
    from frugalnn.core import plugins

    if not isinstance(transforms, list):
        raise CheckpointError(f"{source}: 'transforms' must be a list; re-create the checkpoint")
    for entry in transforms:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CheckpointError(f"{source}: a transform entry has no name; re-create the checkpoint")
        rebuild = plugins.lookup("model_transform", entry["name"])
        model = rebuild(model, entry.get("config", {}))
    return model


def load_checkpoint(folder: str | Path) -> tuple[torch.nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild the model from its spec and load its weights."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(
            f"checkpoint {folder} does not exist; train one with `frugalnn train --out {folder}`"
        )
    meta = read_meta(folder)
    try:
        spec = ModelSpec.from_dict(meta["spec"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"{folder}/{META_FILE} has no valid model spec ({err}); re-create the checkpoint"
        ) from None
    # a structurally pruned model records its layer widths; rebuild those before loading weights
    model = apply_layer_shapes(build_model(spec), meta.get("layer_shapes", {}))
    model = apply_transforms(model, meta.get("transforms", []), str(folder))
    load_weights(model, load_tensors(folder / MODEL_FILE), str(folder))
    return model, spec, meta
