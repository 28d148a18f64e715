"""LiveMind latency benchmark on SmolLM2-135M-Instruct (the issue's anchor protocol), 1 torch thread: a thin
caller of frugalnn.experiments.livemind, writing docs/results/livemind/.

    .venv/bin/python bench/bench_livemind.py latency [--questions 40]   # -> livemind.json
    .venv/bin/python bench/bench_livemind.py latency --collab --questions 20  # -> livemind_collab.json
    .venv/bin/python bench/bench_livemind.py latency --answer-mode choice     # -> livemind_choice.json
    .venv/bin/python bench/bench_livemind.py steps                      # -> livemind_steps.json
    .venv/bin/python bench/bench_livemind.py report                     # tables + histograms from the JSON

latency: the complete-prompt baseline, LiveMind and (for reference) the baseline with prefill-while-typing,
run alternately per question (``--collab``: the int8 model alone against fp32 inference + int8 answers).
steps: time of one inference-step prefill of a fixed new segment against the length of the history
already in the KV cache, with and without cache reuse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from frugalnn.experiments.livemind.latency import latency_study, rerender
from frugalnn.experiments.livemind.steps import step_times
from frugalnn.methods.livemind import LiveMindConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "livemind"


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
        "--clock", choices=("cpu", "wall"), default="cpu",
        help="model time on the virtual clock: the thread's CPU time (default; robust on a shared machine) or wall",
    )  # fmt: skip
    parser.add_argument(
        "--answer-mode", choices=("generate", "choice"), default="generate",
        help="final answer: free greedy generation (the anchor) or the forced 'The answer is (' + best letter",
    )  # fmt: skip
    parser.add_argument(
        "--answer-format", default=None, help="answer instruction for both sides ('' drops it)"
    )
    args = parser.parse_args()
    if args.part == "latency":
        name = "livemind_collab" if args.collab else "livemind"
        name += "_choice.json" if args.answer_mode == "choice" else ".json"
        config = LiveMindConfig(answer_mode=args.answer_mode)
        if args.answer_format is not None:
            config.answer_format = args.answer_format
        arms = (
            ("baseline-int8", "collab fp32->int8")
            if args.collab
            else ("baseline", "livemind", "baseline+prefill")
        )
        latency_study(
            Path(args.out or OUT / name), args.questions, config, arms, args.model, args.clock == "cpu"
        )
    elif args.part == "report":
        for stem in ("livemind", "livemind_collab", "livemind_choice", "livemind_collab_choice"):
            if (OUT / f"{stem}.json").exists():
                rerender(OUT / f"{stem}.json")
    else:
        doc = ROOT / "docs" / "livemind.md"
        filler = doc.read_text() if doc.exists() else ""
        step_times(Path(args.out or OUT / "livemind_steps.json"), args.model, filler_text=filler)


if __name__ == "__main__":
    main()
