"""Compressed LLM folders in Hugging Face form: ``AutoModelForCausalLM.from_pretrained(folder,
trust_remote_code=True)`` loads them with the same logits as ``load_causal_lm(folder)``.

A folder holds ``config.json`` (the dense config, ``model_type`` renamed ``frugalnn_<base>`` so that
plain transformers code cannot load it as the dense architecture by mistake, ``auto_map`` to the
modelling file, and ``frugalnn_compression``: which modules are swapped and how), ``modeling_frugalnn.py``
(written by the method's ``llm_modeling`` plug-in), ``model.safetensors`` (every shared basis stored
once) and the tokenizer. ``load_causal_lm`` reads such a folder without running the modelling file:
it builds the dense architecture from the config and applies the registered ``llm_layer`` rebuild.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from frugalnn.core import plugins
from frugalnn.core.io import atomic_write_text
from frugalnn.errors import CheckpointError, ConfigError, UnsupportedModelError

MODELING_FILE = "modeling_frugalnn.py"
WEIGHTS_FILE = "model.safetensors"
_HF_KEYS = ("model_type", "auto_map", "architectures", "frugalnn_compression", "transformers_version")


def is_hf_compressed(folder: Path) -> bool:
    try:
        return "frugalnn_compression" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, TypeError):  # missing, not UTF-8 or not JSON: not ours
        return False


def tied_aliases(spec: dict[str, Any]) -> dict[str, str]:
    """alias parameter name -> stored name: each group's basis is stored under its first module."""
    owners: dict[str, str] = {}
    aliases: dict[str, str] = {}
    for entry in spec["modules"]:
        name = entry["name"] + ".basis.weight"
        owner = owners.setdefault(entry["group"], name)
        if owner != name:
            aliases[name] = owner
    return aliases


def save_hf_compressed(model: torch.nn.Module, folder: Path, spec: dict[str, Any]) -> None:
    """Write config.json, the modelling file and model.safetensors of a compressed model into ``folder``."""
    from safetensors.torch import save_file

    config = model.config
    base_type = config.model_type
    source = plugins.lookup("llm_modeling", spec["layer"])(
        type(model).__name__, type(config).__name__, f"frugalnn_{base_type}"
    )
    atomic_write_text(folder / MODELING_FILE, source)
    spec = {**{k: v for k, v in spec.items() if k != "aliases"}, "base_model_type": base_type}
    body = config.to_dict()
    body.update(
        model_type=f"frugalnn_{base_type}",
        architectures=["FrugalnnForCausalLM"],
        auto_map={
            "AutoConfig": "modeling_frugalnn.FrugalnnConfig",
            "AutoModelForCausalLM": "modeling_frugalnn.FrugalnnForCausalLM",
        },
        frugalnn_compression=spec,
    )
    atomic_write_text(folder / "config.json", json.dumps(body, indent=2, sort_keys=True) + "\n")
    aliases = tied_aliases(spec)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if k not in aliases}
    for alias, owner in aliases.items():  # the file holds each basis once: check that the alias is one
        if model.get_parameter(alias).data_ptr() != model.get_parameter(owner).data_ptr():
            raise ConfigError(
                f"{alias} is not shared with {owner}; the compressed model was changed after compression"
            )
    tied = getattr(model, "_tied_weights_keys", None) or {}
    for target, source_name in tied.items():  # embeddings tied by the architecture: stored once too
        if target in state and source_name in state and model.config.tie_word_embeddings:
            del state[target]
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def load_hf_compressed(folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """Rebuild a folder written by ``save_hf_compressed`` without running its modelling file."""
    from transformers import AutoConfig, AutoModelForCausalLM

    body = json.loads((folder / "config.json").read_text())
    spec = body["frugalnn_compression"]
    try:
        rebuild = plugins.lookup("llm_layer", spec.get("layer", ""))
    except ConfigError as err:
        raise CheckpointError(f"{folder}/config.json: {err}; upgrade frugalnn") from None
    base_type = spec.get("base_model_type")
    try:
        config = AutoConfig.for_model(base_type, **{k: v for k, v in body.items() if k not in _HF_KEYS})
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    except (ValueError, KeyError, TypeError):
        raise UnsupportedModelError(
            f"{folder}: base model_type {base_type!r} is not a causal LM transformers builds"
        ) from None
    model = rebuild(model, spec)
    load_state(model, folder / WEIGHTS_FILE, tied_aliases(spec), folder)
    model.frugalnn_compression = spec
    return model.to(dtype)


def load_state(model: torch.nn.Module, path: Path, aliases: dict[str, str], folder: Path) -> None:
    """Load a safetensors file whose shared tensors are stored once (``aliases``: name -> stored name;
    embeddings tied by the architecture may be missing) into ``model``, strictly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path} is missing or corrupt ({err}); save the model again") from None
    for alias, owner in aliases.items():
        state[alias] = state[owner]
    if getattr(model.config, "tie_word_embeddings", False):
        for target, source_name in (getattr(model, "_tied_weights_keys", None) or {}).items():
            if target not in state and source_name in state:
                state[target] = state[source_name]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"weights in {folder} do not fit the compressed architecture ({str(err).splitlines()[0][:160]}); "
            "save the model again"
        ) from None
