"""Time of one LiveMind inference step (prefill of a fixed new segment and the action choice) against the
length of the history already in the KV cache, with and without cache reuse (thread CPU time, 1 thread)."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import torch

from frugalnn.core.report import make_record, write_record
from frugalnn.methods.livemind.local import LocalBackend

SEGMENT = "The speed of a wave on a string depends on its tension and on its linear mass density. "


def step_times(out: Path, model: str = "smollm2", repeats: int = 3, filler_text: str = "") -> list[dict]:
    """One row per history length (0-800 words of ``filler_text`` + the segment repeated)."""
    torch.set_num_threads(1)
    backend = LocalBackend.load(model, name=model, cpu_clock=True)
    cold = LocalBackend(backend.model, backend.tok, name=model, reuse_cache=False, cpu_clock=True)
    filler = (filler_text + " " + SEGMENT * 40).split()
    rows = []
    for words in (0, 50, 100, 200, 400, 800):
        messages = [{"role": "system", "content": "You are a helpful assistant."}]
        if words:
            messages += [
                {"role": "user", "content": " ".join(filler[:words])},
                {"role": "assistant", "content": "action inference. The question is about waves."},
            ]
        full = messages + [{"role": "user", "content": SEGMENT}]
        timings: dict[str, list[float]] = {"cached_s": [], "uncached_s": []}
        for _ in range(repeats):
            backend.prefill(messages)  # history already seen (what the earlier steps left in the cache)
            timings["cached_s"].append(backend.choose(full, "action", ["inference", "wait"], [0.0, 0.0])[1])
            stats = dict(backend.last_stats)
            timings["uncached_s"].append(cold.choose(full, "action", ["inference", "wait"], [0.0, 0.0])[1])
        rows.append({
            "history_tokens": stats["reused_tokens"], "new_tokens": stats["prefilled_tokens"],
            "cached_step_s": statistics.median(timings["cached_s"]),
            "uncached_step_s": statistics.median(timings["uncached_s"]), "loadavg_1min": os.getloadavg()[0],
        })  # fmt: skip
        print(rows[-1], flush=True)
    record = make_record(
        "livemind_steps", config={"repeats": repeats, "segment": SEGMENT}, seed=None, data={}, results=rows,
        model=model, torch_threads=torch.get_num_threads(), clock="thread CPU time",
    )  # fmt: skip
    write_record(out, record)
    return rows
