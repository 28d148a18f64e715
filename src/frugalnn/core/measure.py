"""Cost and quality measures: parameters, MACs per layer (forward hooks), accuracy, throughput.

MACs count multiply-accumulates of every convolution (1-3 d, transposed, grouped), linear (incl.
GPT-2's Conv1D), ``nn.MultiheadAttention`` (its projections and both attention matmuls) and the QKᵀ /
AV matmuls of transformers' attention modules, for the input shapes seen in one forward pass.
Element-wise ops, pooling, normalisation and embedding look-ups are not counted (the usual convention,
e.g. in the ResNet paper's FLOP figures); any other module with parameters of its own that ran gets
one warning naming its type, so a count is never silently low.
A module that defines ``macs_per_sample(input, output) -> int`` (e.g. a method's layer with squares
and products of its own) is counted by that method instead, with its own parameters.
"""

from __future__ import annotations

import time
import warnings
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


def _conv_macs(module: nn.modules.conv._ConvNd, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Per sample. A convolution: each output element takes (C_in / groups)·∏kernel MACs; a transposed
    one scatters each input element into (C_out / groups)·∏kernel outputs."""
    kernel = int(np.prod(module.kernel_size))
    if module.transposed:
        return int(inp.numel() // inp.shape[0] * module.out_channels // module.groups * kernel)
    return int(out.numel() // out.shape[0] * module.in_channels // module.groups * kernel)


def _mha_macs(module: nn.MultiheadAttention, inputs: tuple, kwargs: dict) -> int:
    """Per sample: the q/k/v projections, QKᵀ and AV (2·L·S·E) and the output projection."""
    query = inputs[0] if inputs else kwargs["query"]
    key = inputs[1] if len(inputs) > 1 else kwargs.get("key", query)
    seq_dim = 1 if module.batch_first and query.dim() == 3 else 0
    length, source = query.shape[seq_dim], key.shape[seq_dim]
    embed = module.embed_dim
    projections = length * embed * embed + source * (module.kdim + module.vdim) * embed
    return int(projections + 2 * length * source * embed + length * embed * embed)


# modules with parameters whose cost is not counted by convention (look-ups, normalisation, scaling)
NOT_COUNTED = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.PReLU,
)
_WARNED: set[str] = set()


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


def walk_layers(
    model: nn.Module,
    example: torch.Tensor | dict,
    select: Callable[[str, nn.Module], bool],
    visit: Callable[[str, nn.Module, tuple, dict, object], None],
) -> None:
    """One no-grad forward pass in eval mode that calls ``visit(name, module, inputs, kwargs, output)``
    after every module ``select(name, module)`` accepts, in execution order.

    The layer walker behind MAC counts and hardware mappings; the model's mode is restored and the
    hooks removed even when a visitor raises. ``example`` is a tensor or the kwargs of the forward.
    """
    handles = []

    def hook_for(name: str) -> Callable:
        def hook(mod: nn.Module, inputs: tuple, kwargs: dict, output: object) -> None:
            visit(name, mod, inputs, kwargs, output)

        return hook

    for name, module in model.named_modules():
        if select(name, module):
            handles.append(module.register_forward_hook(hook_for(name), with_kwargs=True))
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


def _costed(name: str, module: nn.Module) -> bool:
    kind = type(module).__name__
    return (
        callable(getattr(module, "macs_per_sample", None))
        or isinstance(module, nn.modules.conv._ConvNd | nn.Linear | nn.MultiheadAttention)
        or kind == "Conv1D"
        or kind.endswith("Attention")
    )


def _uncounted(name: str, module: nn.Module) -> bool:
    """A module with parameters of its own that the count leaves out (and convention does not)."""
    if _costed(name, module) or isinstance(module, NOT_COUNTED) or type(module).__name__.endswith("Norm"):
        return False
    return any(True for _ in module.parameters(recurse=False))


def mac_profile(model: nn.Module, example: torch.Tensor | dict, per_sample: bool = True) -> list[LayerCost]:
    """MACs and parameters per leaf layer from one forward pass (hooks), per sample by default."""
    records: list[LayerCost] = []
    batch = (example["input_ids"] if isinstance(example, dict) else example).shape[0]

    def visit(name: str, mod: nn.Module, inputs: tuple, kwargs: dict, output: object) -> None:
        out = output[0] if isinstance(output, tuple) else output
        if not isinstance(out, torch.Tensor):
            return
        kind = type(mod).__name__
        if _uncounted(name, mod):
            if kind not in _WARNED:
                _WARNED.add(kind)
                warnings.warn(
                    f"count_macs does not count modules of type {kind} (e.g. {name!r}); the total leaves "
                    "their multiply-accumulates out",
                    stacklevel=2,
                )
            return
        if callable(getattr(mod, "macs_per_sample", None)):  # a method's layer counts itself
            macs = int(mod.macs_per_sample(inputs[0] if inputs else None, out))
        elif isinstance(mod, nn.modules.conv._ConvNd):
            x = inputs[0] if inputs else kwargs.get("input")
            macs = _conv_macs(mod, x, out)
        elif isinstance(mod, nn.MultiheadAttention):
            macs = _mha_macs(mod, inputs, kwargs)
            kind = "multihead-attention"
        elif isinstance(mod, nn.Linear):
            macs = int(out.numel() // out.shape[-1] * mod.in_features * mod.out_features // batch)
        elif kind == "Conv1D":  # transformers' GPT-2 linear: weight (in, out)
            w = mod.weight
            macs = int(out.numel() // out.shape[-1] * w.shape[0] * w.shape[1] // batch)
        else:  # attention: the QKᵀ and AV matmuls
            hidden = inputs[0] if inputs else kwargs.get("hidden_states")
            macs = _attention_macs(mod, hidden) if isinstance(hidden, torch.Tensor) else 0
            kind = "attention-matmuls"
        own = sum(p.numel() for p in mod.parameters(recurse=False))
        records.append(LayerCost(name, kind, macs if per_sample else macs * batch, own, tuple(out.shape[1:])))

    walk_layers(model, example, lambda n, m: _costed(n, m) or _uncounted(n, m), visit)
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
