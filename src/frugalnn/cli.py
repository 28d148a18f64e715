"""The ``frugalnn`` command.

Each sub-command group lives in its own module under ``frugalnn.commands`` and exposes
``register(subparsers)``; modules are discovered, so adding a method never edits this file.
Only the module of the command being run is imported: the others are listed from their source (the
``sub.add_parser("name", help="...")`` calls in ``register``), so ``frugalnn --help`` imports no torch.
Every ``FrugalError`` and every usage error becomes one line on stderr and exit code 2. Parser-wide
rules apply to every option of every command (commands added later included): a float must be finite,
a whole number fits in 32 bits, a seed lies in [0, 2**32), ``--threads`` in [1, 1024], and ``--out``
(declared with ``commands._common.add_out_option``) is checked before the command starts.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import math
import pkgutil
import sys
from pathlib import Path

from frugalnn import __version__, commands
from frugalnn.errors import FrugalError

# the commands a new user reaches for first, in this order; the rest follow alphabetically
FIRST = ("train", "eval", "info", "zoo", "reproduce")


def _declared(path: Path) -> list[tuple[str, str]]:
    """(name, help) of every ``<first arg of register>.add_parser("name", help="...")`` in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []
    for fn in tree.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name == "register" and fn.args.args):
            continue
        sub = fn.args.args[0].arg
        for node in ast.walk(fn):
            is_call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            if not (is_call and node.func.attr == "add_parser" and isinstance(node.func.value, ast.Name)):
                continue
            if node.func.value.id != sub or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            helps = [k.value for k in node.keywords if k.arg == "help" and isinstance(k.value, ast.Constant)]
            found.append((str(node.args[0].value), str(helps[0].value) if helps else ""))
    return found


def command_table() -> tuple[dict[str, tuple[str, str]], list[str]]:
    """(command name -> (module name, help), modules whose commands cannot be read from the source:
    those are always imported)."""
    table: dict[str, tuple[str, str]] = {}
    opaque: list[str] = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        path = Path(commands.__path__[0]) / f"{info.name}.py"
        declared = _declared(path) if path.is_file() else []
        if not declared:
            opaque.append(info.name)
        for name, help_text in declared:
            table[name] = (info.name, help_text)
    ordered = sorted(table.items(), key=lambda kv: (FIRST.index(kv[0]) if kv[0] in FIRST else 99, kv[0]))
    return dict(ordered), opaque


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``frugalnn train: error: ...``) and exit code 2."""

    def error(self, message: str):  # noqa: ANN201 - NoReturn
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


MAX_INT = 2**31 - 1
MAX_SEED = 2**32 - 1
MAX_THREADS = 1024


def _check_value(dest: str, value: object) -> object:
    """The parser-wide limits on a converted option value (tuples element by element)."""
    if isinstance(value, tuple):
        return tuple(_check_value(dest, v) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {value}")
    if isinstance(value, int) and not isinstance(value, bool):
        if dest.endswith("seed") and not 0 <= value <= MAX_SEED:
            raise argparse.ArgumentTypeError(f"a seed must lie in [0, {MAX_SEED}], got {value}")
        if dest == "threads" and not 1 <= value <= MAX_THREADS:
            raise argparse.ArgumentTypeError(f"must lie in [1, {MAX_THREADS}], got {value}")
        if abs(value) > MAX_INT:
            raise argparse.ArgumentTypeError(f"must lie within +-{MAX_INT}, got {value}")
    return value


def _text(text: str) -> str:
    """A string option's value: never empty (an empty path or name is always a mistake)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a value")
    return text


def _limited(convert, dest: str):  # noqa: ANN001, ANN202 - wraps an argparse ``type``
    @functools.wraps(convert)
    def checked(text: str):  # noqa: ANN202
        return _check_value(dest, convert(text))

    return checked


def _apply_limits(parser: argparse.ArgumentParser) -> None:
    """Wrap every option's ``type`` with ``_check_value``, in all nested sub-parsers."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                _apply_limits(child)
        elif callable(action.type) and not getattr(action.type, "__wrapped__", None):
            action.type = _limited(action.type, action.dest)
        elif action.type is None and action.nargs is None and action.const is None:
            action.type = _limited(_text, action.dest)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the module of the command named in ``argv`` is imported (None: all of them)."""
    parser = _Parser(
        prog="frugalnn",
        description="Make neural networks cheap to run: compress, prune, exit early, and cost them in hardware.",
    )
    parser.add_argument("--version", action="version", version=f"frugalnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    table, opaque = command_table()
    words = [a for a in argv if not a.startswith("-")] if argv is not None else []
    chosen = (
        {table[w][0] for w in words[:1] if w in table} if argv is not None else {m for m, _ in table.values()}
    )
    chosen |= set(opaque)
    for module in dict.fromkeys([*(m for m, _ in table.values()), *opaque]):
        if module in chosen:
            importlib.import_module(f"frugalnn.commands.{module}").register(sub)
    registered = set(sub.choices)
    for name, (_, help_text) in table.items():
        if name not in registered:  # listed for --help; its module loads when it is the one run
            sub.add_parser(name, help=help_text, add_help=False)
    # list in the user's order (argparse lists in the order parsers were added)
    order = list(table)
    sub._choices_actions.sort(key=lambda a: order.index(a.dest) if a.dest in order else len(order))  # noqa: SLF001
    _apply_limits(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # only a pass-through command (lm-eval) takes arguments it does not declare
        if getattr(args, "harness_args", None) is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.harness_args = [*extra, *args.harness_args]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "out_rule", None):
            from frugalnn.commands._common import check_out_folder

            check_out_folder(args.out, args.overwrite, resumable=args.out_rule == "resume")
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
