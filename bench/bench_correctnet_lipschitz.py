"""CorrectNet ablation: does the Lipschitz regulariser alone make LeNet-5 robust to RRAM variation?
Fine-tunes the zoo LeNet-5 with λ in {0, 1e-3, 1e-2, 1e-1, 1} (300 SGD steps, β = each layer's mean
squared singular value) and scores each on 20 chips × the first 500 test images at σ = 0.5 and 0.9.
Writes docs/results/correctnet/lipschitz_sweep.{json,md}. About 2 minutes on one thread.

OMP_NUM_THREADS=1 .venv/bin/python bench/bench_correctnet_lipschitz.py
"""

import argparse
from pathlib import Path

import torch

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.measure import accuracy
from frugalnn.core.report import make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.correctnet.protocol import lipschitz_tuned
from frugalnn.hw.crossbar_mc import monte_carlo_accuracy
from frugalnn.methods.correctnet import CorrectNetConfig

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "correctnet"
WEIGHTS = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
SIGMAS = (0.5, 0.9)

if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    torch.set_num_threads(1)
    data = load_fashion_mnist(seed=0)
    model, _, _ = load_pretrained("lenet5")
    x, y = data.x_test[:500], data.y_test[:500]
    cfg = CorrectNetConfig(lipschitz_steps=300)
    rows = []
    for weight in WEIGHTS:
        tuned = lipschitz_tuned(model, cfg, data, 0, weight, progress=False)[0] if weight else model.eval()
        row = {"lipschitz_weight": weight, "clean_acc": accuracy(tuned, x, y)}
        for sigma in SIGMAS:
            mc = monte_carlo_accuracy(tuned, x, y, 20, cfg.crossbar(sigma), torch.Generator().manual_seed(1))
            row[f"mean_sigma_{sigma}"] = mc["mean"]
            row[f"p5_sigma_{sigma}"] = mc["p5"]
        rows.append(row)
        print(row, flush=True)
    config = {"model": "lenet5", "weights": WEIGHTS, "sigmas": SIGMAS, "chips": 20, "images": 500,
              "steps": cfg.lipschitz_steps, "lr": cfg.lipschitz_lr, "threads": 1}  # fmt: skip
    about = "Lipschitz regulariser alone: LeNet-5 accuracy under variation against the weight λ"
    write_record(OUT / "lipschitz_sweep.json", make_record("correctnet-lipschitz-sweep", config=config, seed=0,
                 data=data.identity, results={"rows": rows}, about=about))  # fmt: skip
    write_markdown(
        OUT / "lipschitz_sweep.md", f"# {about}\n\n{markdown_table(rows, list(rows[0]), digits=3)}\n"
    )
