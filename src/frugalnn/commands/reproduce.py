"""``frugalnn reproduce NAME|--all [--quick] [--out DIR]``: run the paper-claim experiments;
``frugalnn reproduce --index DIR``: write DIR/INDEX.md from the records in a results folder."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from frugalnn.commands._common import set_threads
from frugalnn.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce a paper's claim (or all of them) and write a report folder",
        description="Run registered experiments; each writes JSON records, Markdown tables and plots, and "
        "SUMMARY.md shows every experiment's headline (metric, ours, baseline, target, met?).",
    )
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--all", action="store_true", help="run every registered experiment")
    p.add_argument("--quick", action="store_true", help="small, fast settings (what `make demo` runs)")
    p.add_argument("--out", default="reports", help="report folder (default: ./reports)")
    p.set_defaults(out_rule="root", overwrite=True)  # one sub-folder per experiment, replaced as a unit
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: reliable on 2 cores)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument(
        "--index",
        metavar="DIR",
        help="write DIR/INDEX.md (what each record is, its command, date, headline) from the records in "
        "DIR (e.g. docs/results) and exit; runs nothing",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from frugalnn import experiments
    from frugalnn.experiments._index import write_index, write_summary

    if args.list:
        for exp in experiments.all_experiments():
            print(f"{exp.name:20s} {exp.summary}")
        return 0
    if args.index:
        folder = Path(args.index)
        if not folder.is_dir():
            raise ConfigError(f"--index {folder}: not a folder; give the results folder (e.g. docs/results)")
        from frugalnn.experiments._index import index_entries

        if not index_entries(folder):
            raise ConfigError(
                f"--index {folder}: holds no result records; give the results folder (e.g. docs/results)"
            )
        print(f"index: {write_index(folder)}")
        return 0
    if args.all == bool(args.name):
        raise ConfigError("give exactly one experiment NAME or --all (see `frugalnn reproduce --list`)")
    set_threads(args.threads)
    chosen = experiments.all_experiments() if args.all else [experiments.get(args.name)]
    out_root = Path(args.out)
    runs = []
    for exp in chosen:
        out_dir = out_root / exp.name
        print(f"== {exp.name}: {exp.summary}", flush=True)
        start = time.perf_counter()
        headline = _build_report(exp, out_dir, args.quick, args.seed)
        seconds = time.perf_counter() - start
        runs.append(
            {
                "experiment": exp.name,
                "summary": exp.summary,
                "seconds": seconds,
                "folder": exp.name,
                "headline": headline,
            }
        )
        print(f"== {exp.name} done in {seconds:.1f} s -> {out_dir}", flush=True)
    write_summary(out_root / "SUMMARY.md", runs)
    print(f"report: {out_root / 'SUMMARY.md'}")
    return 0


def _build_report(exp: Any, out_dir: Path, quick: bool, seed: int) -> Any:
    """Run one experiment into the hidden sibling ``.NAME.work`` and rename it to ``NAME`` when it
    succeeds, replacing the previous report as a unit. An error removes the work folder (a failure
    leaves nothing); a killed or interrupted run leaves it, and the next run resumes from the rows it
    holds."""
    work = out_dir.with_name(f".{out_dir.name}.work")
    work.mkdir(parents=True, exist_ok=True)
    try:
        headline = exp.fn(work, quick, seed)
    except Exception:  # not KeyboardInterrupt: like a kill, Ctrl-C keeps the rows for a resume
        shutil.rmtree(work, ignore_errors=True)
        raise
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(work, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return headline
