"""EncodingNet with the full settings (8-bit encoders, LeNet-5 and ResNet-20): writes docs/results/encodingnet/.

Run as ``$PY bench/bench_encodingnet.py`` (one torch thread). The four
encoder searches resume from docs/results/encodingnet/search8/ when they were run before (e.g. by
docs/results/encodingnet/run_searches.sh).
"""

import json
from pathlib import Path

import torch

from frugalnn.experiments.encodingnet.protocol import run_protocol

if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(__file__).resolve().parent.parent / "docs" / "results" / "encodingnet"
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run_protocol(out, quick=False, seed=0), indent=2))
