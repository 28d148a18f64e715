"""Cost and quality measures: parameters, MACs per layer (forward hooks), accuracy, throughput.

MACs count multiply-accumulates of conv, linear (incl. GPT-2's Conv1D) and attention matmuls
(QKᵀ and AV) for the actual input shapes seen in one forward pass; element-wise ops, pooling and
normalisation are not counted (the usual convention, e.g. in the ResNet paper's FLOP figures).
A module that defines ``macs_per_sample(input, output) -> int`` (e.g. a method's layer with squares
and products of its own) is counted by that method instead, with its own parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from frugalnn.errors import ConfigError


@dataclass
class LayerCost:
    name: str
    kind: str
    macs: int
    params: int
    output_shape: tuple[int, ...]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters, counting a tensor shared by several modules once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _conv_macs(module: nn.Conv2d, out: torch.Tensor) -> int:
    # each output element: (C_in / groups) * kH * kW multiply-accumulates
    per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
    return int(out.numel() // out.shape[0] * per_out)


def _attention_macs(module: nn.Module, hidden: torch.Tensor) -> int:
    """QKᵀ and AV of one attention module on (B, T, d) hidden states: 2 · heads · T² · head_dim per sample."""
    cfg = getattr(module, "config", None)
    heads = (
        getattr(module, "num_heads", None)
        or getattr(cfg, "num_attention_heads", None)
        or getattr(cfg, "n_head", None)
    )
    head_dim = getattr(module, "head_dim", None)
    if heads is None:
        return 0
    seq = hidden.shape[-2]
    width = hidden.shape[-1]
    head_dim = head_dim or width // heads
    return int(2 * heads * seq * seq * head_dim)


def mac_profile(model: nn.Module, example: torch.Tensor | dict, per_sample: bool = True) -> list[LayerCost]:
    """MACs and parameters per leaf layer from one forward pass (hooks), per sample by default."""
    records: list[LayerCost] = []
    handles = []
    batch = (example["input_ids"] if isinstance(example, dict) else example).shape[0]

    def hook_for(name: str, module: nn.Module) -> Callable:
        def hook(mod: nn.Module, inputs: tuple, kwargs: dict, output: object) -> None:
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, torch.Tensor):
                return
            kind = type(mod).__name__
            if callable(getattr(mod, "macs_per_sample", None)):
                macs = int(mod.macs_per_sample(inputs[0] if inputs else None, out))
            elif isinstance(mod, nn.Conv2d):
                macs = _conv_macs(mod, out)
            elif isinstance(mod, nn.Linear):
                macs = int(out.numel() // out.shape[-1] * mod.in_features * mod.out_features // batch)
            elif kind == "Conv1D":  # transformers' GPT-2 linear: weight (in, out)
                w = mod.weight
                macs = int(out.numel() // out.shape[-1] * w.shape[0] * w.shape[1] // batch)
            elif kind.endswith("Attention"):
                hidden = inputs[0] if inputs else kwargs.get("hidden_states")
                macs = _attention_macs(mod, hidden) if isinstance(hidden, torch.Tensor) else 0
                kind = "attention-matmuls"
            else:
                return
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            records.append(
                LayerCost(name, kind, macs if per_sample else macs * batch, own, tuple(out.shape[1:]))
            )

        return hook

    for name, module in model.named_modules():
        kind = type(module).__name__
        custom = callable(getattr(module, "macs_per_sample", None))
        if (
            custom
            or isinstance(module, nn.Conv2d | nn.Linear)
            or kind == "Conv1D"
            or kind.endswith("Attention")
        ):
            handles.append(module.register_forward_hook(hook_for(name, module), with_kwargs=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(example, dict):
                model(**example)
            else:
                model(example)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return records


def count_macs(model: nn.Module, example: torch.Tensor | dict) -> int:
    """Total MACs per sample of one forward pass on ``example``."""
    return sum(r.macs for r in mac_profile(model, example))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits for a tensor of inputs, in eval mode, batched."""
    if batch_size <= 0:
        raise ConfigError(f"batch size must be positive, got {batch_size}")
    was_training = model.training
    model.eval()
    # a model on an accelerator gets its batches there; the logits come back to the CPU
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    outs = [model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1]."""
    if len(x) == 0:
        raise ConfigError("accuracy of an empty data set is undefined; pass at least one sample")
    return float((predict(model, x, batch_size).argmax(1) == y).float().mean())


def throughput(
    fn: Callable[[], object], items_per_call: int, repeats: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Items per second of ``fn`` (median over repeats, after warm-up), with the spread."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    med = float(np.median(times))
    return {
        "items_per_s": items_per_call / med,
        "median_s": med,
        "min_s": float(min(times)),
        "max_s": float(max(times)),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
    }


def fastest_seconds(
    calls: dict[str, Callable[[], object]], rounds: int = 3, repeats: int = 3, clock: str = "wall"
) -> dict[str, float]:
    """Seconds per call from the fastest of rounds × repeats timed calls (one warm-up call each round),
    rounds interleaved between the calls: on a shared machine other jobs only ever slow a call down, so
    the minimum is the least-disturbed estimate. ``clock="thread"`` times the CPU time of the calling
    thread instead of the wall clock (at 1 thread every runtime here computes on the calling thread;
    thread time leaves out the time the hypervisor or another process held the core)."""
    now = time.thread_time if clock == "thread" else time.perf_counter
    best = dict.fromkeys(calls, float("inf"))
    with torch.no_grad():
        for _ in range(rounds):
            for name, call in calls.items():
                call()
                for _ in range(repeats):
                    start = now()
                    call()
                    best[name] = min(best[name], now() - start)
    return best


def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 4) -> float:
    """Perplexity of a causal LM over non-overlapping token windows: exp(mean per-window mean NLL)."""
    from frugalnn.core.llm import perplexity as _llm_perplexity

    return _llm_perplexity(model, windows, batch_size=batch_size)
