"""Benchmark of the RRAM crossbar substrate (hw/crossbar.py): costs and accuracy under variation.

Runs with one thread (OMP/MKL/torch = 1). Writes docs/results/crossbar/crossbar.json.
1. Cost model: tiles, cycles, energy and EDP per inference of LeNet-5 (28x28), VGG-small and ResNet-20
   (32x32x3) when every tile fits and when only 64 / 16 / 4 crossbars must be reprogrammed per inference
   (the BasisN baseline), 128x128 tiles, default constants.
2. Accuracy under lognormal variation sigma 0..0.5 (Monte-Carlo chips, default aihwkit-like converters
   and noise): an MLP on scikit-learn digits and LeNet-5 on MNIST-5k (trained here, a few epochs).
Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_crossbar.py [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from frugalnn.core.data import load_digits, load_mnist5k  # noqa: E402
from frugalnn.core.models import build_model  # noqa: E402
from frugalnn.core.report import make_record, markdown_table, write_record  # noqa: E402
from frugalnn.errors import MissingAssetError  # noqa: E402
from frugalnn.hw.crossbar import CrossbarConfig, monte_carlo_accuracy  # noqa: E402
from frugalnn.hw.crossbar_cost import crossbar_cost, layer_shapes  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "crossbar.json"
SEED = 0
SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def costs(config: CrossbarConfig) -> list[dict]:
    nets = {
        "lenet5": (build_model("lenet5"), torch.zeros(1, 1, 28, 28)),
        "vgg-small": (build_model("vgg-small", in_channels=3, image_size=32), torch.zeros(1, 3, 32, 32)),
        "resnet20": (build_model("resnet20", in_channels=3, image_size=32), torch.zeros(1, 3, 32, 32)),
    }
    rows = []
    for name, (model, example) in nets.items():
        shapes = layer_shapes(model, example)
        resident = crossbar_cost(shapes, config, n_crossbars=10**9)
        for n in (resident.tiles, 64, 16, 4):
            c = crossbar_cost(shapes, config, n_crossbars=n)
            rows.append(
                {
                    "model": name,
                    "n_crossbars": n,
                    "tiles": c.tiles,
                    "fits": c.fits,
                    "cycles": c.cycles,
                    "read_cycles": c.read_cycles,
                    "latency_us": c.latency_ns / 1e3,
                    "energy_nj": c.energy_pj / 1e3,
                    "write_share": c.write_energy_pj / c.energy_pj,
                    "edp_vs_resident": c.edp_pj_ns / resident.edp_pj_ns,
                }
            )
    return rows


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in tqdm(range(epochs), desc="train", leave=False):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


def sweep(name: str, model, x, y, draws: int, config: CrossbarConfig, identity: dict) -> dict:
    digital = float((model(x).argmax(1) == y).float().mean())
    rows = []
    for sigma in tqdm(SIGMAS, desc=f"{name} sigma sweep"):
        t0 = time.perf_counter()
        cfg = CrossbarConfig(**{**asdict(config), "variation_sigma": sigma})
        mc = monte_carlo_accuracy(model, x, y, draws, cfg, torch.Generator().manual_seed(SEED))
        rows.append({"sigma": sigma, **{k: mc[k] for k in ("mean", "std", "min", "max")},
                     "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    return {"model": name, "digital_accuracy": digital, "draws": draws, "test_samples": len(x),
            "data": identity, "sweep": rows}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer draws and epochs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    config = CrossbarConfig()
    results: dict = {"costs": costs(config)}
    print(markdown_table(results["costs"], digits=4))

    draws = 5 if args.quick else 20
    digits = load_digits(seed=SEED)
    mlp = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )
    train(mlp, digits.x_train, digits.y_train, epochs=30, lr=1e-2)
    acc = [sweep("mlp-digits", mlp, digits.x_test, digits.y_test, draws, config, digits.identity)]
    try:
        mnist = load_mnist5k(seed=SEED)
        lenet = build_model("lenet5")
        train(lenet, mnist.x_train, mnist.y_train, epochs=2 if args.quick else 6, lr=2e-3)
        acc.append(sweep("lenet5-mnist5k", lenet, mnist.x_test, mnist.y_test, draws, config, mnist.identity))
    except MissingAssetError as err:  # the MLP sweep still stands without the MNIST asset
        print(f"skipping LeNet-5 / MNIST-5k: {err}")
    results["accuracy"] = acc
    for a in acc:
        print(f"\n{a['model']}: digital accuracy {a['digital_accuracy']:.4f}, {a['draws']} chips per sigma")
        print(markdown_table(a["sweep"], digits=4))
    record = make_record("crossbar", config=config, seed=SEED, data={a["model"]: a["data"] for a in acc},
                         results=results, threads=1, quick=args.quick)  # fmt: skip
    write_record(OUT, record)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
