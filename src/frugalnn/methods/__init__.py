"""One folder per paper. Each imports core/ (and hw/ where it models hardware), never another method.

Each method package registers its verb here with ``register_method(ConfigClass, verb)``; then
``frugalnn.apply(model, config, **inputs)`` dispatches on the config's type, as torchao's
``quantize_(model, config)`` does. Method packages are discovered, so adding one edits no list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from frugalnn.errors import ConfigError

Verb = Callable[..., tuple[Any, dict[str, Any]]]
_VERBS: dict[type, Verb] = {}


def register_method(config_cls: type, verb: Verb) -> None:
    """Make ``frugalnn.apply(model, config_cls(...), **inputs)`` call ``verb(model, config, **inputs)``."""
    _VERBS[config_cls] = verb


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def registered() -> dict[type, Verb]:
    """Every method config type and its verb."""
    _discover()
    return dict(_VERBS)


def apply(model: Any, config: Any, **inputs: Any) -> tuple[Any, dict[str, Any]]:
    """Apply the method that ``config`` configures to ``model`` -> (new model, result record).

    ``inputs`` are what the method needs besides the model (calibration windows, data, ...); each
    method's verb documents them.
    """
    verbs = registered()
    for cls in type(config).__mro__:
        if cls in verbs:
            return verbs[cls](model, config, **inputs)
    names = ", ".join(sorted(c.__name__ for c in verbs))
    raise ConfigError(f"no method takes a {type(config).__name__}; pass one of: {names}")
