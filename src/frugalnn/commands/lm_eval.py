"""``frugalnn lm-eval ARGS...``: lm-evaluation-harness's command line with the ``frugalnn`` model
registered, e.g. ``frugalnn lm-eval run --model frugalnn --model_args pretrained=FOLDER --tasks T``."""

from __future__ import annotations

import argparse
import sys


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
    from lm_eval.__main__ import cli_evaluate

    import frugalnn.interop.lm_eval_model  # noqa: F401  (registers the 'frugalnn' model)

    argv = sys.argv
    sys.argv = ["lm_eval", *args.harness_args]
    try:
        cli_evaluate()
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        sys.argv = argv
    return 0
