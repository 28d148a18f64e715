"""LoRA recovery after Basis Sharing on SmolLM2-135M (the issue's protocol, 1 torch thread).

    .venv/bin/python bench/bench_basis_sharing_recovery.py --ratios 0.5 0.2 0.3 0.4 --lrs 1e-4 1e-3

For every ratio: compress with the "improved" configuration (Basis Sharing + per-layer refit), measure
perplexity on Pride and Prejudice (the protocol's 80 windows) and on 16 held-out Emma windows, then
train LoRA on the coefficient matrices with each learning rate (on the 64 calibration windows only)
and measure both again. The learning rate is chosen on the held-out Emma windows (calibration-side
text), never on Pride and Prejudice. Rows are appended to
docs/results/basis_sharing/basis_sharing_recovery.json as soon as they exist.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_basis_sharing import RESULTS  # noqa: E402

from frugalnn.core.llm import load_causal_lm, perplexity  # noqa: E402
from frugalnn.core.report import make_record, write_record  # noqa: E402
from frugalnn.experiments.basis_sharing import (  # noqa: E402
    CONFIGS,
    REFERENCE,
    held_out_windows,
    protocol_data,
)
from frugalnn.methods.basis_sharing import Config, compress  # noqa: E402
from frugalnn.methods.basis_sharing.recovery import lora_recover  # noqa: E402


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
    dense, tok = load_causal_lm("smollm2")
    calib, evaluation, identity = protocol_data(tok)
    held = held_out_windows(tok, args.held_out)
    identity = {**identity, "held_out_emma_windows": args.held_out}
    rows: list[dict] = []
    cache: dict = {}  # dense Gram statistics, shared by every ratio (dense propagation)

    def save() -> None:
        record = make_record(
            "basis_sharing_recovery",
            config={**vars(args), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")},
            seed=0,
            data=identity,
            results=rows,
        )
        write_record(Path(args.out), record)

    for ratio in args.ratios:
        config = Config(ratio=ratio, **CONFIGS[args.config])
        start = time.perf_counter()
        compressed, _ = compress(copy.deepcopy(dense), config, calib, stats_cache=cache)
        compress_s = time.perf_counter() - start
        base = {
            "ratio": ratio,
            "config_name": args.config,
            "compress_s": compress_s,
            "reference_bs": REFERENCE["basis-sharing"].get(ratio),
            "reference_svdllm": REFERENCE["svd-llm"].get(ratio),
        }
        if not args.skip_base:
            rows.append(
                {
                    **base,
                    "lora_lr": None,
                    "ppl": perplexity(compressed, evaluation),
                    "held_out_emma_ppl": perplexity(compressed, held),
                }
            )
            print(
                f"r={ratio} no LoRA: ppl {rows[-1]['ppl']:.3f} emma {rows[-1]['held_out_emma_ppl']:.3f}",
                flush=True,
            )
        save()
        for lr in args.lrs:
            lora_cfg = dataclasses.replace(config, lora_epochs=args.epochs, lora_lr=lr)
            with torch.enable_grad():
                model, lora = lora_recover(copy.deepcopy(compressed), lora_cfg, calib)
            rows.append(
                {
                    **base,
                    "lora_lr": lr,
                    "lora_epochs": args.epochs,
                    "lora": lora,
                    "ppl": perplexity(model, evaluation),
                    "held_out_emma_ppl": perplexity(model, held),
                }
            )
            print(
                f"r={ratio} LoRA lr {lr:g}: ppl {rows[-1]['ppl']:.3f} emma {rows[-1]['held_out_emma_ppl']:.3f} "
                f"({lora['seconds']:.0f} s)",
                flush=True,
            )
            save()
            del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
