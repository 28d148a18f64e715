"""Experiment registry: one package per paper protocol, discovered automatically.

A package ``experiments/<name>/`` registers ``run(out_dir, quick, seed, **options) -> list[dict]`` with
``@register("name", summary, order=..., headline=fn)``. ``run`` writes its records, tables and plots into
``out_dir`` and returns headline rows ``{"metric", "ours", "baseline", "target", "met"}``; ``headline``
turns one of its stored records back into those rows, so ``docs/results/INDEX.md`` shows the same
headline for a record made months ago. ``frugalnn reproduce NAME|--all`` runs them and writes
``SUMMARY.md``; ``bench/bench_<name>.py`` calls the same ``run`` with the full settings.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from frugalnn.errors import ConfigError

HEADLINE_KEYS = ("metric", "ours", "baseline", "target", "met")

ExperimentFn = Callable[..., Any]
HeadlineFn = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Experiment:
    name: str
    fn: ExperimentFn
    summary: str
    order: int
    headline: HeadlineFn | None = None

    @property
    def package(self) -> str:
        """The package under ``experiments/`` (also the folder name under ``docs/results/``)."""
        return self.fn.__module__.split(".")[2]


_REGISTRY: dict[str, Experiment] = {}


def register(
    name: str, summary: str, order: int = 100, headline: HeadlineFn | None = None
) -> Callable[[ExperimentFn], ExperimentFn]:
    def deco(fn: ExperimentFn) -> ExperimentFn:
        _REGISTRY[name] = Experiment(name, fn, summary, order, headline)
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


def by_package(package: str) -> Experiment | None:
    """The experiment whose package (and ``docs/results/`` folder) is ``package``, if any."""
    return next((e for e in all_experiments() if e.package == package), None)


def row(
    metric: str,
    ours: Any,
    baseline: Any = None,
    target: str | None = None,
    met: bool | None = None,
    digits: int = 4,
) -> dict[str, Any]:
    """One headline row; floats rounded to ``digits`` significant digits so summaries stay readable."""

    def short(v: Any) -> Any:
        if isinstance(v, float) and math.isfinite(v) and v != 0:
            return round(v, max(0, digits - 1 - int(math.floor(math.log10(abs(v))))))
        return v

    return {
        "metric": metric,
        "ours": short(ours),
        "baseline": short(baseline),
        "target": target,
        "met": None if met is None else bool(met),
    }


def headline_rows(headline: Any) -> list[dict[str, Any]]:
    """Headline rows from what an experiment returned: rows pass through; a plain (possibly nested) dict
    becomes one row per leaf ``a/b/c: value`` without baseline or target."""
    if isinstance(headline, list) and all(isinstance(r, Mapping) and "metric" in r for r in headline):
        return [{k: r.get(k) for k in HEADLINE_KEYS} for r in headline]
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), sub)
        else:
            rows.append(row(prefix or "value", value))

    walk("", headline)
    return rows


def stored_headline(package: str, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Headline rows of a stored record by its experiment's ``headline`` function; None when the
    experiment has none or the record has another shape (an ablation, a timing side-record)."""
    exp = by_package(package)
    if exp is None or exp.headline is None:
        return None
    try:
        rows = exp.headline(record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
        return None
    return headline_rows(rows) if rows else None
