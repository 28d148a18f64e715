"""Ablation of the early-exit study: joint fine-tuning of backbone and heads (paper Sec. III-A trains
the whole network with the weighted loss; the main study trains heads on the frozen zoo backbone).

Each kind of head gets its own copy of the zoo backbone: heads are first trained on the frozen copy
(as in the main study), then backbone and heads are fine-tuned together with the full loss of their
kind (CE(final) + Σ 1/(N−i+1)·BCE for the paper's heads, the same with CE for the confidence
baseline), same epochs, learning rate, data and seed for both. The hybrid (ours, two heads per exit)
gets a third copy, fine-tuned with the sum of both head losses. Accuracy losses are measured against the ORIGINAL zoo network, not the fine-tuned one,
so a fine-tuned final classifier that got worse counts against the method. Simulation only (the real
skipping forward gives the simulated answers, see the main study).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.data import ImageData
from frugalnn.core.report import line_plot, make_record, markdown_table, write_markdown, write_record
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments.early_exit.report import MAIN_TOLERANCE, SWEEP_COLUMNS, add_matched, result_row
from frugalnn.methods.early_exit import (
    Config,
    EarlyExitModel,
    Outputs,
    attach_exits,
    collect_outputs,
    search_betas,
    search_hybrid,
    search_thresholds,
    simulate,
    summarize,
    train_heads,
    train_joint,
)

TOLERANCES = (0.0, 0.001, 0.002, 0.004, 0.005, 0.01, 0.02)


def _sweep(
    method: str, m: EarlyExitModel, val: Outputs, test: Outputs, zoo_acc: float, label: str
) -> list[dict[str, Any]]:
    rows = []
    for tol in TOLERANCES:
        taus = None
        if method == "confidence":
            values = search_thresholds(m, val, tol).values
        elif method == "hybrid":
            found, taus = search_hybrid(m, val, tol)
            values = found.values
        else:
            values = search_betas(m, val, tol).values
        res = summarize(m, simulate(m, test, values, taus=taus), test.labels)
        # the loss is against the original zoo network, not the jointly fine-tuned one
        rows.append(result_row(label, method, tol, values, taus, res, zoo_acc))
    return rows


def study_joint(
    name: str,
    data: ImageData,
    seed: int,
    epochs: int,
    train_images: int,
    label: str,
    head_pool: int = 4,
    lr: float = 0.005,
) -> dict[str, Any]:
    """Fine-tune (epochs over ``train_images`` training images) and sweep tolerances; see the module doc."""
    torch.manual_seed(seed)
    zoo, _, _ = load_pretrained(name)
    zoo.eval()
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(data.x_train), generator=gen)[:train_images]
    sub = dataclasses.replace(data, x_train=data.x_train[pick], y_train=data.y_train[pick])
    with torch.no_grad():
        zoo_acc = float(
            torch.cat([zoo(data.x_test[i : i + 512]) for i in range(0, len(data.x_test), 512)])
            .argmax(1)
            .eq(data.y_test)
            .double()
            .mean()
        )
    shape = (data.in_channels, data.image_size, data.image_size)
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for mode in ("exclusion", "confidence", "hybrid"):
        cfg = Config(
            mode=mode, head_pool=head_pool, input_shape=shape, seed=seed, joint_epochs=epochs, joint_lr=lr
        )
        m = attach_exits(copy.deepcopy(zoo), cfg)[0]
        started = time.perf_counter()
        train_heads(m, sub, progress=False)
        train_joint(m, sub, progress=True)
        m.eval()
        val = collect_outputs(m, data.x_val, data.y_val)
        test = collect_outputs(m, data.x_test, data.y_test)
        final_acc = float((test.final_logits.argmax(1) == test.labels).double().mean())
        info[mode] = {"seconds": time.perf_counter() - started, "final_classifier_test_accuracy": final_acc}
        rows += _sweep(mode, m, val, test, zoo_acc, label)
    add_matched(rows)
    main = {
        method: next(r for r in rows if r["method"] == method and r["tolerance"] == MAIN_TOLERANCE)
        for method in ("exclusion", "confidence", "hybrid")
    }
    return {
        "model": label,
        "backbone": name,
        "joint": {"epochs": epochs, "train_images": len(sub.y_train), "lr": lr, **info},
        "no_exit_accuracy": zoo_acc,
        "sweep": rows,
        "main": main,
    }


def write_joint_report(
    results: list[dict[str, Any]], out_dir: Path, config: dict, seed: int, data_id: dict
) -> None:
    """docs/results/early_exit/early_exit_joint.{json,md} and an accuracy-vs-MACs plot per model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_record(
        out_dir / "early_exit_joint.json",
        make_record("early-exit/joint", config=config, seed=seed, data=data_id, results=results),
    )
    md = ["# Early exit after joint fine-tuning of backbone and heads (Fashion-MNIST)\n\n"]
    md.append(
        "Losses against the original zoo network; `hybrid` is ours (not in the paper); rival MACs: the "
        "confidence exit's (also fine-tuned) for exclusion/hybrid rows, the exclusion's for confidence rows.\n"
    )
    for r in results:
        md.append(f"\n## {r['model']}: zoo accuracy {r['no_exit_accuracy']:.4f}; {r['joint']}\n\n")
        md.append(markdown_table(r["sweep"], SWEEP_COLUMNS, 4))
        series = {}
        for method in ("exclusion", "confidence", "hybrid"):
            pts = sorted(
                (p["macs_per_image"] / 1e6, 100 * p["test_accuracy"])
                for p in r["sweep"]
                if p["method"] == method
            )
            series[method] = ([p[0] for p in pts], [p[1] for p in pts])
        line_plot(
            out_dir / f"early_exit_joint_acc_vs_macs_{r['model']}.png",
            series,
            xlabel="MACs per image (M, heads included)",
            ylabel="test accuracy (%)",
            title=f"{r['model']} after joint fine-tuning: accuracy vs MACs",
        )
    write_markdown(out_dir / "early_exit_joint.md", "".join(md))


def run_joint(
    out_dir: Path,
    seed: int,
    epochs: int,
    models: tuple[str, ...] = ("vgg-small",),
    images: int = 20000,
    lr: float = 0.005,
) -> list[dict[str, Any]]:
    """The joint fine-tuning ablation for ``models``, merged into ``out_dir/early_exit_joint.json`` (the
    results of other settings already there are kept)."""
    import json

    from frugalnn.core.data import load_fashion_mnist

    data = load_fashion_mnist(seed=0)
    previous = out_dir / "early_exit_joint.json"
    results = json.loads(previous.read_text())["results"] if previous.exists() else []
    for name in models:
        label = f"{name}-joint-e{epochs}-lr{lr:g}"
        res = study_joint(name, data, seed, epochs, images, label, lr=lr)
        results = [r for r in results if r["model"] != label] + [res]
        config = {"runs": [r["joint"] | {"model": r["model"]} for r in results]}
        write_joint_report(results, out_dir, config, seed, data.identity)
    return results
