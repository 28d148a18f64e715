"""Benchmark: PowerPruning on the zoo's Fashion-MNIST LeNet-5 and ResNet-20 (8-bit MAC, OSU018), K in
{256, 64, 32, 16, 8}, with and without the delay step and voltage scaling, plus the power model's
cross-check against a direct gate-level simulation, then the selection + voltage step timed from a cold
characterisation cache per model. Writes docs/results/power_pruning/.

Runs at 1 torch thread. Resumable: every (model, K, delay step) run is saved under runs/ as it finishes
and reused on the next start. Characterisations are cached under docs/results/power_pruning/cache
(not committed).

  .venv/bin/python bench/bench_power_pruning.py [--models lenet5 resnet20] [--keeps 256 16 32 64 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from frugalnn.experiments.power_pruning import run

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "power_pruning"


def cold_timing(models: list[str]) -> dict:
    """Selection + voltage step (delay table, int8 model, statistics, per-layer characterisation,
    ranking, delay step, Vdd) with an empty cache; no retraining."""
    from frugalnn.core.data import load_fashion_mnist
    from frugalnn.core.zoo import load_pretrained
    from frugalnn.methods.power_pruning import PowerPruningConfig, power_prune

    data = load_fashion_mnist(seed=0)
    out = {}
    for name in models:
        model, _, _ = load_pretrained(name)
        with tempfile.TemporaryDirectory() as cache:
            cfg = PowerPruningConfig(keep=16, finetune_steps=0, test_images=500, cache_dir=cache)
            start = time.perf_counter()
            _, rec = power_prune(model, cfg, data, progress=False)
            out[name] = {
                "selection_and_voltage_s": rec["seconds"]["selection_and_voltage"],
                "whole_call_s": time.perf_counter() - start,
                "characterisations": rec["characterisations"]["run"],
                "layers": len(rec["layers"]),
            }
        print(name, out[name], flush=True)
    return out


if __name__ == "__main__":
    from frugalnn.core.report import make_record, write_record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=("lenet5", "resnet20"))
    parser.add_argument("--keeps", nargs="+", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-timing", action="store_true", help="keep timing.json (no cold selection + voltage timing)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = {k: v for k, v in (("models", args.models), ("keeps", args.keeps)) if v}
    for row in run(OUT, quick=False, seed=args.seed, **options):
        print(row, flush=True)
    if args.skip_timing:
        raise SystemExit(0)
    timing = cold_timing(args.models or ["lenet5", "resnet20"])
    write_record(
        OUT / "timing.json",
        make_record(
            "power-pruning-timing",
            config={"keep": 16, "threads": 1, "cache": "empty"},
            seed=args.seed,
            data={"name": "fashion-mnist"},
            results=timing,
            note="1 torch thread on a 2-core machine shared with other jobs",
        ),
    )
