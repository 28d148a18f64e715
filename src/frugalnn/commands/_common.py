"""Argument validators shared by the sub-commands: each raises ConfigError with the fix."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


def _checked(text: str, convert: type, expected: str, accept: Callable[[Any], bool], must: str) -> Any:
    """``convert(text)`` if it parses and ``accept`` holds, else an ArgumentTypeError that says which."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"must {must}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, "a whole number", lambda v: v > 0, "be a positive whole number")


def non_negative_int(text: str) -> int:
    return _checked(text, int, "a whole number", lambda v: v >= 0, "be 0 or more")


def unit_interval(text: str) -> float:
    """A float strictly inside (0, 1)."""
    return _checked(
        text, float, "a number in (0, 1)", lambda v: 0.0 < v < 1.0, "lie strictly between 0 and 1"
    )


def positive_float(text: str) -> float:
    return _checked(text, float, "a number", lambda v: 0 < v < math.inf, "be a positive finite number")


def non_negative_float(text: str) -> float:
    return _checked(text, float, "a number", lambda v: 0 <= v < math.inf, "be 0 or a positive finite number")


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads; 1 is the reliable choice on a busy 2-core machine."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_options(
    parser: argparse.ArgumentParser,
    config_cls: type,
    only: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    aliases: dict[str, tuple[str, ...]] | None = None,
    preset: bool = True,
    required: tuple[str, ...] = (),
) -> None:
    """Flags for a ``MethodConfig``'s fields, help and choices read from the fields themselves.

    Every flag defaults to None, so what the user did not give keeps the config's (or preset's) value.
    ``aliases`` adds older or shorter flag names for a field; ``preset`` adds ``--preset NAME``.
    """
    import dataclasses
    import typing

    from frugalnn.core.config import _strip_optional

    hints = typing.get_type_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        if not f.metadata.get("cli", True) or f.name in exclude or (only is not None and f.name not in only):
            continue
        tp = _strip_optional(hints[f.name])
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is not None:
            help_text = f"{help_text} (default {default})"
        kwargs: dict = {"dest": f.name, "default": None, "help": help_text, "required": f.name in required}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is tuple:
            inner = (typing.get_args(tp) or (str,))[0]
            kwargs["type"] = lambda text, inner=inner: tuple(inner(v) for v in text.split(",") if v)
            kwargs["metavar"] = "A,B,..."
        elif tp in (int, float, str):
            kwargs["type"] = tp
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
        else:
            continue
        parser.add_argument(_flag(f.name), *(aliases or {}).get(f.name, ()), **kwargs)
    if preset and config_cls.PRESETS and "preset" not in {a.dest for a in parser._actions}:
        parser.add_argument(
            "--preset",
            choices=tuple(config_cls.PRESETS),
            help="start from a named recipe (paper: the publication's settings; ours: measured best); "
            "flags given override it",
        )


def config_from_args(config_cls: type, args: argparse.Namespace, preset: str | None = None, **fixed):
    """Build and validate a config from parsed flags (over ``preset``, or ``args.preset`` when given);
    field errors become errors that name the flag."""
    import dataclasses

    from frugalnn.core.config import FieldError
    from frugalnn.errors import ConfigError

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(config_cls)
        if getattr(args, f.name, None) is not None
    }
    given.update(fixed)
    preset = preset or getattr(args, "preset", None)
    cfg = config_cls.preset(preset, **given) if preset else config_cls(**given)
    try:
        return cfg.validate()
    except FieldError as err:
        raise ConfigError(f"{_flag(err.field)} {err.problem}") from None


def load_model(name: str):  # noqa: ANN201 - (model, spec, meta)
    """``--model``: a checkpoint folder (any method's) or a zoo baseline name -> (model, spec, meta)."""
    from pathlib import Path

    from frugalnn.core.checkpoint import load_checkpoint
    from frugalnn.core.zoo import RECIPES, load_pretrained
    from frugalnn.errors import CheckpointError

    if Path(name).exists():
        return load_checkpoint(name)
    if name in RECIPES:
        return load_pretrained(name)
    raise CheckpointError(
        f"--model {name!r} is neither a checkpoint folder nor a zoo name ({', '.join(RECIPES)})"
    )


def add_out_option(
    parser: argparse.ArgumentParser, help: str, required: bool = True, resumable: bool = False
) -> None:
    """``--out FOLDER`` and ``--overwrite`` with the shared rules, checked by ``frugalnn.cli`` before the
    command runs (see ``check_out_folder``). ``resumable``: a folder holding this command's own
    unfinished run is continued, not refused."""
    parser.add_argument("--out", required=required, help=help)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out folder (default: refuse)"
    )
    parser.set_defaults(out_rule="resume" if resumable else "folder")


RESUMABLE_MARKERS = ("train_state", "checkpoint.json", "search_state.json")


def check_out_folder(out: str | None, overwrite: bool, resumable: bool = False) -> None:
    """The ``--out`` rules of every folder-writing command, applied before any work:
    an empty string, an existing file or a place that cannot be created is refused; a missing or empty
    folder is accepted; a non-empty one needs ``--overwrite`` (or, for a ``resumable`` command, holds
    its own earlier run)."""
    import os
    from pathlib import Path

    from frugalnn.errors import ConfigError

    if out is None:
        return
    if not out.strip():
        raise ConfigError("--out is empty; give a folder path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is an existing file; give a folder path")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out} is not writable; choose a folder you can write")
        entries = {p.name for p in path.iterdir()}
        if entries and not overwrite and not (resumable and entries & set(RESUMABLE_MARKERS)):
            raise ConfigError(
                f"--out {out} already exists and is not empty; pass --overwrite to replace it or "
                "choose another folder"
            )
        return
    check_creatable(out)


def check_creatable(out: str) -> None:
    """``--out`` can be created: its nearest existing ancestor is a writable ordinary folder."""
    import os
    from pathlib import Path

    from frugalnn.errors import ConfigError

    parent = Path(out).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out} cannot be created ({parent} is not a writable folder)")
    if str(parent.resolve()).startswith(("/proc", "/sys")):
        raise ConfigError(f"--out {out} cannot be created under {parent}; choose a normal folder")
