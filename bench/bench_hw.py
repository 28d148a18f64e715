"""Benchmark of the gate-level substrate: a thin caller of frugalnn.experiments.hw_mac.substrate, one thread,
writing docs/results/hw_mac/hw_bench.json.
1. zero-delay energy of the 8-bit MAC: all 256 weights x 65,536 activation transitions (target < 60 s);
2. glitch-aware timed simulation (Liberty delays, and unit delay): 256 weights x 4,096 transitions (< 120 s);
3. our simulator vs Icarus Verilog (vendor cell models) on the mapped 8-bit MAC datapath, 100,000 vectors;
4. OpenSTA: critical path of the MAC and of an 8x8 signed multiplier; report_power vs our model.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

from frugalnn.experiments.hw_mac.substrate import substrate_bench  # noqa: E402

if __name__ == "__main__":
    substrate_bench(Path(__file__).resolve().parents[1] / "docs" / "results" / "hw_mac" / "hw_bench.json")
