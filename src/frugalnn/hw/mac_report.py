"""Reports of a MAC characterisation: activation files in, JSON record, Markdown and heat maps out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from frugalnn.errors import DataError
from frugalnn.hw.mac import MacCharacterisation


def load_activations(path: str | Path) -> np.ndarray:
    """A layer's activations from a .npy file (integer codes, or floats to be quantised)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"activation file {path} not found; save a layer's activations with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {path} as a .npy array ({exc}); save it with numpy.save") from None
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path} holds {x.dtype} values; expected integer codes or floats")
    return x


def _heatmap(
    path: Path, grid: np.ndarray, *, xlabel: str, ylabel: str, title: str, cbar: str, extent=None
) -> None:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalnn.core.report import save_figure

    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    im = ax.imshow(np.ma.masked_less(grid, 0), aspect="auto", origin="lower", cmap="viridis", extent=extent)
    fig.colorbar(im, ax=ax, label=cbar)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    save_figure(fig, path)


def save_characterisation(
    result: MacCharacterisation, out_dir: Path, seed: int, data: dict | None = None
) -> dict:
    """Write the JSON record, a Markdown summary and the energy / delay plots; return a headline."""
    from frugalnn.core.report import bar_plot, make_record, markdown_table, write_markdown, write_record

    out_dir.mkdir(parents=True, exist_ok=True)
    w = result.weights
    order = np.argsort(result.energy_pj)
    base = float(np.mean(result.energy_pj))
    headline = {
        "lowest_energy_weights": [int(x) for x in w[order[:10]]],
        "highest_energy_weights": [int(x) for x in w[order[::-1][:6]]],
        "energy_pj_min_mean_max": [float(result.energy_pj.min()), base, float(result.energy_pj.max())],
        "critical_path_ns": round(result.critical_path_ns, 3),
        "area": result.area,
        "cells": int(sum(result.cell_counts.values())),
    }
    if result.timed_toggles_per_op is not None:
        glitch = result.timed_toggles_per_op / np.maximum(result.zero_delay_toggles_on_timed_stream, 1e-12)
        headline["glitch_factor_mean"] = round(float(glitch.mean()), 3)
        headline["max_sensitised_delay_ns"] = float(result.delay_ns.max())
    record = make_record(
        "hw-mac-characterisation",
        config=result.config,
        seed=seed,
        data=data or result.stream,
        results=result.to_json(),
        headline=headline,
    )
    write_record(out_dir / "mac_characterisation.json", record)
    rows = [
        {
            "weight": int(w[i]),
            "energy_pj": float(result.energy_pj[i]),
            "toggles_per_op": float(result.toggles_per_op[i]),
        }
        | (
            {"timed_energy_pj": float(result.timed_energy_pj[i]), "delay_ns": float(result.delay_ns[i])}
            if result.delay_ns is not None
            else {}
        )
        for i in list(order[:10]) + list(order[::-1][:10])
    ]
    write_markdown(
        out_dir / "summary.md",
        "# MAC characterisation\n\n10 lowest- then 10 highest-energy weight values (energy per operation, zero delay;"
        " timed = glitch-aware).\n\n" + markdown_table(rows, digits=3),
    )
    labels = [str(int(x)) for x in w]
    bar_plot(
        out_dir / "energy_per_weight.png",
        labels if len(w) <= 64 else [""] * len(w),
        {"zero-delay": result.energy_pj}
        | ({"timed": result.timed_energy_pj} if result.timed_energy_pj is not None else {}),
        ylabel="energy per MAC operation (pJ)",
        title="MAC energy per weight value",
    )
    side = int(round(math.sqrt(len(w))))
    if side * side == len(w):  # a square grid: weight = low part (x) + side * high part (y)
        w0 = int(w[0])
        _heatmap(
            out_dir / "energy_heatmap.png",
            result.energy_pj.reshape(side, side),
            xlabel=f"weight - row start (0..{side - 1})",
            ylabel="row start (weight value)",
            title="energy per operation (pJ)",
            cbar="pJ",
            extent=(-0.5, side - 0.5, w0 - side / 2, w0 + side * side - side / 2),
        )
    if result.delay_ns is not None:
        bar_plot(
            out_dir / "delay_per_weight.png",
            labels if len(w) <= 64 else [""] * len(w),
            {"worst sensitised delay": result.delay_ns},
            ylabel="ns",
            title="worst sensitised delay per weight",
        )
        acts = result.config["mac"]
        lo = -(1 << (acts["bits"] - 1)) if acts["activation_signed"] else 0
        hi = lo + result.delay_by_activation_ns.shape[1] - 1
        _heatmap(
            out_dir / "delay_heatmap.png",
            result.delay_by_activation_ns,
            xlabel="activation value (destination)",
            ylabel="weight value" if len(w) == hi - lo + 1 else "weight index",
            title="worst delay into each activation (ns; blank: unseen)",
            cbar="ns",
            extent=(lo - 0.5, hi + 0.5, float(w[0]) - 0.5, float(w[-1]) + 0.5),
        )
    return headline
