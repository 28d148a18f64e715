"""Readable views of results: headline tables (``SUMMARY.md`` of ``frugalnn reproduce``) and the index of a
results folder (``docs/results/INDEX.md``: one row per record, what it is, the command that made it, its
date and headline), generated from the records themselves."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from frugalnn.core.io import atomic_write_text
from frugalnn.experiments import by_package, headline_rows, stored_headline

RECORD_KEYS = ("name", "created_utc", "config", "seed", "data", "versions", "machine", "results")


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def headline_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Headline rows as a Markdown table: metric, ours, baseline, target, met?"""
    if not rows:
        return "(no headline)\n"
    lines = ["| metric | ours | baseline | target | met? |", "|---|---|---|---|---|"]
    for r in headline_rows(list(rows)):
        cells = [r["metric"], r["ours"], r["baseline"], r["target"], r["met"]]
        lines.append("| " + " | ".join(_number(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(path: Path, runs: Sequence[Mapping[str, Any]]) -> Path:
    """``SUMMARY.md``: per experiment run, its time and its headline table. ``runs``: dicts with
    ``experiment``, ``summary``, ``seconds``, ``folder`` and ``headline`` (rows or a plain dict)."""
    parts = ["# frugalnn reproduce\n"]
    for run in runs:
        parts.append(
            f"\n## {run['experiment']}: {run['summary']}\n\n{run['seconds']:.1f} s; records, tables and plots in "
            f"`{run['folder']}/`.\n\n" + headline_table(headline_rows(run["headline"]))
        )
    return atomic_write_text(path, "".join(parts))


def _compact(rows: list[dict[str, Any]] | None, results: Any, limit: int = 3) -> str:
    """At most ``limit`` headline rows in one table cell; without rows, the size of the results."""
    if rows:
        cells = []
        for r in rows[:limit]:
            text = f"{r['metric']}: **{_number(r['ours'])}**"
            if r["baseline"] is not None:
                text += f" (vs {_number(r['baseline'])})"
            if r["met"] is not None:
                text += " ✓" if r["met"] else " ✗"
            cells.append(text)
        more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
        return "; ".join(cells).replace("|", "\\|") + more
    if isinstance(results, list):
        return f"{len(results)} rows"
    if isinstance(results, Mapping):
        if isinstance(results.get("rows"), list):
            return f"{len(results['rows'])} rows"
        return "results: " + ", ".join(list(results)[:5])
    return "—"


def is_record(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(key in obj for key in RECORD_KEYS)


def index_entries(results: Path) -> list[dict[str, Any]]:
    """One entry per record (a JSON file with the record keys) under ``results``, folder by folder."""
    entries = []
    for path in sorted(results.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not is_record(record):
            continue
        rel = path.relative_to(results)
        folder = rel.parts[0] if len(rel.parts) > 1 else ""
        rows = stored_headline(folder, record) if folder else None
        entries.append(
            {
                "folder": folder,
                "file": rel.as_posix(),
                "table": rel.with_suffix(".md").as_posix() if path.with_suffix(".md").exists() else None,
                "what": record.get("about") or record["name"],
                "command": record.get("command") or "—",
                "date": str(record["created_utc"])[:10],
                "headline": _compact(rows, record["results"]),
            }
        )
    return entries


def build_index(results: Path) -> str:
    """The Markdown of ``INDEX.md`` for a results folder (one section per experiment folder)."""
    entries = index_entries(results)
    text = [
        "# Results index\n\n",
        "Generated from the records by `frugalnn reproduce --index docs/results`; do not edit by hand. Every "
        "record (JSON) carries its config, seed, data identity and versions. Commands are given as the bench "
        "takes them today; a record older than a change to its protocol ran with the code of its date "
        "(`git log` on the file).\n",
    ]
    for folder in sorted({e["folder"] for e in entries}):
        exp = by_package(folder) if folder else None
        title = f"{folder}/ — experiment `{exp.name}`: {exp.summary}" if exp else f"{folder}/"
        text.append(f"\n## {title}\n\n| record | what | command | date | headline |\n|---|---|---|---|---|\n")
        for e in (e for e in entries if e["folder"] == folder):
            name = Path(e["file"]).name
            link = f"[{name}]({e['file']})" + (f" ([table]({e['table']}))" if e["table"] else "")
            cells = [link, e["what"].replace("|", "\\|"), f"`{e['command']}`", e["date"], e["headline"]]
            text.append("| " + " | ".join(cells) + " |\n")
        others = sorted(
            p.relative_to(results).as_posix()
            for p in (results / folder).rglob("*")
            if p.is_file() and p.suffix in (".png", ".jsonl")
        ) if folder else []  # fmt: skip
        if others:
            text.append("\nPlots and raw rows: " + ", ".join(f"[{Path(o).name}]({o})" for o in others) + "\n")
    return "".join(text)


def write_index(results: Path) -> Path:
    return atomic_write_text(results / "INDEX.md", build_index(results))
