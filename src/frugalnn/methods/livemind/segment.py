"""Segmenters: cut the streamed text into pieces (LiveMind spec, loop step 1).

No NLTK data is needed: sentence boundaries come from a small rule set (end punctuation followed by
white space, not after a known abbreviation or an initial, not before a lower-case word). Every
segmenter is lossless: ``"".join(segment(text)) == text``, white space travels with the piece that
follows it (so prompt formats can join segments with ``""``, as the reference code does).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from frugalnn.errors import ConfigError

# Lower-case forms, without the final dot. Multi-dot ones ("e.g") are matched on the whole token.
ABBREVIATIONS = frozenset(
    """e.g i.e etc vs cf al approx ca mr mrs ms dr prof st jr sr inc ltd co corp dept fig figs no nos
    vol vols pp p ed eds eq eqs sec ch art u.s u.k u.n a.m p.m ph.d b.c a.d jan feb mar apr jun jul aug
    sep sept oct nov dec gen col lt sgt rev est min max resp mt ft""".split()
)
_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")


def _is_abbreviation(text: str, dot_pos: int) -> bool:
    """Whether the '.' at ``dot_pos`` ends an abbreviation or an initial rather than a sentence."""
    start = dot_pos
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'[":
        start -= 1
    token = text[start:dot_pos].lower()
    if token in ABBREVIATIONS:
        return True
    return len(token) == 1 and token.isalpha() and text[start].isupper()  # "J. Smith"


def sentence_boundaries(text: str) -> list[int]:
    """Offsets where a new sentence starts (at the white space that separates it)."""
    cuts = []
    for match in _END.finditer(text):
        end = match.end()
        punct = match.group(0)
        if (
            punct.startswith(".")
            and len(punct.rstrip("\"')]")) == 1
            and _is_abbreviation(text, match.start())
        ):
            continue
        rest = text[end:].lstrip()
        # Cut only once the next sentence has begun: while streaming, "etc. " may still go on with
        # " and ...", so a cut at the very end would be taken back later. "etc. and": no cut.
        if not rest or rest[0].islower():
            continue
        cuts.append(end)
    return cuts


def _split_at(text: str, cuts: list[int]) -> list[str]:
    pieces, prev = [], 0
    for cut in cuts:
        if prev < cut < len(text):
            pieces.append(text[prev:cut])
            prev = cut
    if prev < len(text):
        pieces.append(text[prev:])
    return pieces


def merge_short(pieces: list[str], min_chars: int) -> list[str]:
    """Merge a piece shorter than ``min_chars`` (stripped) into the next one (reference ``min_len``)."""
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        carry += piece
        if len(carry.strip()) >= min_chars:
            merged.append(carry)
            carry = ""
    if carry:
        if merged and not carry.strip():
            merged[-1] += carry
        else:
            merged.append(carry)
    return merged


def split_sentences(text: str, min_chars: int = 10) -> list[str]:
    return merge_short(_split_at(text, sentence_boundaries(text)), min_chars)


def split_clauses(text: str, min_chars: int = 10) -> list[str]:
    """Sentences, then commas inside them; a comma between digits (1,000 or 1, 000) never splits."""
    out: list[str] = []
    for sentence in split_sentences(text, min_chars):
        cuts = []
        for match in re.finditer(r",(?=\s)", sentence):
            before = sentence[: match.start()].rstrip()
            after = sentence[match.end() :].lstrip()
            if before[-1:].isdigit() and after[:1].isdigit():
                continue
            cuts.append(match.end())
        out.extend(merge_short(_split_at(sentence, cuts), min_chars))
    return out


def split_words(text: str) -> list[str]:
    """Words with their leading white space."""
    return re.findall(r"\s*\S+|\s+$", text)


def split_chars(text: str) -> list[str]:
    return list(text)


def get_segmenter(name: str, min_chars: int = 10) -> Callable[[str], list[str]]:
    if name == "char":
        return split_chars
    if name == "word":
        return split_words
    if name == "sentence":
        return lambda text: split_sentences(text, min_chars)
    if name == "clause":
        return lambda text: split_clauses(text, min_chars)
    raise ConfigError(f"unknown segmenter {name!r}; use char, word, sentence or clause")
