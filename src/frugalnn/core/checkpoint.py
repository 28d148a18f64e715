"""Checkpoints as safetensors (tensors) + JSON (spec, transforms, config, progress); atomic; typed errors.

A checkpoint folder holds ``model.safetensors`` and ``checkpoint.json``; a training checkpoint adds
``train_state.safetensors`` (optimizer buffers) so a killed run resumes bit-exactly.

``load_checkpoint`` is the one loader: it builds the architecture from the spec (or takes a fresh
instance from the caller), re-applies the ``transforms`` methods recorded (thinner layers after
pruning, exit heads around a backbone, swapped modules; each a registered ``model_transform``
plug-in), and loads the weights strictly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from frugalnn.core import plugins, quant  # noqa: F401  (quant registers the "quantize" transform)
from frugalnn.core.io import atomic_write_bytes, atomic_write_json
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.errors import CheckpointError, ConfigError

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
        raise CheckpointError(f"checkpoint file {path} does not exist; check the path")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({err}); it is truncated or corrupt"
        ) from None


def tensor_names(path: str | Path) -> set[str]:
    """The tensor names a safetensors file holds, read from its header only."""
    try:
        with safe_open(str(path), "pt") as handle:
            return set(handle.keys())
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); re-create it") from None


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    spec: ModelSpec | None,
    meta: dict[str, Any] | None = None,
    transforms: list[dict[str, Any]] | None = None,
) -> Path:
    """Write weights and metadata.

    ``spec`` rebuilds the architecture on load; ``None`` for a model the user built (load it with
    ``load_checkpoint(folder, model=<a fresh instance>)``). ``transforms`` lists the module swaps
    methods made (``{"name": registered model_transform, "config": dict}``, applied in order on load);
    without it, ``meta["transforms"]`` is used.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / MODEL_FILE, model.state_dict())
    head: dict[str, Any] = {"spec": spec.to_dict() if spec is not None else None}
    if spec is None:
        head["architecture"] = type(model).__name__
    if transforms is None:  # the method's swaps may come inside meta (its "transforms" list)
        transforms = (meta or {}).get("transforms")
    if transforms:
        head["transforms"] = transforms
    # what this call records wins over a loaded checkpoint's meta passed back in (and its legacy keys)
    rest = {k: v for k, v in (meta or {}).items() if k not in head and k not in _RECORDED_KEYS}
    atomic_write_json(folder / META_FILE, {**head, **rest})
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    meta_path = folder / META_FILE if folder.is_dir() else folder
    if not meta_path.is_file():
        raise CheckpointError(
            f"{folder} is not a frugalnn checkpoint (no {META_FILE}); train one with `frugalnn train`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{meta_path} is not UTF-8 JSON; give a checkpoint folder") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_path} is corrupt JSON ({err.msg}); re-create the checkpoint") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} holds no JSON object; re-create the checkpoint")
    return meta


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


def layer_widths(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Channel counts of every Conv2d / BatchNorm2d / Linear: enough to rebuild a pruned model."""
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


def apply_layer_widths(model: nn.Module, shapes: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace the layers of a freshly built model by ones of the recorded widths (weights uninitialised).

    Registered as the ``layer_widths`` model transform: a structurally pruned model saves
    ``{"name": "layer_widths", "config": layer_widths(model)}``."""
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


WIDTHS_TRANSFORM = "layer_widths"
plugins.register("model_transform", WIDTHS_TRANSFORM)(apply_layer_widths)

# Checkpoints written before the ``transforms`` list kept each swap under its own key; read them as
# the transform of that name (pruned widths first, then the early-exit wrapper built around them).
LEGACY_TRANSFORM_KEYS = {"layer_shapes": WIDTHS_TRANSFORM, "early_exit": "early_exit"}


_RECORDED_KEYS = {"spec", "architecture", "transforms", *LEGACY_TRANSFORM_KEYS}


def checkpoint_transforms(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The ordered transforms of a checkpoint (its ``transforms`` list, or its legacy keys)."""
    if "transforms" in meta:
        return meta["transforms"]
    return [{"name": name, "config": meta[key]} for key, name in LEGACY_TRANSFORM_KEYS.items() if key in meta]


def transform_config(meta: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The config a checkpoint recorded for transform ``name`` (None when it has none)."""
    return next((t.get("config") for t in checkpoint_transforms(meta) if t.get("name") == name), None)


def apply_transforms(model: nn.Module, transforms: list[dict[str, Any]], source: str) -> nn.Module:
    """Re-apply, in order, the module swaps methods made to a model (``meta["transforms"]``).

    Each entry is ``{"name": registered name, "config": a JSON dict}``; the name is looked up in the
    ``model_transform`` plug-in registry (``core.plugins``), never imported from the file, and the
    function ``fn(model, config) -> model`` rebuilds the changed modules (weights are loaded afterwards).
    """
    if not isinstance(transforms, list):
        raise CheckpointError(f"{source}: 'transforms' must be a list; re-create the checkpoint")
    for entry in transforms:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CheckpointError(f"{source}: a transform entry has no name; re-create the checkpoint")
        try:
            rebuild = plugins.lookup("model_transform", entry["name"])
        except ConfigError as err:
            raise CheckpointError(f"{source}: {err}; upgrade frugalnn") from None
        model = rebuild(model, entry.get("config", {}))
    return model


def load_checkpoint(
    folder: str | Path, model: nn.Module | None = None
) -> tuple[nn.Module, ModelSpec | None, dict[str, Any]]:
    """Rebuild a saved model and load its weights: the one loader for plain, pruned and wrapped models.

    The architecture comes from the checkpoint's spec, or from ``model`` (a freshly built instance of
    what was saved, before any method changed it: the way to load a model built by hand); the recorded
    transforms are re-applied to it, then the weights load strictly. Returns (model, spec or None, meta).
    """
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"checkpoint {folder} does not exist; check the path or save one there first")
    meta = read_meta(folder)
    spec = None
    try:
        spec = ModelSpec.from_dict(meta["spec"]) if meta.get("spec") is not None else None
    except (KeyError, TypeError) as err:
        raise CheckpointError(
            f"{folder}/{META_FILE} has no valid model spec ({err}); re-create the checkpoint"
        ) from None
    if model is None:
        if spec is None and "architecture" in meta:
            raise CheckpointError(
                f"{folder} holds a user-built {meta['architecture']} without a model spec; pass a fresh "
                "instance of it: load_checkpoint(folder, model=...)"
            )
        if spec is None:
            raise CheckpointError(f"{folder}/{META_FILE} has no valid model spec; re-create the checkpoint")
        model = build_model(spec)
    model = apply_transforms(model, checkpoint_transforms(meta), str(folder))
    load_weights(model, load_tensors(folder / MODEL_FILE), str(folder))
    return model, spec, meta
