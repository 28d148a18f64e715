"""Benchmark Basis Sharing and its baselines on SmolLM2-135M with the issue's protocol (1 torch thread):
a thin caller of frugalnn.experiments.basis_sharing, writing docs/results/basis_sharing/.

    .venv/bin/python bench/bench_basis_sharing.py --what ppl --configs basis-sharing svd-llm --ratios 0.2 0.3 0.4 0.5
    .venv/bin/python bench/bench_basis_sharing.py --what time          # calibration + factorisation at 20%
    .venv/bin/python bench/bench_basis_sharing.py --what throughput    # batch 8 x 512 forward, 50%
    .venv/bin/python bench/bench_basis_sharing.py --what select --variants improved improved:refit=false
    .venv/bin/python bench/bench_basis_sharing.py --what report        # basis_sharing.md / .png from the records

Each measured figure is appended to docs/results/basis_sharing/basis_sharing_<what>[_<tag>].json as soon as
it exists, so a killed run keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from frugalnn.core.report import markdown_table  # noqa: E402
from frugalnn.experiments.basis_sharing.protocol import CONFIGS  # noqa: E402
from frugalnn.experiments.basis_sharing.report import merged_rows, write_report  # noqa: E402
from frugalnn.experiments.basis_sharing.sweeps import sweep  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "basis_sharing"


def _value(text: str) -> object:
    """key=value override values: true/false, numbers, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text) if "." in text or "e" in text else int(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--what", choices=("ppl", "time", "throughput", "select", "report"), default="ppl")
    p.add_argument("--variants", nargs="*", default=[],
                   help="select: candidates NAME[:key=value,...] scored on held-out Emma windows only")  # fmt: skip
    p.add_argument("--configs", nargs="+", default=["basis-sharing", "svd-llm"], choices=sorted(CONFIGS))
    p.add_argument("--ratios", nargs="+", type=float, default=[0.2, 0.3, 0.4, 0.5])
    p.add_argument("--dense", action="store_true", help="also measure the dense model's perplexity")
    p.add_argument("--tag", default="", help="suffix of the result file")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7, help="throughput: interleaved timing rounds per model")
    p.add_argument("--logits", choices=("all", "last"), default="all",
                   help="throughput: logits at every position (a plain forward) or only the last (a prefill)")  # fmt: skip
    p.add_argument("--held-out", type=int, default=16, help="select: held-out Emma windows scored")
    p.add_argument(
        "--stats-file", default="", help="persist/reuse the dense Gram statistics (dense propagation)"
    )
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value (e.g. refit=true)")
    args = p.parse_args(argv)
    if args.what == "report":
        rows = merged_rows(RESULTS)
        write_report(RESULTS, rows, "Basis Sharing, SmolLM2-135M (Pride and Prejudice, 40,960 tokens)")
        print(
            markdown_table(
                [{k: r.get(k) for k in ("config_name", "ratio", "ppl", "reference_ppl")} for r in rows]
            )
        )
        return 0
    torch.set_num_threads(args.threads)
    overrides = {k: _value(v) for k, _, v in (item.partition("=") for item in args.set)}
    variants = []
    for variant in args.variants:
        name, _, rest = variant.partition(":")
        extra = {k: _value(v) for k, _, v in (kv.partition("=") for kv in filter(None, rest.split(",")))}
        variants.append((variant, name, extra))
    sweep(
        RESULTS, args.what, args.configs, args.ratios, tag=args.tag, dense_point=args.dense,
        overrides=overrides, variants=variants, held_out=args.held_out, repeats=args.repeats,
        logits=args.logits, stats_file=args.stats_file, run_config=vars(args),
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
