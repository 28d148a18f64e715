"""Reference baselines: LeNet-5, VGG-small and ResNet-20 on Fashion-MNIST.

Full form: the zoo's trained models (built with their recipe when missing), their test accuracy,
parameters, MACs, training and inference throughput. Quick form (the demo): the same table from
the bundled zoo weights, with throughput measured on a few batches and a short LeNet-5 training run
that shows the trainer working from scratch.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from frugalnn.core.data import load_fashion_mnist
from frugalnn.core.measure import accuracy, count_macs, count_params, throughput
from frugalnn.core.models import build_model
from frugalnn.core.report import bar_plot, make_record, markdown_table, write_markdown, write_record
from frugalnn.core.train import TrainConfig, augment_batch, train
from frugalnn.core.zoo import RECIPES, build_baseline, load_pretrained, zoo_path
from frugalnn.experiments import register, row


def training_throughput(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int
) -> dict[str, float]:
    """Images/s of full SGD steps (augmentation, forward, backward, update) at the recipe's batch size."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    model.train()

    def run() -> None:
        for i in range(steps):
            xb = augment_batch(x[i * batch : (i + 1) * batch], gen)
            loss = F.cross_entropy(model(xb), y[i * batch : (i + 1) * batch])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return throughput(run, batch * steps, repeats=3, warmup=1)


def headline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Test accuracy, MACs and inference throughput per zoo model (and the from-scratch check)."""
    rows = []
    for r in record["results"]["models"]:
        rows.append(row(f"{r['model']} test accuracy ({r['test_images']} images)", r["test_acc"]))
        rows.append(row(f"{r['model']} MACs per image (M)", r["macs_per_image"] / 1e6))
        rows.append(row(f"{r['model']} inference images/s (1 thread)", r["infer_img_per_s"]))
    scratch = record["results"].get("from_scratch") or {}
    if scratch:
        rows.append(row(f"{scratch['model']} from scratch, {scratch['steps']} steps: val accuracy",
                        scratch["val_accuracy"]))  # fmt: skip
    return rows


def run(out_dir: Path, quick: bool, seed: int, thread_counts: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Quick: the bundled zoo weights, 2,000 test images, short throughput runs, 150 LeNet-5 steps from
    scratch. Full: every zoo model (built with its recipe when missing) on the whole test split.
    ``thread_counts``: also measure training throughput at each of these torch thread counts."""
    data = load_fashion_mnist(seed=0)
    rows = []
    for name in RECIPES:
        if zoo_path(name) is None and not quick:
            build_baseline(name, seed, data)
        if zoo_path(name) is None:
            print(f"  {name}: no trained weights (build with `frugalnn zoo build {name}`); skipped")
            continue
        model, spec, meta = load_pretrained(name)
        model.eval()
        x_test = data.x_test[:2000] if quick else data.x_test
        acc = accuracy(model, x_test, data.y_test[: len(x_test)])
        infer = throughput(lambda m=model: m(data.x_test[:256]), 256, repeats=3 if quick else 7)
        train_tp = training_throughput(build_model(spec), data.x_train, data.y_train, 128, 2 if quick else 8)
        rows.append(
            {
                "model": name,
                "test_acc": acc,
                "test_images": len(x_test),
                "params": count_params(model),
                "macs_per_image": count_macs(model, data.x_test[:1]),
                "train_img_per_s": train_tp["items_per_s"],
                "infer_img_per_s": infer["items_per_s"],
                "epochs": meta.get("train_config", {}).get("epochs"),
                "train_seconds": meta.get("result", {}).get("seconds"),
            }
        )
        print(
            f"  {name}: test acc {acc:.4f}, {rows[-1]['macs_per_image'] / 1e6:.2f} M MACs, "
            f"train {train_tp['items_per_s']:.0f} img/s, infer {infer['items_per_s']:.0f} img/s",
            flush=True,
        )
    scratch = {}
    if quick:  # the trainer from scratch, briefly: LeNet-5, 150 steps
        torch.manual_seed(seed)
        lenet = build_model("lenet5")
        cfg = TrainConfig(epochs=1, batch_size=128, lr=0.05, max_steps_per_epoch=150, seed=seed)
        result = train(lenet, data, cfg, progress=True, evaluate_test=False)
        scratch = {
            "model": "lenet5",
            "steps": 150,
            "val_accuracy": result.val_accuracy,
            "images_per_s": result.images_per_s,
        }
        print(f"  lenet5 from scratch, 150 steps: val acc {result.val_accuracy:.4f}")
    by_threads: dict[str, dict[int, float]] = {}
    threads_before = torch.get_num_threads()
    for name in RECIPES if thread_counts else ():
        by_threads[name] = {}
        for threads in thread_counts:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            tp = training_throughput(build_model(name), data.x_train, data.y_train, 128, 8)
            by_threads[name][threads] = round(tp["items_per_s"], 1)
        print(f"  {name}: training img/s by threads {by_threads[name]}")
    torch.set_num_threads(threads_before)
    results: dict[str, Any] = {"models": rows, "from_scratch": scratch}
    if by_threads:
        results["train_img_per_s_by_threads"] = by_threads
    record = make_record(
        "baselines",
        config={"quick": quick, "recipes": {k: asdict(v) for k, v in RECIPES.items()}},
        seed=seed,
        data=data.identity,
        results=results,
        threads=threads_before,
    )
    write_record(out_dir / "baselines.json", record)
    table = markdown_table(
        rows,
        ["model", "test_acc", "params", "macs_per_image", "train_img_per_s", "infer_img_per_s", "epochs"],
    )
    write_markdown(out_dir / "baselines.md", "# Fashion-MNIST baselines\n\n" + table)
    if rows:
        bar_plot(
            out_dir / "baselines_accuracy.png",
            [r["model"] for r in rows],
            {"test accuracy": [r["test_acc"] for r in rows]},
            ylabel="test accuracy",
        )
    return headline(record)


register(
    "baselines",
    "LeNet-5 / VGG-small / ResNet-20 on Fashion-MNIST: accuracy, params, MACs, throughput",
    order=10,
    headline=headline,
)(run)
