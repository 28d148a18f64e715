"""Experiment ``power-pruning``: PowerPruning (DAC 2023) on the zoo's Fashion-MNIST LeNet-5 and
ResNet-20, 8-bit, K in {256, 64, 32, 16, 8}, with and without the delay step and voltage scaling."""

from __future__ import annotations

from pathlib import Path

from frugalnn.experiments import register


@register(
    "power-pruning",
    "PowerPruning: low-power weight values, short-delay activations, retraining, Vdd scaling (8-bit MAC)",
    order=66,
)
def run(out_dir: Path, quick: bool, seed: int, **options) -> list[dict]:
    from frugalnn.experiments.power_pruning.protocol import run_protocol

    return run_protocol(Path(out_dir), quick, seed, **options)
