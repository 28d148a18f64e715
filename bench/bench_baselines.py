"""Reference baselines on Fashion-MNIST (full test set): writes docs/results/baselines/baselines.{json,md,png}.

Builds any missing zoo model with its recipe (about 15-30 min each on 2 cores), then measures
accuracy, parameters, MACs and training / inference throughput with 1 torch thread, and training
throughput again with 2 threads (both cores; OMP_WAIT_POLICY=PASSIVE).
Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_baselines.py
"""

import json
from pathlib import Path

import torch

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.io import atomic_write_json
from frugalnn.core.models import build_model
from frugalnn.core.zoo import RECIPES
from frugalnn.experiments.baselines import run, training_throughput

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "docs" / "results"
    torch.set_num_threads(1)
    print(run(out, quick=False, seed=0))
    data = load_fashion_mnist()
    record = json.loads((out / "baselines.json").read_text())
    by_threads = {}
    for name in RECIPES:
        by_threads[name] = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            tp = training_throughput(build_model(name), data.x_train, data.y_train, 128, 8)
            by_threads[name][threads] = round(tp["items_per_s"], 1)
        print(f"  {name}: training img/s by threads {by_threads[name]}")
    record["results"]["train_img_per_s_by_threads"] = by_threads
    atomic_write_json(out / "baselines.json", record)
