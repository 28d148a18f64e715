"""Full logic-flatten experiment (issue 17): digits and average-pooled Fashion-MNIST MLPs as flattened
logic, plain vs hardware-aware, combinational vs pipelined; writes docs/results/logic_flatten/<data>/.

Run with one thread: ``/work/bin/cpuslot python bench/bench_logic_flatten.py`` (about an hour on a
shared 2-core machine; most of it is yosys + abc).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from frugalnn.experiments.logic_flatten.protocol import run  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "logic_flatten"

if __name__ == "__main__":
    torch.set_num_threads(1)
    # one report folder per data set, so each data set's results stand on their own
    for name in sys.argv[1:] or ("digits", "fashion-mnist"):
        rows = run(OUT / name, quick=False, seed=0, datasets=(name,))
        print(json.dumps(rows, indent=1), flush=True)
