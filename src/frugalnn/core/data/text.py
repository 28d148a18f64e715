"""Text: Jane Austen's novels, the Jargon File, WikiText-2 or any UTF-8 file; token windows; and the
one sampler of calibration windows (a local ``torch.Generator``, so sampling never moves torch's
global random state).
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from frugalnn.core.assets import asset_path, file_sha256
from frugalnn.errors import ConfigError, DataError

AUSTEN_NOVELS = (
    "emma",
    "mansfieldpark",
    "northangerabbey",
    "persuasion",
    "prideprejudice",
    "sensesensibility",
)
TEXT_SOURCES = tuple(f"austen:{n}" for n in AUSTEN_NOVELS) + (
    "jargon",
    "lee",
    "wikitext2:PATH",
    "file:PATH",
    "dir:PATH",
)


def _austen_lines(novel: str) -> list[str]:
    """One novel's lines from janeaustenr's R lazy-load database (.rdx index -> zlib records in .rdb)."""
    import rdata

    root = asset_path("austen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns "assumed RDS" for lazy-load records
        index = rdata.conversion.convert(
            rdata.parser.parse_data(gzip.decompress((root / "Rdata.rdx").read_bytes()))
        )
        offsets = {str(k): (int(v[0]), int(v[1])) for k, v in index["variables"].items()}
        if novel not in offsets:
            raise ConfigError(f"unknown Austen novel {novel!r}; choose one of {', '.join(sorted(offsets))}")
        start, length = offsets[novel]
        with open(root / "Rdata.rdb", "rb") as handle:
            handle.seek(start)
            record = handle.read(length)
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(record[4:])))
    return [str(line) for line in lines]


@dataclass
class TextData:
    name: str
    text: str
    identity: dict[str, Any]


def load_text(source: str) -> TextData:
    """Text by name: ``austen:emma`` (lines joined by newlines), ``jargon``, ``lee`` (the Lee news
    corpus), ``wikitext2:DIR_OR_FILE`` (the raw split; a folder means its wiki.train.raw),
    ``file:PATH`` (any UTF-8 file) or ``dir:PATH`` (every ``.txt`` file of a folder, in name order)."""
    kind, _, arg = source.partition(":")
    if kind == "austen":
        text = "\n".join(_austen_lines(arg))
        path = asset_path("austen") / "Rdata.rdb"
        return TextData(
            source, text, {"source": source, "rdb_sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    if kind == "jargon":
        path = asset_path("jargon")
        text = gzip.decompress(path.read_bytes()).decode("latin-1")
        return TextData(
            source, text, {"source": source, "sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    if kind == "lee":  # one news article per line
        path = asset_path("lee")
        text = path.read_text(encoding="utf-8")
        return TextData(
            source, text, {"source": source, "sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    if kind == "dir":
        return _text_folder(source, arg)
    if kind in ("wikitext2", "file"):
        if not arg:
            raise ConfigError(f"{kind}: needs a path, e.g. {kind}:/data/wikitext-2-raw/wiki.test.raw")
        path = Path(arg)
        if path.is_dir():
            path = path / "wiki.train.raw"
        if not path.is_file():
            raise DataError(f"text file {path} does not exist; give the path of a WikiText-2 .raw file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err.reason}); convert it first") from None
        return TextData(
            source, text, {"source": source, "sha256": file_sha256(path)[:16], "chars": len(text)}
        )
    raise ConfigError(f"unknown text source {source!r}; choose one of {', '.join(TEXT_SOURCES)}")


def _text_folder(source: str, arg: str) -> TextData:
    folder = Path(arg)
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{source}: {folder} is not a folder of .txt files; give one with at least one")
    parts = []
    for path in files:
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(f"{path} is not UTF-8 text ({err.reason}); convert it first") from None
    text = "\n\n".join(parts)
    digests = "".join(file_sha256(p)[:16] for p in files)
    return TextData(
        source, text, {"source": source, "files": len(files), "sha256s": digests, "chars": len(text)}
    )


def token_windows(
    token_ids: Iterable[int] | torch.Tensor, window: int, limit_tokens: int | None = None
) -> torch.Tensor:
    """Cut a token stream into non-overlapping windows of ``window`` tokens (a trailing rest is dropped)."""
    ids = torch.as_tensor(token_ids, dtype=torch.long).flatten()
    if window <= 0:
        raise ConfigError(f"window must be positive, got {window}")
    if limit_tokens is not None:
        ids = ids[:limit_tokens]
    count = len(ids) // window
    if count == 0:
        raise DataError(f"text has {len(ids)} tokens, fewer than one window of {window}; use a longer text")
    return ids[: count * window].view(count, window)


def sample_windows(windows: torch.Tensor, count: int, seed: int, skip: int = 0) -> torch.Tensor:
    """``count`` windows drawn without replacement: rows ``skip .. skip+count`` of one seeded permutation.

    Equal to ``torch.manual_seed(seed); windows[torch.randperm(len(windows))[skip:skip + count]]`` (the
    same Mersenne-Twister stream) without touching the global generator; ``skip`` gives held-out
    windows disjoint from a calibration draw of ``skip`` windows with the same seed.
    """
    if count < 1:
        raise ConfigError(f"count must be at least 1, got {count}")
    if skip + count > len(windows):
        raise DataError(
            f"{skip + count} windows asked for, the text has {len(windows)}; use fewer or a longer text"
        )
    order = torch.randperm(len(windows), generator=torch.Generator().manual_seed(seed))
    return windows[order[skip : skip + count]]
