"""Mixed-domain calibration: deterministic for a seed, balanced within one window per domain, never
a token of an evaluation slice; the --calib forms and their errors."""

from __future__ import annotations

import pytest
import torch

from frugalnn.core.data.calib import (
    EVAL_SLICES,
    calibration_windows,
    evaluation_windows,
    parse_calib,
    split_counts,
)
from frugalnn.core.data.text import load_text
from frugalnn.errors import ConfigError, DataError

WINDOW = 64


def encode(text: str) -> list[int]:
    """A character-level tokenizer: positions in the token stream are positions in the text."""
    return [ord(c) % 4096 for c in text]


def test_parse_forms_and_errors(tmp_path) -> None:
    assert parse_calib("mix") == [("austen:emma", 1 / 3), ("jargon", 1 / 3), ("lee", 1 / 3)]
    assert parse_calib("austen:emma") == [("austen:emma", 1.0)]
    assert parse_calib("austen:emma=3,jargon=1") == [("austen:emma", 0.75), ("jargon", 0.25)]
    assert parse_calib(f"file:{tmp_path}/a.txt") == [(f"file:{tmp_path}/a.txt", 1.0)]
    for bad, message in [
        ("wiki", "unknown text source 'wiki'"),
        ("jargon=0", "weight > 0"),
        ("jargon=-1,lee=1", "weight > 0"),
        ("jargon=abc", "weight > 0"),
        ("jargon=1,jargon=2", "twice"),
        ("", "calib is empty"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_calib(bad)


def test_split_counts_is_within_one_of_each_share() -> None:
    for weights in ([1 / 3] * 3, [0.5, 0.25, 0.25], [0.9, 0.1], [1.0]):
        for count in (1, 7, 64, 100):
            counts = split_counts(weights, count)
            assert sum(counts) == count
            assert all(abs(c - w * count) < 1 for c, w in zip(counts, weights))


def _positions(source: str) -> tuple[dict[tuple, int], int]:
    ids = encode(load_text(source).text)
    starts = {tuple(ids[i : i + WINDOW]): i for i in range(0, len(ids) - WINDOW + 1, WINDOW)}
    return starts, len(ids)


def test_mix_is_deterministic_balanced_and_never_touches_an_evaluation_slice() -> None:
    spec = "austen:prideprejudice=1,jargon=1,lee=1"  # every source with a held-out slice
    windows, identity = calibration_windows(encode, spec, 30, WINDOW, seed=3)
    again, _ = calibration_windows(encode, spec, 30, WINDOW, seed=3)
    other, _ = calibration_windows(encode, spec, 30, WINDOW, seed=4)
    assert torch.equal(windows, again) and not torch.equal(windows, other)
    assert [s["windows"] for s in identity["sources"]] == [10, 10, 10]
    found = dict.fromkeys(("austen:prideprejudice", "jargon", "lee"), 0)
    for source in found:
        starts, total = _positions(source)
        lo, hi = EVAL_SLICES[source].bounds(total)
        for row in windows.tolist():
            start = starts.get(tuple(row))
            if start is not None:
                found[source] += 1
                assert start + WINDOW <= lo or start >= hi, (
                    f"{source} window at {start} overlaps [{lo}, {hi})"
                )
    assert found == {"austen:prideprejudice": 10, "jargon": 10, "lee": 10}


def test_evaluation_windows_are_the_held_out_slice() -> None:
    ids = encode(load_text("jargon").text)
    lo, hi = EVAL_SLICES["jargon"].bounds(len(ids))
    got = evaluation_windows(encode, "jargon", WINDOW)
    assert (
        got.numel() == (hi - lo) // WINDOW * WINDOW and got.flatten().tolist() == ids[lo : lo + got.numel()]
    )


def test_text_folder_source_and_too_many_windows(tmp_path) -> None:
    (tmp_path / "b.txt").write_text("beta " * 100)
    (tmp_path / "a.txt").write_text("alpha " * 100)
    text = load_text(f"dir:{tmp_path}")
    assert text.text.startswith("alpha") and text.identity["files"] == 2
    with pytest.raises(DataError, match="outside its evaluation slice"):
        calibration_windows(encode, f"dir:{tmp_path}", 1000, WINDOW, seed=0)
    with pytest.raises(DataError, match="not a folder of .txt files"):
        load_text(f"dir:{tmp_path}/none")
