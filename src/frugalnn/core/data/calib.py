"""Calibration windows drawn from several text domains, and the evaluation slice of each domain.

A compressed LLM should stay a general model, so calibration mixes domains (``mix``: an Austen novel,
the Jargon File and the Lee news corpus, one third each) and evaluation measures each domain on a
slice that calibration never sees:

| domain | evaluation slice | calibration may use |
|---|---|---|
| ``austen:prideprejudice`` | its first 40,960 tokens | the rest of it; ``mix`` calibrates on ``austen:emma`` |
| ``jargon`` | 20 windows of 512 tokens from the start of its middle third | everything else |
| ``lee`` | 20 windows of 512 tokens from the start of its middle third | everything else |

A slice is given in tokens, so it holds for any window length: calibration windows that overlap it
are dropped before sampling. Window counts follow the weights (largest remainder, so each domain is
within one window of its share); each domain's draw is ``sample_windows`` with seed + its position,
and the concatenation is shuffled with the seed: everything is deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from frugalnn.core.data.text import TEXT_SOURCES, load_text, sample_windows, token_windows
from frugalnn.errors import ConfigError, DataError

MIX = {"austen:emma": 1.0, "jargon": 1.0, "lee": 1.0}
EVAL_DOMAINS = ("austen:prideprejudice", "jargon", "lee")


@dataclass(frozen=True)
class EvalSlice:
    """Tokens [floor(start_fraction · n) .. + tokens) of a text's token stream."""

    start_fraction: float
    tokens: int

    def bounds(self, total_tokens: int) -> tuple[int, int]:
        start = math.floor(self.start_fraction * total_tokens)
        return start, min(total_tokens, start + self.tokens)


EVAL_SLICES: dict[str, EvalSlice] = {
    "austen:prideprejudice": EvalSlice(0.0, 40960),
    "jargon": EvalSlice(1 / 3, 20 * 512),
    "lee": EvalSlice(1 / 3, 20 * 512),
}


def parse_calib(spec: str) -> list[tuple[str, float]]:
    """``mix``, one source (``austen:emma``, ``jargon``, ``lee``, ``file:PATH``, ``dir:PATH``, ...), or
    a weighted list ``austen:emma=0.5,jargon=0.5`` (weights > 0, normalised to sum 1)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("calib is empty; give mix, a source such as austen:emma, or source=weight,...")
    if spec.strip() == "mix":
        items = list(MIX.items())
    elif "=" not in spec:
        items = [(spec.strip(), 1.0)]
    else:
        items = []
        for part in spec.split(","):
            source, sep, weight = part.strip().rpartition("=")
            try:
                value = float(weight)
            except ValueError:
                value = float("nan")
            if not sep or not source or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"calib entry {part.strip()!r} must be source=weight with a weight > 0")
            items.append((source, value))
    for source, _ in items:
        kind = source.partition(":")[0]
        known = {s.partition(":")[0] for s in TEXT_SOURCES}
        if kind not in known:
            raise ConfigError(f"unknown text source {source!r}; choose from mix, {', '.join(TEXT_SOURCES)}")
    if len({s for s, _ in items}) != len(items):
        raise ConfigError(f"calib {spec!r} names a source twice; give each once")
    total = sum(w for _, w in items)
    return [(s, w / total) for s, w in items]


def split_counts(weights: list[float], count: int) -> list[int]:
    """``count`` split by ``weights`` with the largest-remainder rule: each within one of its share."""
    shares = [w * count for w in weights]
    counts = [math.floor(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (-(shares[i] - counts[i]), i))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    return counts


def _allowed(source: str, windows: torch.Tensor, window: int, total_tokens: int) -> torch.Tensor:
    """Indices of the windows (window i = tokens [i·window, (i+1)·window) of a stream of
    ``total_tokens``) that do not overlap ``source``'s evaluation slice."""
    index = torch.arange(len(windows))
    held_out = EVAL_SLICES.get(source)
    if held_out is None:
        return index
    start, end = held_out.bounds(total_tokens)
    first, last = index * window, index * window + window  # window i covers tokens [first, last)
    return index[(last <= start) | (first >= end)]


def calibration_windows(
    encode: Any, spec: str, count: int, window: int, seed: int
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``count`` windows of ``window`` tokens for calibration ``spec``; ``encode(text) -> token ids``.

    Returns (windows [count, window], identity: sources, weights, windows per source, seed)."""
    sources = parse_calib(spec)
    counts = split_counts([w for _, w in sources], count)
    parts, identity = [], {"calib": spec, "window": window, "seed": seed, "sources": []}
    for i, ((source, weight), n) in enumerate(zip(sources, counts)):
        text = load_text(source)
        ids = torch.as_tensor(encode(text.text)).flatten()
        windows = token_windows(ids, window)
        allowed = _allowed(source, windows, window, len(ids))
        if n > len(allowed):
            raise DataError(
                f"calibration source {source} has {len(allowed)} windows of {window} tokens outside its "
                f"evaluation slice, {n} asked for; lower the window count or its weight"
            )
        if n:
            parts.append(windows[allowed][sample_windows(torch.arange(len(allowed)), n, seed + i)])
        identity["sources"].append({**text.identity, "weight": round(weight, 6), "windows": n})
    mixed = torch.cat(parts)
    if len(parts) == 1:  # one source: exactly sample_windows' draw (the single-text protocol)
        return mixed, identity
    order = torch.randperm(len(mixed), generator=torch.Generator().manual_seed(seed))
    return mixed[order], identity


def evaluation_windows(
    encode: Any, domain: str, window: int, limit_tokens: int | None = None
) -> torch.Tensor:
    """The windows a domain is evaluated on: its held-out slice, or its first ``limit_tokens`` tokens."""
    ids = torch.as_tensor(encode(load_text(domain).text)).flatten()
    held_out = EVAL_SLICES.get(domain)
    if held_out is not None:
        start, end = held_out.bounds(len(ids))
        ids = ids[start:end]
    return token_windows(ids, window, limit_tokens=limit_tokens)
