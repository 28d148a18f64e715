"""BasisN (arXiv 2407.03738): one global basis written to few crossbars once vs reprogramming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.experiments import register


@register(
    "basisn",
    "BasisN: global crossbar basis vs reprogramming (cycles, EDP, accuracy), Fashion-MNIST",
    order=75,
)
def run(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict[str, Any]]:
    from frugalnn.experiments.basisn.protocol import run_protocol

    return run_protocol(Path(out_dir), quick, seed, **options)
