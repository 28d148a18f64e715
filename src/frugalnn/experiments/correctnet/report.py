"""Table, accuracy-vs-σ plot with percentile bands, and the headline rows of the CorrectNet experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.core.report import markdown_table, save_figure, write_markdown

COLUMNS = ("model", "sigma", "variant", "draws", "acc_mean", "acc_p5", "acc_worst", "clean_acc",
           "overhead_macs_pct", "overhead_params_pct", "placement")  # fmt: skip


def collapse_sigma(rows: list[dict[str, Any]], model: str, fraction: float) -> float | None:
    """Smallest σ at which the plain network's mean falls below ``fraction`` of its clean accuracy."""
    plain = sorted(
        (r for r in rows if r["model"] == model and r["variant"] == "plain"), key=lambda r: r["sigma"]
    )
    return next((r["sigma"] for r in plain if r["acc_mean"] < fraction * r["clean_acc"]), None)


def _row(rows: list[dict[str, Any]], model: str, sigma: float, variant: str) -> dict[str, Any] | None:
    return next((r for r in rows if (r["model"], r["sigma"], r["variant"]) == (model, sigma, variant)), None)


def headline(rows: list[dict[str, Any]], s: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for model in s["models"]:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        sigma = collapse_sigma(rows, model, s["collapse_fraction"])
        at = sigma if sigma is not None else max(r["sigma"] for r in mine)
        plain, corr = _row(rows, model, at, "plain"), _row(rows, model, at, "correctnet")
        if plain is None or corr is None:
            continue
        clean = plain["clean_acc"]
        note = "" if sigma is not None else " (plain never fell below the collapse fraction)"
        out.append({"metric": f"{model}: CorrectNet mean / clean at σ={at}{note}", "ours": corr["acc_mean"] / clean,
                    "baseline": plain["acc_mean"] / clean, "target": ">= 0.95 (plain < 0.30)",
                    "met": sigma is not None and corr["acc_mean"] >= 0.95 * clean})  # fmt: skip
        out.append({"metric": f"{model}: compensation overhead at σ={at} (% MACs)", "ours": corr["overhead_macs_pct"],
                    "baseline": None, "target": "< 5", "met": corr["overhead_macs_pct"] < 5.0})  # fmt: skip
    return out


def write_report(
    out_dir: Path, rows: list[dict[str, Any]], s: dict[str, Any], timings: dict[str, Any]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = [{**r, "placement": ",".join(r.get("placement", [])) or "-"} for r in rows]
    text = ["# CorrectNet: accuracy under RRAM variation (Fashion-MNIST)\n",
            f"Chips per setting: {s['draws']}; first test images per chip: {s['images']}; crossbar: 128×128 tiles, "
            "4-bit cells, 7-bit DAC, 9-bit ADC, output noise 0.06, lognormal σ per cell.\n",
            markdown_table(table, COLUMNS), "\n## Headline\n", markdown_table(headline(rows, s))]  # fmt: skip
    if timings:
        text += ["\n## Monte-Carlo cost (1 torch thread, shared machine)\n",
                 markdown_table([{"model": m, **t} for m, t in timings.items()])]  # fmt: skip
    write_markdown(out_dir / "correctnet.md", "\n".join(text))
    models = [m for m in s["models"] if any(r["model"] == m for r in rows)]
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4), dpi=120, squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        for variant in ("plain", "lipschitz", "correctnet", "comp-all"):
            pts = sorted(
                (r for r in rows if r["model"] == model and r["variant"] == variant), key=lambda r: r["sigma"]
            )
            if not pts:
                continue
            xs = [r["sigma"] for r in pts]
            p95 = [float(np.percentile(r["per_draw"], 95)) for r in pts]
            ax.plot(xs, [r["acc_mean"] for r in pts], marker="o", label=variant)
            ax.fill_between(xs, [r["acc_p5"] for r in pts], p95, alpha=0.15)
        clean = next(r["clean_acc"] for r in rows if r["model"] == model)
        ax.axhline(clean, color="k", lw=0.8, ls="--", label="digital")
        ax.axhline(0.95 * clean, color="g", lw=0.8, ls=":", label="95% of digital")
        ax.set_xlabel("lognormal σ")
        ax.set_ylabel("test accuracy (mean; band 5th–95th percentile)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, out_dir / "correctnet.png")
