"""frugalnn: make neural networks cheap to run.

Layers (arrows point down): ``methods`` -> ``hw`` -> ``core``. See docs/ and ARCHITECTURE.
"""

from frugalnn.errors import FrugalError

__version__ = "0.1.0"
__all__ = ["FrugalError", "__version__"]
