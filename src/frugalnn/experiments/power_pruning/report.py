"""PowerPruning report: the table, power against accuracy, the histogram of the chosen weight values,
the power model's cross-check against a direct gate-level simulation, and the headline rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = (
    "model", "keep", "delay_step", "retrain_steps", "voltage_scaling", "vdd", "power_reduction", "acc", "acc_loss_pt",
    "weights", "activations", "max_delay_ns",
)  # fmt: skip


def crosscheck(s: dict, out_dir: Path, data, quick: bool) -> list[dict]:
    """Predicted (per-weight energies x counts) vs direct gate-level simulation of one layer's stream."""
    from frugalnn.core.zoo import load_pretrained
    from frugalnn.methods.power_pruning import PowerPruningConfig, quantise_int8
    from frugalnn.methods.power_pruning.characterise import Characteriser
    from frugalnn.methods.power_pruning.crosscheck import layer_crosscheck
    from frugalnn.methods.power_pruning.stats import record_stats

    cc = s["crosscheck"]
    cfg = PowerPruningConfig(**(s["overrides"] | s["user"] | {"cache_dir": str(out_dir / "cache")}))
    model, _, _ = load_pretrained(cc["model"])
    x = data.x_train[: cfg.stats_images]
    base = quantise_int8(model, data.x_train[: cfg.calibration_images])
    stats = {st.name: st for st in record_stats(base, x, cfg.stream_sites, cfg.transitions + 1, cfg.seed)}
    ch = Characteriser(cfg.cache_dir, cfg.transitions, cfg.timed_transitions, cfg.seed)
    out = []
    for glitch in (False, True):
        r = layer_crosscheck(base, cc["layer"], x, stats[cc["layer"]], ch, sites=cc["sites"], glitch=glitch)
        out.append(r | {"model": cc["model"]})
    return out


def write_report(out_dir: Path, rows: list[dict], records: list[dict], check: list[dict]) -> None:
    from frugalnn.core.report import markdown_table, write_markdown

    lines = [
        "# PowerPruning on Fashion-MNIST (8-bit MAC, OSU018)\n",
        "power_reduction: MAC-array power against the int8 model at 1.8 V, same clock (glitch-aware "
        "energy unless the config says otherwise); acc_loss_pt: points below the int8 model.\n",
        markdown_table(rows, COLUMNS),
        "\n## Power model cross-check (one layer, direct gate-level simulation)\n",
        markdown_table(check, digits=4),
        "\n## Runs\n",
        markdown_table(
            [
                {
                    "model": r["model"],
                    "keep": r["config"]["keep"],
                    "delay_step": r["config"]["delay_step"],
                    "weight codes": " ".join(map(str, r["selection"]["weight_codes"]))
                    if len(r["selection"]["weight_codes"]) <= 64
                    else f"{len(r['selection']['weight_codes'])} codes",
                    "selection_s": r["seconds"]["selection_and_voltage"],
                    "retrain_s": r["seconds"]["retraining"],
                    "steps": r["finetune_steps_run"],
                }
                for r in records
            ],
            digits=1,
        ),
    ]
    write_markdown(out_dir / "power_pruning.md", "\n".join(lines))
    _plots(out_dir, rows, records)


def _plots(out_dir: Path, rows: list[dict], records: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalnn.core.report import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for model in sorted({r["model"] for r in rows}):
        usual = min(r["retrain_steps"] for r in rows if r["model"] == model)  # the sweep's; more: extra runs
        series = sorted(
            {(r["delay_step"], r["voltage_scaling"], r["retrain_steps"]) for r in rows if r["model"] == model}
        )
        for delay, scaled, steps in series:
            pts = sorted(
                (
                    r for r in rows
                    if r["model"] == model and r["delay_step"] == delay and r["voltage_scaling"] == scaled
                    and r["retrain_steps"] == steps
                ),
                key=lambda r: -r["keep"],
            )  # fmt: skip
            label = f"{model}{' +delay' if delay else ''}{' +Vdd' if scaled else ''}"
            label += f", {steps} retraining steps" if steps != usual else ""
            ax.plot(
                [100 * p["power_reduction"] for p in pts],
                [100 * p["acc"] for p in pts],
                marker="o" if scaled else "s",
                linestyle="-" if delay else ":",
                label=label,
            )
            for p in pts:
                ax.annotate(f"K={p['keep']}", (100 * p["power_reduction"], 100 * p["acc"]), fontsize=6)
    ax.set_xlabel("MAC-array power reduction (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("PowerPruning: power against accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out_dir / "power_vs_accuracy.png")

    chosen = [r for r in records if r["config"]["keep"] <= 32 and r["config"]["delay_step"]]
    if not chosen:
        return
    fig, axes = plt.subplots(len(chosen), 1, figsize=(8, 2.2 * len(chosen)), dpi=120, squeeze=False)
    for ax, r in zip(axes[:, 0], chosen, strict=True):
        use = {int(k): v for k, v in r["weight_code_use"].items()}
        codes = np.array(sorted(use))
        share = np.array([use[c] for c in codes], dtype=float)
        share /= share.sum()
        ax.bar(range(len(codes)), 100 * share)
        ax.set_xticks(range(len(codes)), [str(c) for c in codes], fontsize=7)
        ax.set_ylabel("% of MACs")
        title = f"{r['model']}, K={r['config']['keep']}, delay step, {r['config']['finetune_steps']} retraining steps"
        ax.set_title(f"{title}: weight values in use", fontsize=9)
    save_figure(fig, out_dir / "weight_histogram.png")


def headline(rows: list[dict], records: list[dict], check: list[dict]) -> list[dict]:
    out = []
    for model in sorted({r["model"] for r in rows}):
        ok = [r for r in rows if r["model"] == model and r["acc_loss_pt"] <= 1.0]
        best = max(ok, key=lambda r: r["power_reduction"]) if ok else None
        out.append(
            {
                "metric": f"{model}: MAC-array power reduction at <= 1 pt accuracy loss"
                + (
                    f" (K={best['keep']}, delay step {best['delay_step']}, {best['vdd']:.2f} V,"
                    f" {best['retrain_steps']} retraining steps)"
                    if best
                    else ""
                ),
                "ours": round(best["power_reduction"], 4) if best else 0.0,
                "baseline": 0.739,
                "target": ">= 0.70",
                "met": bool(best and best["power_reduction"] >= 0.70),
            }
        )
        secs = [r["seconds"]["selection_and_voltage"] for r in records if r["model"] == model]
        out.append(
            {
                "metric": f"{model}: selection + voltage step, first run (cold characterisation cache), s",
                "ours": round(secs[0], 1),
                "baseline": None,
                "target": "< 120",
                "met": secs[0] < 120,
            }
        )
    for c in check:
        out.append(
            {
                "metric": f"power model vs direct gate-level simulation, {c['model']} {c['layer']}, {c['energy']}",
                "ours": round(c["relative_error"], 4),
                "baseline": None,
                "target": "|error| <= 0.05",
                "met": abs(c["relative_error"]) <= 0.05,
            }
        )
    return out
