"""Benchmark of the RRAM crossbar substrate: a thin caller of frugalnn.experiments.crossbar (1 thread),
writing docs/results/crossbar/crossbar.{json,md} and crossbar_accuracy.png / crossbar_cost.png.

1. Cost model: tiles, cycles, energy and EDP per inference of LeNet-5 (28x28), VGG-small and ResNet-20
   (32x32x3) when every tile fits and when only 64 / 16 / 4 crossbars must be reprogrammed per inference
   (the BasisN baseline), 128x128 tiles, default constants.
2. Accuracy under lognormal variation sigma 0..0.5 (Monte-Carlo chips, default aihwkit-like converters
   and noise): an MLP on scikit-learn digits and LeNet-5 on MNIST-5k (trained here, a few epochs).

Run: OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_crossbar.py [--quick] [--report]
(--report: redraw the table and plots from the stored record, no runs)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from frugalnn.core.report import markdown_table
from frugalnn.experiments.crossbar import run
from frugalnn.experiments.crossbar.report import write_report

OUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "crossbar"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws and epochs")
    parser.add_argument(
        "--report", action="store_true", help="only redraw the table and plots from the record"
    )
    args = parser.parse_args()
    if args.report:
        write_report(OUT, json.loads((OUT / "crossbar.json").read_text()))
        return
    print(markdown_table(run(OUT, args.quick, seed=0)))


if __name__ == "__main__":
    main()
