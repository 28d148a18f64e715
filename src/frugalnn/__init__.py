"""frugalnn: make neural networks cheap to run.

Layers (arrows point down; see docs/architecture.md): ``methods`` and ``hw`` are siblings over
``core``; the hardware methods use ``hw``; no method imports another.

``frugalnn.apply(model, config, **inputs) -> (model, record)`` applies any method: the config's type
says which (``BasisSharingConfig``, ``ClassPruningConfig``, ...).
"""

from typing import Any

from frugalnn.errors import FrugalError

__version__ = "0.1.0"
__all__ = ["FrugalError", "__version__", "apply"]


def apply(model: Any, config: Any, **inputs: Any) -> tuple[Any, dict[str, Any]]:
    """Apply the method ``config`` configures to ``model`` -> (new model, result record)."""
    from frugalnn.methods import apply as _apply

    return _apply(model, config, **inputs)
