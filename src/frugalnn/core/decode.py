"""Timed greedy generation with a KV cache, prefill timing and peak resident memory (decode benchmarks).

``greedy_decode`` is HF ``generate(do_sample=False)`` for prompts of equal length (no padding) written
out, so that the prefill and the one-token steps are timed apart: the prefill keeps the last position's
logits only (``logits_to_keep=1``) and writes the KV cache; each step feeds the previous token.
Every time is taken on two clocks: wall (``perf_counter``) and the calling thread's CPU time
(``thread_time``: at 1 torch thread all compute runs on the calling thread, and the CPU time leaves out
the time another process held the core).
"""

from __future__ import annotations

import contextlib
import ctypes
import inspect
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Seconds:
    wall: float
    cpu: float


class _Timer:
    def __enter__(self) -> _Timer:
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = Seconds(time.perf_counter() - self.wall, time.thread_time() - self.cpu)


@dataclass
class DecodeRun:
    tokens: torch.Tensor  # [batch, new_tokens] greedy tokens
    prefill: Seconds  # the prompt, last-position logits, KV cache written: gives the first new token
    steps: Seconds  # the new_tokens - 1 one-token steps


@torch.no_grad()
def greedy_decode(
    model: torch.nn.Module,
    ids: torch.Tensor,
    new_tokens: int,
    around_steps: contextlib.AbstractContextManager | None = None,
) -> DecodeRun:
    """``new_tokens`` greedy tokens after ``ids`` [batch, length] (equal-length prompts, no padding).
    ``around_steps`` (e.g. a ``torch.profiler.profile``) is entered around the one-token steps only."""
    if new_tokens < 1 or ids.ndim != 2:
        raise ValueError(
            f"need ids [batch, length] and new_tokens >= 1, got {tuple(ids.shape)}, {new_tokens}"
        )
    with _Timer() as prefill:
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    tokens = [token]
    # transformers 5.24 renamed the cache argument and output from past_key_values to cache
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with around_steps or contextlib.nullcontext(), _Timer() as steps:
        past = getattr(out, name)
        for _ in range(new_tokens - 1):
            out = model(input_ids=token, use_cache=True, **{name: past})
            past = getattr(out, name)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(token)
    return DecodeRun(torch.cat(tokens, dim=1), prefill.seconds, steps.seconds)


@torch.no_grad()
def prefill_seconds(model: torch.nn.Module, ids: torch.Tensor, logits_to_keep: int = 0) -> Seconds:
    """One forward over ``ids`` without a cache; ``logits_to_keep`` 0: logits at every position."""
    with _Timer() as timer:
        model(input_ids=ids, use_cache=False, logits_to_keep=logits_to_keep)
    return timer.seconds


def peak_rss_bytes() -> int:
    """The process's peak resident set so far (``getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's resident high-water mark to the current RSS (Linux ``clear_refs`` 5; on Linux
    ``ru_maxrss`` and VmHWM both follow it, so a later ``peak_rss_bytes`` is the peak since the reset);
    False where that is not possible. Freed heap memory is first handed back to the system (glibc
    ``malloc_trim``), so the new peak counts live memory, not what the allocator kept from earlier."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def vm_hwm_bytes(field: str = "VmHWM") -> int | None:
    """Peak resident set since the last ``reset_peak_rss`` (or the process start), from /proc
    (``field="VmRSS"``: the current resident set)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
