"""One bounded generation over a backend: the stop rules every LiveMind step and the baseline share
(end marker, token cap, a repetition loop, the answer line, or a caller's time budget).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from frugalnn.methods.livemind.backends import Backend, Messages
from frugalnn.methods.livemind.config import ANSWER_PATTERN

_ANSWER_RE = re.compile(ANSWER_PATTERN)


@dataclass
class GenResult:
    text: str = ""
    seconds: float = 0.0
    tokens: int = 0
    reason: str = "eos"  # eos | max | answer | loop | cut | choice
    stats: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0  # wall time (equals ``seconds`` unless the backend runs on a CPU-time clock)


def is_looping(text: str, n: int) -> bool:
    """True when the last ``n`` words already occurred, in order, earlier in ``text`` (a repetition loop)."""
    words = text.split()
    if n <= 0 or len(words) <= n:
        return False
    tail = words[-n:]
    return any(words[i : i + n] == tail for i in range(len(words) - n))


def generate(
    backend: Backend,
    messages: Messages,
    *,
    max_new_tokens: int,
    prefix: str = "",
    loop_ngram: int = 0,
    stop_at_answer: bool = False,
    should_stop: Callable[[float], bool] | None = None,
    on_piece: Callable[[str], None] | None = None,
    avoid_start: str = "",
) -> GenResult:
    """Run one bounded generation: stops at the end marker, the token cap, a loop, the answer, or ``should_stop``."""
    result = GenResult(reason="max")
    if avoid_start:
        pieces = backend.stream(
            messages, max_new_tokens=max_new_tokens, prefix=prefix, avoid_start=avoid_start
        )
    else:
        pieces = backend.stream(messages, max_new_tokens=max_new_tokens, prefix=prefix)
    try:
        for piece in pieces:
            result.seconds += piece.seconds
            result.wall_s += piece.seconds if piece.wall_s is None else piece.wall_s
            if piece.text:
                result.text += piece.text
                result.tokens += 1
                if on_piece:
                    on_piece(piece.text)
            if stop_at_answer and _ANSWER_RE.search(result.text):
                result.reason = "answer"
                break
            if loop_ngram and piece.text[:1].isspace() and is_looping(result.text, loop_ngram):
                result.reason = "loop"
                break
            if should_stop and should_stop(result.seconds):
                result.reason = "cut"
                break
        else:
            result.reason = "eos" if result.tokens < max_new_tokens else "max"
    finally:
        close = getattr(pieces, "close", None)
        if close:
            close()
    result.stats = dict(getattr(backend, "last_stats", {}) or {})
    return result
