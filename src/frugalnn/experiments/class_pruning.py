"""Class-aware pruning vs L1 and class-agnostic Taylor at equal MACs (arXiv 2312.05875's claim, small scale).

From the zoo's Fashion-MNIST baselines (ResNet-20, VGG-small): prune each to the same MAC targets with
the three criteria and the same fine-tuning budget; report test accuracy against MACs and parameters,
measured CPU throughput, and the histogram of what class-aware pruning removes.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from frugalnn.core.checkpoint import load_checkpoint
from frugalnn.core.data import ImageData, load_fashion_mnist
from frugalnn.core.measure import accuracy, count_macs, count_params, fastest_seconds
from frugalnn.core.report import (
    bar_plot,
    line_plot,
    make_record,
    markdown_table,
    write_markdown,
    write_record,
)
from frugalnn.core.train import train
from frugalnn.core.zoo import load_pretrained
from frugalnn.experiments import register
from frugalnn.methods.class_pruning import BUDGETS, METHODS, Config, prune, save_pruned
from frugalnn.methods.class_pruning.prune import finetune_config

# Fine-tuning budgets and the variants a table names (criterion + config change) are the method's
# presets (ClassPruningConfig.PRESETS and BUDGETS in methods/class_pruning/config.py).
FULL_BUDGET, LONG_BUDGET, XLONG_BUDGET, QUICK_BUDGET = (
    BUDGETS[k] for k in ("full", "long", "xlong", "quick")
)
VARIANTS: dict[str, dict[str, Any]] = {
    name: {"method": "class-aware", **overrides}
    for name, overrides in Config.PRESETS.items()
    if name not in ("paper", "ours")
}


def run_one(
    model_name: str,
    method: str,
    target: float,
    seed: int,
    data: ImageData,
    budget: dict[str, Any],
    save_dir: Path | None = None,
    progress: bool = False,
    round_to: int = 4,
    base: Path | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Prune one baseline (the zoo's, or the checkpoint ``base``) with one method (a VARIANTS name, or
    ``dense``: the same fine-tuning budget without pruning, the control) to one target; a flat row."""
    dense, spec, _ = load_checkpoint(base) if base else load_pretrained(model_name)
    overrides = {**VARIANTS.get(method, {"method": "l1"}), **budget}
    # ``target`` is the share of MACs kept (the bench plans' key); the config's ratio is the share removed
    config = Config(ratio=round(1.0 - target, 12), seed=seed, round_to=round_to, device=device, **overrides)
    start = time.perf_counter()
    if method == "dense":
        pruned, record = _dense_control(dense, config, data, progress)
    else:
        pruned, record = prune(dense, config, data, progress=progress)
        record["test_accuracy"] = accuracy(pruned, data.x_test, data.y_test)
    dense_test = accuracy(dense, data.x_test, data.y_test)
    row = {
        "model": model_name,
        "method": method,
        "target_flops": target,
        "seed": seed,
        "round_to": round_to,
        "dense_test_accuracy": dense_test,
        "test_accuracy": record["test_accuracy"],
        "accuracy_drop_points": 100 * (dense_test - record["test_accuracy"]),
        "dense_macs": record["dense"]["macs"],
        "macs": record["macs"],
        "mac_reduction": record["mac_reduction"],
        "dense_params": record["dense"]["params"],
        "params": record["params"],
        "train_steps": record["train_steps"],
        "device": device,
        "seconds": time.perf_counter() - start,
        "record": record,
    }
    if save_dir is not None:
        folder = save_dir / f"{model_name}-{method}-{target}-r{round_to}-s{seed}"
        save_pruned(folder, pruned, spec, {"prune": record, "data": data.identity})
        row["checkpoint"] = str(folder)
    return row


def _dense_control(
    model: nn.Module, config: Config, data: ImageData, progress: bool
) -> tuple[nn.Module, dict]:
    """The unpruned model fine-tuned for the same number of steps: what the accuracy drop is measured from."""
    model = copy.deepcopy(model)
    steps = config.pretrain_steps + config.iterations * config.finetune_steps + config.final_steps
    tc = finetune_config(config, steps, len(data.x_train), config.seed * 1000 + 500)
    no_val = replace(data, x_val=data.x_val[:0], y_val=data.y_val[:0])
    train(model, no_val, tc, progress=progress, evaluate_test=False)
    model.cpu()
    macs, params = count_macs(model, data.x_test[:1]), count_params(model)
    record = {
        "dense": {"macs": macs, "params": params}, "macs": macs, "params": params, "mac_reduction": 0.0,
        "train_steps": steps, "test_accuracy": accuracy(model, data.x_test, data.y_test), "histogram": None,
        "widths": {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
    }  # fmt: skip
    return model, record


def fastest_calls(
    calls: dict[str, Callable[[], object]], items: int, rounds: int = 3, repeats: int = 3, clock: str = "wall"
) -> dict[str, float]:
    """Items/s per call from ``core.measure.fastest_seconds`` (the median moved the dense/pruned ratio by
    up to 40% under load on this 2-core machine; ``clock="thread"``: docs/class_pruning.md)."""
    return {name: items / t for name, t in fastest_seconds(calls, rounds, repeats, clock).items()}


def speed(
    models: dict[str, nn.Module], x: torch.Tensor, rounds: int = 3, repeats: int = 3
) -> dict[str, float]:
    """Images/s per model at 1 thread in eager mode, wall clock (``fastest_calls``)."""
    for m in models.values():
        m.eval()
    calls = {name: (lambda m=m: m(x)) for name, m in models.items()}
    return fastest_calls(calls, len(x), rounds, repeats)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds per (model, target, method); the drop is measured from the dense model
    fine-tuned with the same budget (the ``dense`` control) when it was run, else from the starting model."""
    control = {(r["model"], r["seed"]): r["test_accuracy"] for r in rows if r["method"] == "dense"}
    control_any = {m: a for (m, _), a in sorted(control.items(), reverse=True)}  # seed 0's when there
    for r in rows:
        ref = control.get((r["model"], r["seed"]), control_any.get(r["model"]))
        r["accuracy_drop_points"] = 100 * (
            (ref if ref is not None else r["dense_test_accuracy"]) - r["test_accuracy"]
        )
        r["drop_measured_from"] = "dense fine-tuned, same budget" if ref is not None else "starting model"
    keys = sorted(
        {(r["model"], r["target_flops"], r["method"]) for r in rows}, key=lambda k: (k[0], -k[1], k[2])
    )
    table = []
    for model, target, method in keys:
        group = [r for r in rows if (r["model"], r["target_flops"], r["method"]) == (model, target, method)]
        accs = [100 * r["test_accuracy"] for r in group]
        table.append(
            {
                "model": model,
                "MAC cut %": 100 * statistics.mean(r["mac_reduction"] for r in group),
                "method": method,
                "seeds": len(group),
                "test acc %": statistics.mean(accs),
                "spread (sd)": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "drop (points)": statistics.mean(r["accuracy_drop_points"] for r in group),
                "params": int(statistics.mean(r["params"] for r in group)),
                "MACs (M)": statistics.mean(r["macs"] for r in group) / 1e6,
            }
        )
    return table


def write_report(
    out_dir: Path, rows: list[dict[str, Any]], stem: str = "class_pruning", plots: bool = True
) -> dict[str, Any]:
    """Markdown table, accuracy-vs-MACs and accuracy-vs-params curves, class-importance histogram."""
    table = summarize(rows)
    text = "# Class-aware pruning vs L1 vs Taylor (Fashion-MNIST)\n\n" + markdown_table(table, digits=2)
    write_markdown(out_dir / f"{stem}.md", text)
    hist = {  # what class-aware removes in its first round, per model
        r["model"]: r["record"]["histogram"]
        for r in rows
        if r["method"] == "class-aware" and r["record"].get("histogram")
    }
    if not plots:
        return {"table": table, "histogram": hist}
    for model in sorted({r["model"] for r in rows}):
        for x_key, xlabel in (("MACs (M)", "MACs per image (M)"), ("params", "parameters")):
            series = {}
            for method in VARIANTS:
                pts = sorted(
                    (t[x_key], t["test acc %"])
                    for t in table
                    if t["model"] == model and t["method"] == method
                )
                if pts:
                    series[method] = ([p[0] for p in pts], [p[1] for p in pts])
            if series:
                tag = "macs" if x_key.startswith("MAC") else "params"
                line_plot(
                    out_dir / f"{stem}_{model}_{tag}.png", series, xlabel=xlabel, ylabel="test accuracy (%)",
                    title=f"{model}, Fashion-MNIST",
                )  # fmt: skip
    for model, h in hist.items():
        bar_plot(
            out_dir / f"{stem}_{model}_histogram.png", [str(b) for b in h["bins"]],
            {"kept": h["kept"], "removed": h["removed"]},
            ylabel="filters (first round)", title=f"{model}: class-aware score (≈ classes a filter matters for)",
        )  # fmt: skip
    return {"table": table, "histogram": hist}


@register(
    "class-pruning", "class-aware vs L1 vs Taylor filter pruning at equal MACs (ResNet-20, VGG-small)", 30
)
def run(out_dir: Path, quick: bool, seed: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    data = load_fashion_mnist(seed=0)
    models, targets, budget = ("resnet20", "vgg-small"), (0.4, 0.2, 0.1), FULL_BUDGET
    if quick:  # the demo: one model, one target, a few steps, test on 1,000 images
        models, targets, budget = ("resnet20",), (0.4,), QUICK_BUDGET
        data = replace(data, x_test=data.x_test[:1000], y_test=data.y_test[:1000])
    rows = []
    for model_name in models:
        if not quick:  # the control: the dense model fine-tuned with the same budget
            rows.append(run_one(model_name, "dense", 1.0 - 1e-9, seed, data, budget))
        for target in targets:
            for method in METHODS:
                print(f"  {model_name} {method} keep {target:.0%} of MACs", flush=True)
                rows.append(run_one(model_name, method, target, seed, data, budget))
                r = rows[-1]
                print(f"    test acc {r['test_accuracy']:.4f} (dense {r['dense_test_accuracy']:.4f}), "
                      f"MAC cut {r['mac_reduction']:.1%}, {r['seconds']:.0f} s", flush=True)  # fmt: skip
    report = write_report(out_dir, rows)
    config = {"models": models, "targets": targets, "budget": budget, "quick": quick}
    write_record(
        out_dir / "class_pruning.json",
        make_record(
            "class-pruning", config=config, seed=seed, data=data.identity, results={"rows": rows, **report}
        ),
    )
    return {
        f"{t['model']}/{t['method']}/{t['MAC cut %']:.0f}%": round(t["test acc %"], 2)
        for t in report["table"]
    }
