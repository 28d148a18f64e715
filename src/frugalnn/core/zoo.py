"""Trained reference models (the zoo): Fashion-MNIST baselines that method experiments start from.

Lookup order: ``$FRUGALNN_CACHE/zoo/<data>-<model>/`` (rebuilt by ``frugalnn zoo build``), then
the weights bundled with the package (``frugalnn/zoo_weights``; ~1 MB each, trained by
``frugalnn zoo build`` with the recipe below, so a fresh machine starts from real baselines).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import nn

from frugalnn.core.assets import cache_dir
from frugalnn.core.checkpoint import load_checkpoint
from frugalnn.core.data import ImageData, load_fashion_mnist
from frugalnn.core.models import ModelSpec, build_model
from frugalnn.core.train import TrainConfig, TrainResult, train
from frugalnn.errors import ConfigError, MissingAssetError

BUNDLED = Path(__file__).resolve().parent.parent / "zoo_weights"

# The recipe of each reference baseline: SGD with momentum, cosine schedule, crop + flip augmentation.
RECIPES: dict[str, TrainConfig] = {
    "lenet5": TrainConfig(epochs=15, batch_size=128, lr=0.05, weight_decay=5e-4),
    "vgg-small": TrainConfig(epochs=12, batch_size=128, lr=0.05, weight_decay=5e-4),
    "resnet20": TrainConfig(epochs=12, batch_size=128, lr=0.1, weight_decay=5e-4),
}


def zoo_name(model: str, data: str = "fashion-mnist") -> str:
    return f"{data}-{model}"


def zoo_path(model: str, data: str = "fashion-mnist") -> Path | None:
    """Folder of a trained baseline, or None when neither the cache nor the package has it."""
    for root in (cache_dir() / "zoo", BUNDLED):
        folder = root / zoo_name(model, data)
        if (folder / "model.safetensors").exists():
            return folder
    return None


def load_pretrained(model: str, data: str = "fashion-mnist") -> tuple[nn.Module, ModelSpec, dict]:
    if model not in RECIPES:
        raise ConfigError(f"no zoo recipe for {model!r}; choose one of {', '.join(RECIPES)}")
    folder = zoo_path(model, data)
    if folder is None:
        raise MissingAssetError(
            f"no trained {model} for {data}; build it with `frugalnn zoo build {model}` (about 1 h on 2 cores)"
        )
    return load_checkpoint(folder)


def build_baseline(model: str, seed: int = 0, data: ImageData | None = None) -> TrainResult:
    """Train a zoo model with its recipe into ``$FRUGALNN_CACHE/zoo`` (resumes a killed build)."""
    config = recipe(model, seed)
    config.checkpoint_every_steps = 200
    data = data or load_fashion_mnist(seed=0)
    spec = ModelSpec(model, data.num_classes, data.in_channels, data.image_size)
    out = cache_dir() / "zoo" / zoo_name(model)
    return train(build_model(spec), data, config, out_dir=out, spec=spec)


def recipe(model: str, seed: int = 0) -> TrainConfig:
    if model not in RECIPES:
        raise ConfigError(f"no zoo recipe for {model!r}; choose one of {', '.join(RECIPES)}")
    return replace(RECIPES[model], seed=seed)
