"""``frugalnn lm-eval ARGS...``: lm-evaluation-harness's command line with the ``frugalnn`` model
registered, e.g. ``frugalnn lm-eval run --model frugalnn --model_args pretrained=FOLDER --tasks T``."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lm-eval",
        help="run lm-evaluation-harness with frugalnn's models (--model frugalnn --model_args pretrained=...)",
        description="Every argument goes to lm-evaluation-harness's command line; the model name 'frugalnn' "
        "loads anything `frugalnn llm eval --model` takes. Needs pip install 'frugalnn[eval]'.",
        add_help=False,
    )
    p.add_argument("harness_args", nargs=argparse.REMAINDER, help="arguments of the lm_eval command")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    import frugalnn.interop.lm_eval_model  # noqa: F401  (registers the 'frugalnn' model)

    argv = sys.argv
    sys.argv = ["lm_eval", *args.harness_args]
    try:
        setup_logging()
        harness = HarnessCLI()
        parsed = _parse_quietly(harness)
        if isinstance(parsed, int):
            return parsed
        harness.execute(parsed)
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        sys.argv = argv
    return 0


def _parse_quietly(harness: Any) -> argparse.Namespace | int:
    """lm_eval's own parsing, with its usage errors cut to the one ``error:`` line (exit 2) so that
    ``frugalnn lm-eval`` keeps the CLI's one-line contract; ``--help`` output is passed through."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            return harness.parse_args()
    except SystemExit as done:
        text = buffer.getvalue()
        errors = [line for line in text.splitlines() if ": error: " in line]
        if done.code == 2 and errors:
            print(f"frugalnn lm-eval: {errors[-1].split(': error: ', 1)[1]} (see `frugalnn lm-eval --help`)",
                  file=sys.stderr)  # fmt: skip
        else:
            sys.stderr.write(text)
        return int(done.code or 0)
