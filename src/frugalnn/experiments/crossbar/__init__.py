"""Experiment ``crossbar``: the RRAM crossbar substrate (``hw.crossbar``, ``hw.crossbar_cost``): cost per
inference of LeNet-5, VGG-small and ResNet-20 when every tile fits and when only 64 / 16 / 4 crossbars can be
reprogrammed (the BasisN baseline), and accuracy under lognormal conductance variation (Monte-Carlo chips)
of an MLP on scikit-learn digits and LeNet-5 on MNIST-5k, trained here. Tables and plots: ``report.py``.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from frugalnn.experiments import register, row

SIGMAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def costs(config: Any) -> list[dict]:
    """Tiles, cycles, energy and EDP per inference, all tiles resident and with 64 / 16 / 4 crossbars."""
    from frugalnn.core.models import build_model
    from frugalnn.hw.crossbar_cost import crossbar_cost, layer_shapes

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
            rows.append({
                "model": name, "n_crossbars": n, "tiles": c.tiles, "fits": c.fits, "cycles": c.cycles,
                "read_cycles": c.read_cycles, "latency_us": c.latency_ns / 1e3, "energy_nj": c.energy_pj / 1e3,
                "write_share": c.write_energy_pj / c.energy_pj, "edp_vs_resident": c.edp_pj_ns / resident.edp_pj_ns,
            })  # fmt: skip
    return rows


def _train(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int
) -> None:
    import torch.nn.functional as F
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
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


def sweep(name: str, model, x, y, draws: int, config: Any, identity: dict, seed: int) -> dict:
    """Accuracy over ``draws`` chips at every sigma of ``SIGMAS``."""
    from tqdm import tqdm

    from frugalnn.hw.crossbar import CrossbarConfig
    from frugalnn.hw.crossbar_mc import monte_carlo_accuracy

    digital = float((model(x).argmax(1) == y).float().mean())
    rows = []
    for sigma in tqdm(SIGMAS, desc=f"{name} sigma sweep"):
        t0 = time.perf_counter()
        cfg = CrossbarConfig(**{**asdict(config), "variation_sigma": sigma})
        mc = monte_carlo_accuracy(model, x, y, draws, cfg, torch.Generator().manual_seed(seed))
        rows.append({"sigma": sigma, **{k: mc[k] for k in ("mean", "std", "min", "max")},
                     "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
    return {"model": name, "digital_accuracy": digital, "draws": draws, "test_samples": len(x),
            "data": identity, "sweep": rows}  # fmt: skip


def headline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Reprogramming cost with 16 crossbars per model, and accuracy at the largest sigma (mean, worst chip)
    against the digital model."""
    res = record["results"]
    rows = [row(f"{c['model']} on 16 crossbars: EDP / all-resident ({c['tiles']} tiles)", c["edp_vs_resident"])
            for c in res["costs"] if c["n_crossbars"] == 16]  # fmt: skip
    for acc in res["accuracy"]:
        last = acc["sweep"][-1]
        rows.append(row(f"{acc['model']} accuracy at sigma {last['sigma']}: mean of {acc['draws']} chips",
                        last["mean"], acc["digital_accuracy"]))  # fmt: skip
        rows.append(row(f"{acc['model']} accuracy at sigma {last['sigma']}: worst chip", last["min"],
                        acc["digital_accuracy"]))  # fmt: skip
    return rows


@register(
    "crossbar",
    "RRAM crossbars: cost per inference (tiles, reprogramming) and accuracy under conductance variation",
    order=70,
    headline=headline,
)
def run(
    out_dir: Path, quick: bool, seed: int, draws: int | None = None, lenet: bool = True
) -> list[dict[str, Any]]:
    """Full: 20 chips per sigma, LeNet-5 trained 6 epochs. Quick: 5 chips, 2 epochs. ``draws`` overrides
    the chips per sigma; ``lenet=False`` leaves out the LeNet-5 / MNIST-5k sweep (the end-to-end test)."""
    from frugalnn.core.data import load_digits, load_mnist5k
    from frugalnn.core.models import build_model
    from frugalnn.core.report import make_record, write_record
    from frugalnn.errors import MissingAssetError
    from frugalnn.experiments.crossbar.report import write_report
    from frugalnn.hw.crossbar import CrossbarConfig

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    config = CrossbarConfig()
    results: dict[str, Any] = {"costs": costs(config)}
    draws = draws or (5 if quick else 20)
    digits = load_digits(seed=seed)
    mlp = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
    )
    _train(mlp, digits.x_train, digits.y_train, 30, 1e-2, seed)
    acc = [sweep("mlp-digits", mlp, digits.x_test, digits.y_test, draws, config, digits.identity, seed)]
    if lenet:
        try:
            mnist = load_mnist5k(seed=seed)
            net = build_model("lenet5")
            _train(net, mnist.x_train, mnist.y_train, 2 if quick else 6, 2e-3, seed)
            acc.append(
                sweep("lenet5-mnist5k", net, mnist.x_test, mnist.y_test, draws, config, mnist.identity, seed)
            )
        except MissingAssetError as err:  # the MLP sweep still stands without the MNIST asset
            print(f"skipping LeNet-5 / MNIST-5k: {err}")
    results["accuracy"] = acc
    record = make_record("crossbar", config=config, seed=seed, data={a["model"]: a["data"] for a in acc},
                         results=results, threads=1, quick=quick)  # fmt: skip
    write_record(out_dir / "crossbar.json", record)
    write_report(out_dir, record)
    return headline(record)
