"""Rows (mean ± std over seeds), headline rows against the targets, the table and the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from frugalnn.core.report import markdown_table, save_figure

PRIOR = ("power", "square", "product", "quadranet", "fan", "full")
OVERHEAD_PCT = 2.0
GAIN_PT = 0.5
THROUGHPUT = 1 / 1.3


def aggregate(runs: list[dict[str, Any]], speed: dict[tuple[str, str], float]) -> list[dict[str, Any]]:
    """One row per (model, form): accuracy mean ± std over seeds, cost, throughput, overhead vs linear.

    ``speed[(model, form)]`` is the interleaved step timing (``protocol.time_training_steps``);
    ``run_img_s`` is the median wall-clock rate of the training runs, which other jobs on the shared
    machine disturb."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["form"]), []).append(r)
    rows = []
    for (model, form), rs in groups.items():
        acc = np.array([r["acc"] for r in rs])
        rows.append({
            "model": model, "form": form, "params": rs[0]["params"], "macs": rs[0]["macs"],
            "acc_mean": float(acc.mean()), "acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "seeds": len(rs), "train_img_s": speed.get((model, form), float("nan")),
            "run_img_s": float(np.median([r.get("run_img_s", r.get("train_img_s", 0.0)) for r in rs])),
            "width": rs[0]["width"],
        })  # fmt: skip
    for row in rows:
        lin = next((r for r in rows if r["model"] == row["model"] and r["form"] == "linear"), None)
        if lin:
            row["extra_params_pct"] = 100 * (row["params"] / lin["params"] - 1)
            row["extra_macs_pct"] = 100 * (row["macs"] / lin["macs"] - 1)
            row["speed_vs_linear"] = row["train_img_s"] / lin["train_img_s"]
    order = ["linear", "linear-wide", "efficient", "efficient-r4", "efficient-all", *PRIOR]

    def key(r: dict[str, Any]) -> tuple:
        base, _, schedule = r["form"].partition("@")
        return (r["model"], schedule, order.index(base) if base in order else 99, r["form"])

    return sorted(rows, key=key)


def _prior(form: str) -> bool:
    return form.partition("@")[0] in PRIOR


def headline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    heads = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["form"]: r for r in rows if r["model"] == model}
        eff, lin = by.get("efficient"), by.get("linear")
        if not eff or not lin:
            continue
        overhead = max(eff["extra_params_pct"], eff["extra_macs_pct"])
        gain = 100 * (eff["acc_mean"] - lin["acc_mean"])
        heads.append({"metric": f"{model}: efficient vs linear test accuracy (%)", "ours": 100 * eff["acc_mean"],
                      "baseline": 100 * lin["acc_mean"], "target": f">= +{GAIN_PT} pt at <= {OVERHEAD_PCT}% extra",
                      "met": bool(gain >= GAIN_PT and overhead <= OVERHEAD_PCT)})  # fmt: skip
        for label in sorted(f for f in by if f.startswith("efficient@")):  # the other schedules
            other = by.get("linear@" + label.partition("@")[2])
            if other:
                heads.append({"metric": f"{model}: {label} vs {other['form']} test accuracy (%)", "ours": 100 * by[label]["acc_mean"],
                              "baseline": 100 * other["acc_mean"], "target": f">= +{GAIN_PT} pt",
                              "met": bool(100 * (by[label]["acc_mean"] - other["acc_mean"]) >= GAIN_PT)})  # fmt: skip
        heads.append({"metric": f"{model}: efficient extra params / MACs, the larger (%)", "ours": overhead,
                      "baseline": None, "target": f"<= {OVERHEAD_PCT}%", "met": bool(overhead <= OVERHEAD_PCT)})  # fmt: skip
        priors = [r for f, r in by.items() if _prior(f)]
        if priors:  # each prior form at its better schedule vs the efficient form at its better one
            best = max(priors, key=lambda r: r["acc_mean"])
            mine = max(
                (r for f, r in by.items() if f.partition("@")[0] == "efficient"), key=lambda r: r["acc_mean"]
            )
            heads.append({"metric": f"{model}: best efficient ({mine['form']}) vs best prior form ({best['form']}) at equal params (%)",
                          "ours": 100 * mine["acc_mean"], "baseline": 100 * best["acc_mean"], "target": ">= every prior form",
                          "met": bool(mine["acc_mean"] >= best["acc_mean"])})  # fmt: skip
        if "linear-wide" in by:
            wide = by["linear-wide"]
            heads.append({"metric": f"{model}: efficient vs wider linear at equal params (%)", "ours": 100 * eff["acc_mean"],
                          "baseline": 100 * wide["acc_mean"], "target": None, "met": None})  # fmt: skip
        heads.append({"metric": f"{model}: training images/s, efficient / linear", "ours": eff["speed_vs_linear"],
                      "baseline": 1.0, "target": f">= {THROUGHPUT:.3f}", "met": bool(eff["speed_vs_linear"] >= THROUGHPUT)})  # fmt: skip
    return heads


def plot(path: Path, rows: list[dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.2), dpi=120, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for r in (r for r in rows if r["model"] == model):
            ax.errorbar(r["params"], 100 * r["acc_mean"], yerr=100 * r["acc_std"], fmt="o", capsize=3)
            ax.annotate(
                r["form"],
                (r["params"], 100 * r["acc_mean"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.set_title(f"{model} on Fashion-MNIST")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


COLUMNS = ["model", "form", "width", "params", "extra_params_pct", "macs", "extra_macs_pct", "acc_mean",
           "acc_std", "seeds", "train_img_s", "speed_vs_linear", "run_img_s"]  # fmt: skip


def write_report(
    out_dir: Path, tag: str, rows: list[dict[str, Any]], heads: list[dict[str, Any]], quick: bool
) -> str:
    plot(out_dir / f"{tag}.png", rows)
    scale = "quick settings (a demo, not a result)" if quick else "full settings"
    return (
        f"# Efficient quadratic neurons ({scale})\n\n"
        "Fashion-MNIST, every network trained from scratch with the same schedule per model; test accuracy "
        "mean ± std over seeds; params and MACs per image counted by `core.measure` (squares and products "
        "included); training images/s: fastest SGD step on a batch of 128, CPU time of the calling thread, 1 torch "
        "thread, rows interleaved, on a shared 2-core machine (`run_img_s`: wall-clock rate of the runs, "
        "disturbed by other jobs).\n\n"
        + markdown_table(rows, COLUMNS, digits=4)
        + "\n## Against the targets\n\n"
        + markdown_table(heads, digits=3)
        + f"\n![accuracy vs parameters]({tag}.png)\n"
    )
