"""The plug-in seam between core and the methods: named registries that method packages add to.

Core code that must rebuild something a method made (a compressed LLM layer, a checkpoint whose
model a method changed) looks the builder up here by the name stored in the file, never by an
importable path taken from the file: only registered functions can run.

    register("model_transform", "quadratic")(rebuild_fn)      # in the method package
    lookup("model_transform", "quadratic")                     # in core

A miss triggers one discovery of the method packages (``frugalnn.methods`` imports each package,
which registers its plug-ins), so API users need not import a method before loading its files.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from frugalnn.errors import ConfigError

_REGISTRY: dict[str, dict[str, Any]] = {}


def register(kind: str, name: str) -> Callable[[Any], Any]:
    def deco(obj: Any) -> Any:
        _REGISTRY.setdefault(kind, {})[name] = obj
        return obj

    return deco


def lookup(kind: str, name: str) -> Any:
    """The plug-in ``name`` of ``kind``; ConfigError naming the known ones when there is none."""
    if name not in _REGISTRY.get(kind, {}):
        importlib.import_module("frugalnn.methods").registered()  # discovery registers every plug-in
    table = _REGISTRY.get(kind, {})
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"no {kind} named {name!r} is registered; known: {known}")
    return table[name]


def names(kind: str) -> list[str]:
    importlib.import_module("frugalnn.methods").registered()
    return sorted(_REGISTRY.get(kind, {}))
