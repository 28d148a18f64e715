"""The one face of every method's configuration: ``MethodConfig``.

A method config is a dataclass whose fields are declared with ``option(...)``: the default, a help
line (the CLI reads it, so flags are never copied by hand), and the checks that need no context
(``choices``, a numeric range). ``validate()`` runs those checks, then the subclass's ``check()`` for
rules across fields, and returns the config itself. Errors name the field (``FieldError``), never a
CLI flag: ``commands/`` translates field names into flags.

``to_dict()`` / ``from_dict()`` round-trip a config through JSON with its method's name and a schema
version (``config_of``, ``config_version``; a dict without them is version 1), so a config
saved beside a result or a model loads back; ``preset(name)`` gives the named recipes (``paper`` = the
publication's settings, ``ours`` = what this project measured to work best), kept in one table per
method (``PRESETS``) in the method's config module.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from frugalnn.errors import ConfigError

_MISSING = dataclasses.MISSING


class FieldError(ConfigError):
    """A config field holds a bad value. ``field`` is the field's name, ``problem`` the rest."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    factory: Any = _MISSING,
    choices: tuple[Any, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    cli: bool = True,
) -> Any:
    """A config field with its help line and the checks that need no other field.

    ``low``/``high`` bound numbers (``*_open`` makes the bound strict); ``None`` values skip the
    checks (an optional field switched off). ``cli=False`` keeps a field out of generated flags.
    """
    meta = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "low_open": low_open,
        "high_open": high_open,
        "cli": cli,
    }
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _range_text(meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("low"), meta.get("high")
    left = "(" if meta.get("low_open") else "["
    right = ")" if meta.get("high_open") else "]"
    if lo is not None and hi is not None:
        return f"in {left}{lo}, {hi}{right}"
    if lo is not None:
        return f"{'>' if meta.get('low_open') else '>='} {lo}"
    return f"{'<' if meta.get('high_open') else '<='} {hi}"


def check_field(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Raise ``FieldError`` when ``value`` breaks the field's declared choices or range."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise FieldError(name, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    lo, hi = meta.get("low"), meta.get("high")
    if lo is None and hi is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(name, f"must be a number {_range_text(meta)}, got {value!r}")
    if not math.isfinite(value):
        raise FieldError(name, f"must be a finite number {_range_text(meta)}, got {value}")
    too_low = lo is not None and (value <= lo if meta.get("low_open") else value < lo)
    too_high = hi is not None and (value >= hi if meta.get("high_open") else value > hi)
    if too_low or too_high:
        raise FieldError(name, f"must be {_range_text(meta)}, got {value}")


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _coerce(tp: Any, value: Any) -> Any:
    """JSON values back into the field's type (lists into tuples, tuples of tuples included)."""
    if value is None:
        return None
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is tuple and isinstance(value, list | tuple):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass
class MethodConfig:
    """Base of every method's config. Subclasses are dataclasses with ``option(...)`` fields."""

    #: the method's registered name (``basis-sharing``, ``quadratic``, ...); set by each subclass
    METHOD: ClassVar[str] = ""
    #: bump when a field is renamed or its meaning changes; ``migrate`` brings old dicts forward
    VERSION: ClassVar[int] = 1
    #: named recipes: preset name -> field overrides on the defaults
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def check(self) -> None:
        """Rules across fields; subclasses override and raise ``FieldError``."""

    def validate(self) -> Self:
        """Check every field's declared choices and range, then ``check()``; return ``self``."""
        for f in dataclasses.fields(self):
            check_field(f.name, getattr(self, f.name), f.metadata)
        self.check()
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"config_of": self.METHOD, "config_version": self.VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def migrate(cls, data: dict[str, Any], version: int) -> dict[str, Any]:
        """Bring a dict written at an older ``version`` up to ``VERSION`` (default: unchanged)."""
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Load a dict written by ``to_dict`` (any older version); unknown fields are an error."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a {cls.__name__} must be a JSON object, got {type(data).__name__}")
        body = dict(data)
        method = body.pop("config_of", cls.METHOD)
        if method != cls.METHOD:
            raise ConfigError(f"this config is for method {method!r}, not {cls.METHOD!r}")
        version = body.pop("config_version", 1)
        if not isinstance(version, int) or version > cls.VERSION:
            raise ConfigError(
                f"{cls.__name__} version {version!r} is newer than this frugalnn understands "
                f"({cls.VERSION}); upgrade frugalnn"
            )
        body = cls.migrate(body, version)
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**{k: _coerce(hints.get(k, Any), v) for k, v in body.items()})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> Self:
        """A named recipe (``paper``, ``ours``, ...) with optional field overrides."""
        if name not in cls.PRESETS:
            known = ", ".join(cls.PRESETS) or "none"
            raise ConfigError(f"{cls.__name__} has no preset {name!r}; known: {known}")
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
