"""The one writer of the Basis Sharing table and plot (``basis_sharing.md`` / ``.png``), for the
experiment's own rows and for the bench's merge of every stored perplexity record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frugalnn.core.report import line_plot, markdown_table, write_markdown
from frugalnn.experiments.basis_sharing.protocol import REFERENCE

# methods whose perplexity is more than this are drawn off scale (plain SVD and ASVD reach 1e6-1e9 on
# SmolLM2 and would squash the curves that are compared); the note under the plot gives their range
PPL_AXIS_MAX = 300.0


def write_report(out_dir: Path, rows: list[dict[str, Any]], title: str, reference: bool = True) -> None:
    """``basis_sharing.md`` (one row per configuration and ratio, gap to the reference code) and
    ``basis_sharing.png`` (perplexity vs ratio, log axis, the reference's curves dashed)."""
    table = [
        {
            "config": r["config_name"],
            "ratio": r["ratio"],
            "ppl": r["ppl"],
            "reference ppl": r.get("reference_ppl"),
            "gap %": 100 * (r["ppl"] / r["reference_ppl"] - 1) if r.get("reference_ppl") else None,
            "removed": r.get("ratio_achieved"),
            "compress s": r.get("compress_s"),
        }
        for r in rows
    ]
    write_markdown(out_dir / "basis_sharing.md", f"# {title}\n\n" + markdown_table(table))
    series: dict[str, tuple[list, list]] = {}
    for r in rows:
        if r["config_name"] != "dense":
            xs, ys = series.setdefault(r["config_name"], ([], []))
            xs.append(r["ratio"])
            ys.append(r["ppl"])
    styles = {}
    if reference:
        for name in ("basis-sharing", "svd-llm"):
            label = f"reference {name}"
            series[label] = (list(REFERENCE[name]), list(REFERENCE[name].values()))
            styles[label] = "--"
    dense = next((r["ppl"] for r in rows if r["config_name"] == "dense"), None)
    line_plot(
        out_dir / "basis_sharing.png",
        series,
        xlabel="share of projection parameters removed",
        ylabel="perplexity (Pride and Prejudice)" + (f"; dense {dense:.2f}" if dense else ""),
        title="SmolLM2-135M-Instruct",
        logy=True,
        ymax=PPL_AXIS_MAX,
        legend_outside=True,
        styles=styles,
    )


def merged_rows(results: Path) -> list[dict[str, Any]]:
    """Every stored perplexity point: the ``basis_sharing_ppl*.json`` records (the last one written for a
    configuration and ratio wins) and the refit + LoRA points of ``basis_sharing_recovery*.json`` (lr 1e-4,
    the recipe the CLI uses)."""
    best: dict[tuple[str, float], dict] = {}
    for path in sorted(results.glob("basis_sharing_ppl*.json")):
        record = json.loads(path.read_text())
        suffix = " (bf16 calibration)" if "calib_dtype=bfloat16" in record["config"].get("set", []) else ""
        for row in record["results"]:
            name = row["config_name"] + suffix
            best[(name, row["ratio"])] = {**row, "config_name": name, "file": path.name}
    for path in sorted(results.glob("basis_sharing_recovery*.json")):
        for row in json.loads(path.read_text())["results"]:
            if row.get("lora_lr") == 1e-4:
                name = f"{row['config_name']}+lora"
                best[(name, row["ratio"])] = {**row, "config_name": name, "file": path.name}
    return sorted(best.values(), key=lambda r: (r["config_name"] != "dense", r["config_name"], r["ratio"]))
