"""EncodingNet on Fashion-MNIST: encoded vs exact B-bit networks, and encoded vs multiplier MAC hardware.

For each maxRE threshold: search (or resume) an encoder; for LeNet-5 and ResNet-20 from the zoo,
encode and fine-tune (the exact B-bit network gets the same calibration and fine-tuning: the control);
stream the network's own activation / weight codes through both hardware designs (yosys + OSU018,
glitch-aware energy at one clock). ``--quick``: 4-bit encoders, LeNet-5, a few fine-tuning steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.experiments import register


@register(
    "encodingnet", "EncodingNet: encoded MACs vs multipliers (accuracy, area, energy) on Fashion-MNIST", 60
)
def run(out_dir: Path, quick: bool, seed: int, **options: Any) -> list[dict[str, Any]]:
    from frugalnn.experiments.encodingnet.protocol import run_protocol

    return run_protocol(Path(out_dir), quick, seed, **options)
