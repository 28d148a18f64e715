"""An lm-evaluation-harness model named ``frugalnn``: any model ``load_causal_lm`` reads (the bundled
``smollm2``, a compressed folder, an HF folder, a ``.gguf``, a Hub id) under the harness's own
HuggingFace wrapper, so every task type it supports runs unchanged.

    frugalnn lm-eval --model frugalnn --model_args pretrained=runs/smol-bs30 --tasks ... --include_path DIR
    python: import frugalnn.interop.lm_eval_model; lm_eval.simple_evaluate(model="frugalnn", ...)

The harness discovers models only in its own package, so the name is registered when this module is
imported; ``frugalnn lm-eval`` imports it and then runs the harness's command line.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM
except ImportError as err:  # pragma: no cover - the message is the point
    from frugalnn.errors import ToolError

    raise ToolError("the lm-eval adapter needs lm-evaluation-harness: pip install 'frugalnn[eval]'") from err

from frugalnn.core.llm import load_causal_lm


@register_model("frugalnn")
class FrugalnnLM(HFLM):
    """``pretrained`` is anything ``frugalnn.core.llm.load_causal_lm`` takes; other model_args as HFLM's
    (``batch_size``, ``max_length``, ...). Runs on the CPU unless ``device`` says otherwise."""

    def __init__(self, pretrained: str, device: str = "cpu", dtype: str | None = None, **kwargs: Any) -> None:
        import torch

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            # the harness's command line asks for cuda by default; this machine has none
            print("frugalnn lm-eval: no CUDA GPU here, running on the CPU", file=sys.stderr)
            device = "cpu"
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else torch.float32
        model, tokenizer = load_causal_lm(pretrained, dtype=torch_dtype)
        super().__init__(pretrained=model.to(device), tokenizer=tokenizer, device=device, **kwargs)
