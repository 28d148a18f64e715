"""Full logic-flatten experiment: digits and average-pooled Fashion-MNIST MLPs as flattened
logic, plain vs hardware-aware, combinational vs pipelined; writes docs/results/logic_flatten/<data>/.

Run with one thread: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_logic_flatten.py [DATA ...] [--penalties 0,1]
[--no-abc]`` (most of the time is yosys + abc: ~20 minutes per data set on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from frugalnn.experiments.logic_flatten.protocol import FULL, run  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "logic_flatten"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("datasets", nargs="*", default=["digits", "fashion-mnist"])
    parser.add_argument(
        "--penalties", help="comma-separated hardware-aware penalties (default: the full plan)"
    )
    parser.add_argument("--no-abc", action="store_true", help="skip the abc retiming comparison")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # one report folder per data set, so each data set's results stand on their own
    for name in args.datasets:
        options: dict = {"datasets": (name,)}
        if args.penalties:
            options["penalties"] = {
                **FULL["penalties"],
                name: tuple(float(p) for p in args.penalties.split(",")),
            }
        if args.no_abc:
            options["abc_retime"] = ()
        rows = run(OUT / name, quick=False, seed=0, **options)
        print(json.dumps(rows, indent=1), flush=True)
