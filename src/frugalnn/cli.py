"""The ``frugalnn`` command.

Each sub-command group lives in its own module under ``frugalnn.commands`` and exposes
``register(subparsers)``; modules are discovered, so adding a method never edits this file.
Every ``FrugalError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from frugalnn import __version__, commands
from frugalnn.errors import FrugalError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frugalnn",
        description="Make neural networks cheap to run: compress, prune, exit early, and cost them in hardware.",
    )
    parser.add_argument("--version", action="version", version=f"frugalnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"frugalnn.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except FrugalError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
