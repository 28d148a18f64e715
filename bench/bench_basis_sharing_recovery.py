"""LoRA recovery after Basis Sharing on SmolLM2-135M (the issue's protocol, 1 torch thread): a thin caller of
frugalnn.experiments.basis_sharing.sweeps.recovery.

    .venv/bin/python bench/bench_basis_sharing_recovery.py --ratios 0.5 0.2 0.3 0.4 --lrs 1e-4 1e-3

For every ratio: compress with the "improved" configuration (Basis Sharing + per-layer refit), measure
perplexity on Pride and Prejudice and on 16 held-out Emma windows, then train LoRA with each learning rate
on the calibration windows and measure both again (the learning rate is chosen on the Emma windows).
Rows go to docs/results/basis_sharing/basis_sharing_recovery.json as soon as they exist.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from frugalnn.experiments.basis_sharing.protocol import CONFIGS  # noqa: E402
from frugalnn.experiments.basis_sharing.sweeps import recovery  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "basis_sharing"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratios", nargs="+", type=float, default=[0.5, 0.2, 0.3, 0.4])
    p.add_argument("--lrs", nargs="+", type=float, default=[1e-4])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--config", default="improved", choices=sorted(CONFIGS))
    p.add_argument("--held-out", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "basis_sharing_recovery.json"))
    p.add_argument(
        "--skip-base", action="store_true", help="do not re-measure the compressed model before LoRA"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    recovery(Path(args.out), args.ratios, args.lrs, args.epochs, args.config, args.held_out, args.skip_base,
             run_config=vars(args))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
