"""Tables and plots of the ``crossbar`` experiment, from a stored record (no model runs): accuracy against
lognormal conductance variation (mean with the spread and worst chip), and energy-delay product per
inference against the number of crossbars available (reprogramming once the network does not fit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.core.report import markdown_table, save_figure, write_markdown


def write_report(out_dir: Path, record: dict[str, Any]) -> None:
    """``crossbar.md``, ``crossbar_accuracy.png`` and ``crossbar_cost.png`` from a crossbar record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    results = record["results"]
    md = ["# RRAM crossbars: cost per inference and accuracy under variation\n\n## Cost (128x128 tiles)\n\n"]
    md.append(markdown_table(results["costs"], digits=4))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for acc in results["accuracy"]:
        md.append(f"\n## {acc['model']}: digital accuracy {acc['digital_accuracy']:.4f}, {acc['draws']} chips "
                  "per sigma\n\n" + markdown_table(acc["sweep"], digits=4))  # fmt: skip
        sigma = [r["sigma"] for r in acc["sweep"]]
        mean = [100 * r["mean"] for r in acc["sweep"]]
        std = [100 * r["std"] for r in acc["sweep"]]
        (line,) = ax.plot(sigma, mean, marker="o", label=f"{acc['model']} mean of {acc['draws']} chips")
        ax.fill_between(sigma, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.2)  # fmt: skip
        ax.plot(sigma, [100 * r["min"] for r in acc["sweep"]], ":", color=line.get_color(),
                label=f"{acc['model']} worst chip")  # fmt: skip
        ax.axhline(100 * acc["digital_accuracy"], color=line.get_color(), lw=0.8, ls="--")
    ax.set_xlabel("lognormal conductance variation sigma")
    ax.set_ylabel("test accuracy (%); dashed: digital")
    ax.set_title("Accuracy on analog crossbars (band: ±1 sd over chips)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    save_figure(fig, out_dir / "crossbar_accuracy.png")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for model in dict.fromkeys(r["model"] for r in results["costs"]):
        pts = sorted(
            (r["n_crossbars"], r["edp_vs_resident"]) for r in results["costs"] if r["model"] == model
        )
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=model)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_yscale("log")
    ax.set_xlabel("crossbars available (EDP 1: every tile of the network resident)")
    ax.set_ylabel("energy-delay product / all-resident")
    ax.set_title("Reprogramming cost when the network does not fit")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    save_figure(fig, out_dir / "crossbar_cost.png")
    write_markdown(out_dir / "crossbar.md", "".join(md))
