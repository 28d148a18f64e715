"""Basis Sharing across domains (experiment ``basis-sharing-domains``) with the full settings; resumable.

OMP_NUM_THREADS=1 .venv/bin/python bench/bench_basis_sharing_domains.py [--ratios 0.2 0.3 0.4 0.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from frugalnn.experiments import get


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratios", nargs="+", type=float, default=[0.2, 0.3, 0.4, 0.5])
    p.add_argument("--methods", nargs="+", default=["basis-sharing", "svd-llm"])
    p.add_argument("--recoveries", nargs="+", default=["none", "refit", "refit+lora"])
    p.add_argument(
        "--baseline-recoveries", nargs="+", default=["none"], help="for svd-llm/asvd/svd: none, lora"
    )
    p.add_argument("--calibs", nargs="+", default=["austen:emma", "mix"])
    p.add_argument("--out", default="docs/results/basis_sharing_domains")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--report-only", action="store_true", help="write the report from the rows measured so far"
    )
    args = p.parse_args()
    unknown = set(args.recoveries + args.baseline_recoveries) - {"none", "refit", "refit+lora", "lora"}
    if unknown:
        p.error(f"unknown recovery {sorted(unknown)}; use none, refit, refit+lora (Basis Sharing) or lora")
    torch.set_num_threads(args.threads)
    head = get("basis-sharing-domains").fn(
        Path(args.out), False, 0, methods=tuple(args.methods), ratios=tuple(args.ratios),
        calibs=tuple(args.calibs), recoveries=tuple(args.recoveries),
        baseline_recoveries=tuple(args.baseline_recoveries), report_only=args.report_only,
    )  # fmt: skip
    for row in head:
        print(f"{row['metric']}: {row['ours']:.3g} (target {row['target']}, met {row['met']})")


if __name__ == "__main__":
    main()
