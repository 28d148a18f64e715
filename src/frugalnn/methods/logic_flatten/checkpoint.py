"""A trained LogicMLP on disk: CKPT/model.safetensors (weights + quantiser scales) and CKPT/logic_model.json
(layer sizes, bit widths, the training config and data identity)."""

from __future__ import annotations

import json
from pathlib import Path

from frugalnn.core.checkpoint import load_tensors, save_tensors
from frugalnn.core.io import atomic_write_json
from frugalnn.errors import CheckpointError
from frugalnn.methods.logic_flatten.model import LogicMLP

META = "logic_model.json"
WEIGHTS = "model.safetensors"


def save_logic_mlp(model: LogicMLP, folder: str | Path, meta: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS, model.state_dict())
    bits = {"weight_bits": model.weight_bits, "act_bits": model.act_bits, "input_bits": model.input_bits}
    atomic_write_json(folder / META, {"kind": "logic-mlp", "sizes": model.sizes, **bits, **meta})
    return folder


def load_logic_mlp(folder: str | Path) -> tuple[LogicMLP, dict]:
    folder = Path(folder)
    meta_path = folder / META
    if not meta_path.is_file():
        raise CheckpointError(
            f"{folder} is not a logic-MLP checkpoint (no {META}); train one with `frugalnn logic train --out DIR`"
        )
    try:
        meta = json.loads(meta_path.read_text())
        model = LogicMLP(meta["sizes"], meta["weight_bits"], meta["act_bits"], meta["input_bits"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{meta_path} is corrupt ({err}); re-create the checkpoint") from None
    tensors = load_tensors(folder / WEIGHTS)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise CheckpointError(f"{folder / WEIGHTS} does not match {META}: {str(err)[:200]}") from None
    model.quantized = float(model.in_scale) > 0
    return model.eval(), meta
