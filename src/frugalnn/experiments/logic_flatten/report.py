"""Table, record, area-vs-accuracy plot and headline rows of the logic-flatten experiment."""

from __future__ import annotations

from pathlib import Path

from frugalnn.core.report import make_record, markdown_table, save_figure, write_markdown, write_record

COLUMNS = (
    "data", "variant", "pipelined", "multiplier", "acc", "area", "cells", "clock_ns", "throughput_inf_s",
    "energy_pj", "mismatches", "inputs_checked", "latency_cycles", "flip_flops", "adders", "synth_s",
)  # fmt: skip


def _comb(rows: list[dict], data: str) -> list[dict]:
    return [r for r in rows if r["data"] == data and r["pipelined"] == "no" and r["multiplier"] == "csd"]


def headline(rows: list[dict], plan: dict) -> list[dict]:
    out = []
    total = sum(r["mismatches"] for r in rows)
    least = min(r["inputs_checked"] for r in rows)
    out.append(
        {
            "metric": f"mismatches, {len(rows)} designs x >= {least:,} real inputs (Verilator vs integer model)",
            "ours": total,
            "baseline": None,
            "target": "0 over >= 10,000 inputs",
            "met": total == 0 and least >= 10000,
        }
    )
    for data in plan["datasets"]:
        comb = _comb(rows, data)
        plain = next(r for r in comb if r["variant"] == "plain")
        ok = [r for r in comb if r["variant"] != "plain" and r["acc"] >= plain["acc"] - 0.01]
        best = min(ok, key=lambda r: r["area"]) if ok else None
        cut = 100 * (1 - best["area"] / plain["area"]) if best else 0.0
        out.append(
            {
                "metric": f"{data}: area cut by hardware-aware training (%), {best['variant'] if best else 'none'} within 1 pt",
                "ours": round(cut, 1),
                "baseline": plain["area"],
                "target": ">= 30% at <= 1 pt accuracy loss",
                "met": cut >= 30,
            }
        )
        piped = next(
            (
                r
                for r in rows
                if r["data"] == data and r["variant"] == "plain" and r["pipelined"] == "levelised"
            ),
            None,
        )
        if piped:
            gain = plain["clock_ns"] / piped["clock_ns"]
            out.append(
                {
                    "metric": f"{data}: clock gain, pipelined ({piped['latency_cycles']} stages) vs combinational",
                    "ours": round(gain, 2),
                    "baseline": plain["clock_ns"],
                    "target": ">= 3x",
                    "met": gain >= 3,
                }
            )
    digits = [r["synth_s"] for r in rows if r["data"] == "digits" and r["pipelined"] == "no"]
    if digits:
        out.append(
            {
                "metric": "digits MLP synthesis time (s, combinational, yosys + abc)",
                "ours": max(digits),
                "baseline": None,
                "target": "< 300 s on 2 cores",
                "met": max(digits) < 300,
            }
        )
    return out


def _plot(out_dir: Path, rows: list[dict], datasets) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), dpi=120, squeeze=False)
    for ax, data in zip(axes[0], datasets):
        comb = _comb(rows, data)
        ax.plot([r["area"] / 1e6 for r in comb], [100 * r["acc"] for r in comb], "o-")
        for r in comb:
            ax.annotate(r["variant"].replace("hw-aware ", ""), (r["area"] / 1e6, 100 * r["acc"]), fontsize=8)
        ax.set_xlabel("area (mm², OSU018, combinational)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(data)
        ax.grid(alpha=0.3)
    save_figure(fig, out_dir / "area_vs_accuracy.png")


def write_report(out_dir, rows, sims, plan, seed, identities, seconds, quick) -> None:
    heads = headline(rows, plan)
    write_record(
        out_dir / "logic_flatten.json",
        make_record(
            "logic-flatten",
            config={k: (list(v) if isinstance(v, tuple) else v) for k, v in plan.items()},
            seed=seed,
            data=identities,
            results={"rows": rows, "simulators": sims, "headline": heads, "seconds": round(seconds, 1)},
            quick=quick,
        ),
    )
    table = markdown_table([{k: r[k] for k in COLUMNS} for r in rows])
    text = [
        "# Flattened logic MLPs (OSU018, yosys + abc, OpenSTA)",
        "",
        f"{'quick' if quick else 'full'} run, seed {seed}, {seconds:.0f} s; 1 torch thread on a shared 2-core machine.",
        "",
        table,
        "",
        "## Simulators (RTL of the design, inputs per second; build = compile time)",
        "",
        markdown_table(sims, columns=list(dict.fromkeys(k for r in sims for k in r))),
        "",
        "## Headline",
        "",
        markdown_table(heads),
        "",
    ]
    write_markdown(out_dir / "logic_flatten.md", "\n".join(text))
    _plot(out_dir, rows, plan["datasets"])
