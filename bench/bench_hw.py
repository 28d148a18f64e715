"""Benchmark of the gate-level substrate: a thin caller of frugalnn.experiments.hw_mac.substrate, one thread,
writing docs/results/hw_mac/hw_bench.json.
1. zero-delay energy of the 8-bit MAC: all 256 weights x 65,536 activation transitions (target < 60 s);
2. glitch-aware timed simulation (Liberty delays, and unit delay): 256 weights x 4,096 transitions (< 120 s);
3. our simulator vs Icarus Verilog (vendor cell models) on the mapped 8-bit MAC datapath, 100,000 vectors;
4. OpenSTA: critical path of the MAC and of an 8x8 signed multiplier; report_power vs our model.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

from frugalnn.experiments.hw_mac.substrate import substrate_bench  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "results" / "hw_mac" / "hw_bench.json",
        help="record file (default docs/results/hw_mac/hw_bench.json)",
    )
    p.add_argument("--seed", type=int, default=0, help="activation / transition seed (default 0)")
    args = p.parse_args()
    if not 0 <= args.seed < 2**32:
        p.error(f"--seed lies in [0, 2**32), got {args.seed}")
    if args.out.is_dir() or args.out.suffix != ".json":
        p.error(f"--out {args.out} must be a .json file path")
    substrate_bench(args.out, seed=args.seed)
