"""Reporting for the early-exit study (``study.py``): the equal-accuracy comparison, the
issue's three targets, JSON records, Markdown tables and plots. Pure functions of the study's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from frugalnn.core.report import (
    bar_plot,
    line_plot,
    make_record,
    markdown_table,
    write_markdown,
    write_record,
)

TARGET_LOSS_PT = 0.5  # the target: at most 0.5 point TEST accuracy loss
# The main operating point is searched with 0.4 pt of validation tolerance, not 0.5: the validation
# estimate of the loss has a standard error of about 0.1 pt (paired difference on 5 000 images,
# recorded per sweep row as val_loss_se_pt), so a setting that just meets 0.5 pt on validation meets
# it on test only about half the time (a 0.5 pt search gave 0.56 pt on test for ResNet-20). Searching
# one standard error below the target makes the test-set target a ~84 % one-sided bound instead.
MAIN_TOLERANCE = 0.004

# the columns of a sweep table (one searched setting per row), shared by the main and the joint reports
SWEEP_COLUMNS = [
    "method",
    "tolerance",
    "values",
    "taus",
    "test_accuracy",
    "accuracy_loss_pt",
    "macs_per_image",
    "mac_reduction",
    "other_method_macs_at_same_accuracy",
    "val_accuracy_loss_pt",
    "val_loss_se_pt",
]


def result_row(
    label: str,
    method: str,
    tolerance: float,
    values: list,
    taus: list | None,
    res: dict,
    reference_accuracy: float,
) -> dict[str, Any]:
    """One searched setting on the test set; the loss is in points against ``reference_accuracy``."""
    return {
        "model": label,
        "method": method,
        "tolerance": tolerance,
        "values": [round(v, 4) for v in values],
        "taus": [round(v, 4) for v in taus] if taus else None,
        "test_accuracy": res["accuracy"],
        "accuracy_loss_pt": 100 * (reference_accuracy - res["accuracy"]),
        "macs_per_image": res["macs_per_image"],
        "mac_reduction": res["mac_reduction"],
        "exit_share": res["exit_share"],
    }


# method -> (heads, exclusion rule): the paper's ratio rule, its absolute-threshold variant, the
# baseline, and our hybrid (two heads per exit: the paper's sigmoid head and rule, then a confidence
# exit on the baseline's softmax head over the remaining classes)
METHODS = {
    "exclusion": ("exclusion", "ratio"),
    "exclusion-absolute": ("exclusion", "absolute"),
    "confidence": ("confidence", "ratio"),
    "hybrid": ("hybrid", "ratio"),
}
JUDGED = ("exclusion", "hybrid")  # judged against the targets: the paper's rule and ours


def matched_macs(curve: list[tuple[float, float]], accuracy: float) -> float | None:
    """MACs the other method needs for ``accuracy``: the cheapest of its points at least as accurate,
    linearly interpolated along its Pareto front; None when it never reaches that accuracy."""
    pts = sorted(curve, key=lambda p: p[1])  # by MACs
    front: list[tuple[float, float]] = []
    for acc, macs in pts:
        if not front or acc > front[-1][0]:
            front.append((acc, macs))
    if not front or accuracy > front[-1][0]:
        return None
    if accuracy <= front[0][0]:
        return front[0][1]
    for (a0, m0), (a1, m1) in zip(front, front[1:]):
        if a0 <= accuracy <= a1:
            return m0 + (m1 - m0) * (accuracy - a0) / max(a1 - a0, 1e-12)
    return front[-1][1]


def add_matched(rows: list[dict[str, Any]]) -> None:
    """Per sweep row: the MACs the rival needs for the same test accuracy (exclusion and hybrid rows
    against the confidence baseline; confidence rows against the paper's exclusion)."""
    curve = {
        m: [(r["test_accuracy"], r["macs_per_image"]) for r in rows if r["method"] == m] for m in METHODS
    }
    for r in rows:
        other = "exclusion" if r["method"] == "confidence" else "confidence"
        r["other_method_macs_at_same_accuracy"] = matched_macs(curve[other], r["test_accuracy"])


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's three targets at the main tolerance, for the paper's rule and for the hybrid."""
    out: dict[str, Any] = {"confidence_macs_at_main_tolerance": r["main"]["confidence"]["macs_per_image"]}
    for method in JUDGED:
        ex = r["main"][method]
        matched = ex["other_method_macs_at_same_accuracy"]
        out[method] = {
            "mac_reduction": ex["mac_reduction"],
            "accuracy_loss_pt": ex["accuracy_loss_pt"],
            "ge_40pct_fewer_macs_at_le_0.5pt_loss": ex["mac_reduction"] >= 0.40
            and ex["accuracy_loss_pt"] <= TARGET_LOSS_PT,
            "confidence_macs_at_same_accuracy": matched,
            "fewer_macs_than_confidence_at_same_accuracy": matched is not None
            and ex["macs_per_image"] < matched,
        }
        if method in r.get("lean", {}):  # the wall-time variant: costly exits switched off (ours)
            lean = r["lean"][method]
            out[method]["lean"] = {
                k: lean[k] for k in ("values", "taus", "mac_reduction", "accuracy_loss_pt")
            }
        for variant, t in r.get("throughput", {}).items():
            for name, prefix in ((method, ""), (f"{method}-lean", "lean/")):
                if f"{name}/per_batch" not in t:
                    continue
                for forward in ("per_batch", "rebatched"):
                    e = t[f"{name}/{forward}"]
                    key = f"{prefix}{variant}/{forward}"
                    out[method][f"{key}_gain_realised"] = e["gain_realised"]  # (measured − 1)/(promised − 1)
                    out[method][f"{key}_ge_60pct_of_promised_gain"] = e["gain_realised"] >= 0.6
    return out


def _sweep_md(r: dict[str, Any]) -> list[str]:
    md = [
        f"\n## {r['model']}: exits {', '.join(r['exits'])}, head pool {r['head_pool']}, "
        f"backbone {r['backbone_source']}\n\n",
        f"No exit: test accuracy {r['no_exit_accuracy']:.4f}, {r['no_exit_macs']:,} MACs/image. "
        f"Head validation accuracy (argmax): {r['head_training']}.\n\n",
    ]
    md.append(markdown_table(r["sweep"], SWEEP_COLUMNS, digits=4))
    if r.get("pos_weight_ablation"):
        md.append(f"\nClass exclusion with other BCE positive weights (tolerance {MAIN_TOLERANCE}):\n\n")
        md.append(markdown_table(r["pos_weight_ablation"], digits=4))
    return md


def _timing_md(r: dict[str, Any]) -> list[str]:
    md: list[str] = []
    if r.get("lean"):
        md.append(
            "\nTimed as `<method>-lean` (ours, for wall time): the main setting with the exits that cost more "
            "time than they save switched off (drop_costly_exits: a per-segment / per-exit time model measured "
            "here, validation accuracy kept within the tolerance), on the test split:\n\n"
        )
        md.append(markdown_table(list(r["lean"].values()), SWEEP_COLUMNS[:8], digits=4))
    for variant, t in r.get("throughput", {}).items():
        if "images_per_s_best" not in t["no_exit"]:
            continue  # a record of an older version of this study: its tables are in git history
        lat = r["latency_ms_bs1"][variant]
        trow = [
            {
                "method": "no exit",
                "images/s": t["no_exit"]["images_per_s"],
                "images/s (best run)": t["no_exit"]["images_per_s_best"],
                "accuracy": t["no_exit"]["accuracy"],
                "MACs/image": r["no_exit_macs"],
                "latency bs1 ms": lat["no_exit"],
            }
        ]
        for key, row in t.items():
            if "/" not in key:
                continue
            method, _ = key.split("/")
            trow.append(
                {
                    "method": key,
                    "images/s": row["images_per_s"],
                    "images/s (best run)": row["images_per_s_best"],
                    "accuracy": row["accuracy_real_forward"],
                    "MACs/image": row["macs_per_image"],
                    "promised speed-up": row["promised_speedup"],
                    "measured speed-up": row["measured_speedup"],
                    "gain realised": row["gain_realised"],
                    "gain realised (best runs)": row["gain_realised_best"],
                    "latency bs1 ms": lat[method],
                    "exit histogram": row["exit_histogram"],
                }
            )
        what = "as trained (eager)" if variant == "eager" else "BN folded into convs, channels-last (all)"
        md.append(
            f"\nReal skipping forward at tolerance {MAIN_TOLERANCE}, {what}; {t['images']} test images, "
            f"batch {t['batch_size']}, {t['threads']} thread, median of {t['repeats']} alternating repeats "
            "(and the fastest repeat); per_batch: each batch alone, shrinking; rebatched: survivors "
            "queued into full batches:\n\n"
        )
        md.append(markdown_table(trow, list(trow[1]), digits=3))
    for variant, rows in r.get("segment_profile", {}).items():
        md.append(f"\nTime share vs MAC share per segment ({variant}, batch 64, fastest of repeats):\n\n")
        md.append(markdown_table(rows, digits=3))
    return md


def write_report(
    results: list[dict[str, Any]],
    out_dir: Path,
    prefix: str,
    config: dict,
    seed: int,
    data_id: dict,
    merged: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """JSON records, Markdown tables and the two plots. ``merged``: labels whose per-model record comes
    from an earlier run; it is left as it is, and the combined record names its provenance."""
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = merged or {}
    for r in results:
        if r["model"] in merged:
            continue
        write_record(
            out_dir / f"{prefix}_{r['model']}.json",
            make_record(f"early-exit/{r['model']}", config=config, seed=seed, data=data_id, results=r),
        )
    write_record(
        out_dir / f"{prefix}.json",
        make_record(
            "early-exit",
            config={**config, "merged_records": merged},
            seed=seed,
            data=data_id,
            results=results,
        ),
    )
    md = ["# Class-exclusion early exit vs confidence exit vs no exit (Fashion-MNIST)\n\n"]
    summary = []
    for r in results:
        for method in (m for m in METHODS if m in r["main"]):
            row = r["main"][method]
            summary.append(
                {
                    "model": r["model"],
                    "method": method,
                    "no-exit acc": r["no_exit_accuracy"],
                    "acc": row["test_accuracy"],
                    "loss pt": row["accuracy_loss_pt"],
                    "MACs": row["macs_per_image"],
                    "MAC cut": row["mac_reduction"],
                    "rival MACs at same acc": row["other_method_macs_at_same_accuracy"],
                    "val loss pt": row.get("val_accuracy_loss_pt"),
                    "val loss SE pt": row.get("val_loss_se_pt"),
                }
            )
    md.append(
        f"Test split, tolerance {MAIN_TOLERANCE} on validation; MACs per image include the heads. "
        f"(target: ≤ {TARGET_LOSS_PT} pt loss on test; the 0.1-pt margin covers the validation estimate's "
        "standard error). `hybrid` is our extension (not in the paper: the paper's sigmoid head and "
        "exclusion, then a confidence exit on a softmax head over the remaining classes). Rival: the "
        "confidence exit for exclusion and hybrid rows, the paper's exclusion for confidence rows.\n\n"
    )
    md.append(markdown_table(summary, digits=4))
    for r in results:
        md += _sweep_md(r)
        md += _timing_md(r)
        if r.get("targets"):
            md.append(f"\nTargets: `{r['targets']}`\n")
    write_markdown(out_dir / f"{prefix}.md", "".join(md))
    _plots(results, out_dir, prefix)
    return {"files": sorted(p.name for p in out_dir.glob(f"{prefix}*"))}


def _plots(results: list[dict[str, Any]], out_dir: Path, prefix: str) -> None:
    series: dict[str, dict] = {"": {}}  # "": every main model (label = zoo name) in one plot
    for r in results:
        own = series.setdefault(r["model"], {})
        methods = [m for m in METHODS if any(p["method"] == m for p in r["sweep"])]
        for method in methods:
            pts = sorted(
                (p["macs_per_image"] / 1e6, 100 * p["test_accuracy"])
                for p in r["sweep"]
                if p["method"] == method
            )
            own[method] = ([p[0] for p in pts], [p[1] for p in pts])
        own["no exit"] = ([r["no_exit_macs"] / 1e6], [100 * r["no_exit_accuracy"]])
        if r["model"] == r["backbone"]:
            for key in ("exclusion", "confidence", "hybrid", "no exit"):
                if key in own:
                    series[""][f"{r['model']} {key}"] = own[key]
    for name, lines in series.items():
        if lines:
            line_plot(
                out_dir / (f"{prefix}_acc_vs_macs_{name}.png" if name else f"{prefix}_acc_vs_macs.png"),
                lines,
                xlabel="MACs per image (M, heads included)",
                ylabel="test accuracy (%)",
                title=f"{name or 'VGG-small and ResNet-20'}: accuracy vs MACs across tolerances",
            )
    for r in results:  # one histogram per model: models differ in their number of exits
        values = {m: list(r["main"][m]["exit_share"].values()) for m in METHODS if m in r["main"]}
        bar_plot(
            out_dir / f"{prefix}_exit_histogram_{r['model']}.png",
            list(r["main"]["exclusion"]["exit_share"]),
            values,
            ylabel="share of test images",
            title=f"{r['model']}: where test images leave (tolerance {MAIN_TOLERANCE})",
        )
