"""Result records (JSON with config, seed, versions, data identity), Markdown tables and PNG plots."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from frugalnn.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    import numpy
    import torch

    import frugalnn

    out = {
        "frugalnn": frugalnn.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return out


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that is running, as a person would type it: ``frugalnn ...`` for the CLI, the script's
    path relative to the working folder otherwise (``bench/bench_x.py --flag``)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return ""
    program = Path(argv[0])
    if program.name in ("frugalnn", "cli.py", "__main__.py") and "frugalnn" in str(program):
        head = "frugalnn"
    else:
        try:
            head = str(program.resolve().relative_to(Path.cwd()))
        except ValueError:
            head = program.name
    return shlex.join([head, *argv[1:]])


def make_record(
    name: str,
    *,
    config: Any,
    seed: int | None,
    data: Mapping[str, Any] | None,
    results: Any,
    about: str | None = None,
    command: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A result record: what was run (config, seed), on what (data identity), with what (versions).
    ``about`` says in a line what the record is; ``command`` defaults to the running command line."""
    return {
        "name": name,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **({"about": about} if about else {}),
        "command": command_line() if command is None else command,
        "config": _plain(config),
        "seed": seed,
        "data": dict(data or {}),
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "results": _plain(results),
        **extra,
    }


def write_record(path: str | Path, record: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, record)


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 10 ** (-digits)):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3
) -> str:
    """Rows of dicts -> a GitHub Markdown table (columns default to the first row's keys)."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(col, ""), digits) for col in columns) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, text: str) -> Path:
    return atomic_write_text(path, text)


def save_figure(fig: Any, path: str | Path, tight: bool = True) -> Path:
    """Write a matplotlib figure as PNG atomically and close it (frees its memory)."""
    import io

    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def off_scale_series(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]], ymax: float | None
) -> dict[str, tuple[float, float]]:
    """Label -> (lowest, highest) y of every series lying wholly above ``ymax`` (none without a ``ymax``)."""
    if ymax is None:
        return {}
    return {label: (min(ys), max(ys)) for label, (_, ys) in series.items() if len(ys) and min(ys) > ymax}


def line_plot(
    path: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    markers: bool = True,
    ymax: float | None = None,
    legend_outside: bool = False,
    styles: Mapping[str, str] | None = None,
) -> Path:
    """One PNG with a line per series (label -> (xs, ys)), written atomically.

    ``ymax`` clips the y axis: a series with every point above it is left out and named, with its range,
    in a note under the plot (so off-scale baselines do not squash the curves that matter).
    ``legend_outside`` puts the legend right of the axes, never over the data. ``styles``: label ->
    matplotlib format string (e.g. ``"--"`` for a reference curve)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    off_scale = off_scale_series(series, ymax)
    fig, ax = plt.subplots(figsize=(8.5 if legend_outside else 6, 4.5), dpi=120)
    for label, (xs, ys) in series.items():
        if label in off_scale:
            continue
        fmt = (styles or {}).get(label, "-")
        marker = "o" if markers and fmt == "-" else None  # dashed reference curves without markers
        ax.plot(list(xs), list(ys), fmt, marker=marker, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    if ymax is not None:
        ax.set_ylim(top=ymax)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logy else "major")
    if legend_outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    else:
        ax.legend()
    if off_scale:
        note = "off scale (not drawn): " + "; ".join(
            f"{label} {lo:.2g}-{hi:.2g}" for label, (lo, hi) in off_scale.items()
        )
        fig.text(0.01, 0.01, note, fontsize="small", ha="left", va="bottom")
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path, tight=not off_scale)


def bar_plot(
    path: str | Path,
    labels: Sequence[str],
    values: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str = "",
) -> Path:
    """Grouped bars: one group per label, one bar per series in ``values``."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels)), 4), dpi=120)
    width = 0.8 / max(1, len(values))
    x = np.arange(len(labels))
    for i, (name, vals) in enumerate(values.items()):
        ax.bar(x + i * width, list(vals), width, label=name)
    ax.set_xticks(x + width * (len(values) - 1) / 2, list(labels), rotation=45, ha="right")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(values) > 1:
        ax.legend()
    return save_figure(fig, path)
