"""``frugalnn reproduce correctnet``: CorrectNet's claim on LeNet-5 / VGG-small (Fashion-MNIST) under RRAM variation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.experiments import register


@register("correctnet", "CorrectNet: Lipschitz + placed compensation vs RRAM variation (σ sweep)", order=75)
def run(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict[str, Any]]:
    from frugalnn.experiments.correctnet.protocol import run_protocol

    return run_protocol(Path(out_dir), quick, seed, **options)
