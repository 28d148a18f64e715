"""Experiment registry: one module per paper claim, discovered automatically.

A module registers ``run(out_dir, quick, seed) -> dict`` with ``@register("name", order=...)``;
``frugalnn reproduce NAME|--all`` runs them and writes each one's report folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalnn.errors import ConfigError

ExperimentFn = Callable[[Path, bool, int], dict[str, Any]]


@dataclass(frozen=True)
class Experiment:
    name: str
    fn: ExperimentFn
    summary: str
    order: int


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, summary: str, order: int = 100) -> Callable[[ExperimentFn], ExperimentFn]:
    def deco(fn: ExperimentFn) -> ExperimentFn:
        _REGISTRY[name] = Experiment(name, fn, summary, order)
        return fn

    return deco


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def all_experiments() -> list[Experiment]:
    _discover()
    return sorted(_REGISTRY.values(), key=lambda e: (e.order, e.name))


def get(name: str) -> Experiment:
    _discover()
    if name not in _REGISTRY:
        known = ", ".join(e.name for e in all_experiments())
        raise ConfigError(f"unknown experiment {name!r}; known: {known}")
    return _REGISTRY[name]
