"""Tables and plots of the ``class-pruning`` experiment: mean and spread over seeds per (model, target,
method), accuracy against MACs and parameters, and the histogram of what class-aware pruning removes."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from frugalnn.core.report import bar_plot, line_plot, markdown_table, write_markdown
from frugalnn.experiments.class_pruning.protocol import VARIANTS


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
