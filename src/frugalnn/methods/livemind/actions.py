"""Actions and the action cache (LiveMind spec, loop steps 2-3).

An inference step answers ``action inference. <content>`` or ``action wait.``; the segments it
handled and its action go into the cache, so the next step only sends the segments that are new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

INFERENCE = "inference"
WAIT = "wait"
RESPONSE = "response"
ACTION_KINDS = (INFERENCE, WAIT)

# The reference parser (live_mind/format/formatter.py): `^action ([a-z]+).[ \n]*(.*)$`.
_ACTION_RE = re.compile(r"^action ([a-z]+).[ \n]*(.*)$", re.DOTALL)


@dataclass
class Action:
    """What one step did with its segments (``prompts``)."""

    kind: str
    content: str = ""
    prompts: list[str] = field(default_factory=list)
    parsed: bool = True  # False when the reply did not follow the format (counted as an inference)

    @property
    def text(self) -> str:
        """The content as it goes into later prompts."""
        return self.content.strip()


def parse_action(reply: str, kinds: tuple[str, ...] = ACTION_KINDS) -> Action:
    """Parse a reply; an unparseable one (or an unknown action word) counts as an inference (spec)."""
    match = _ACTION_RE.match(reply.strip())
    if match and match.group(1) in kinds:
        kind = match.group(1)
        return Action(kind, "" if kind == WAIT else match.group(2).strip())
    return Action(INFERENCE, reply.strip(), parsed=False)


class ActionCache:
    """Segments already handled, in order, each with the action taken on it.

    ``read(segments)`` walks the cache along the current segment list; the first segment that
    differs (the user edited earlier text) invalidates everything cached from there on.
    """

    def __init__(self) -> None:
        self.actions: list[Action] = []

    def read(self, segments: list[str]) -> tuple[list[Action], list[str]]:
        """(cached actions that match the start of ``segments``, the segments not handled yet)."""
        pos = 0
        kept: list[Action] = []
        for action in self.actions:
            n = len(action.prompts)
            if n and segments[pos : pos + n] != action.prompts:
                break
            kept.append(action)
            pos += n
        self.actions = kept
        return list(kept), segments[pos:]

    def write(self, action: Action) -> None:
        self.actions.append(action)

    def clear(self) -> None:
        self.actions = []

    @property
    def n_segments(self) -> int:
        return sum(len(a.prompts) for a in self.actions)
