"""BasisN configuration (arXiv 2407.03738): crossbar budget, basis size, coefficient bits, training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from frugalnn.core.config import FieldError, MethodConfig, option
from frugalnn.hw.crossbar import CrossbarConfig

FLOAT_BITS = 32  # coef_bits at or above this keeps the coefficients in float (no quantiser)


@dataclass
class BasisNConfig(MethodConfig):
    """Every kernel column (crossbar height) = Σ_j c_j b_j over one global basis written to crossbars once.

    The basis holds ``n_basis`` vectors of ``crossbar_size`` entries; a crossbar of ``crossbar_size``²
    cells with differential pairs holds ``crossbar_size // 2`` of them, so ``crossbars`` crossbars hold
    ``crossbars · crossbar_size // 2``. ``n_basis = None`` takes the most that fit, capped at
    ``max_basis_fraction · crossbar_size`` (beyond that the digital combination costs as many MACs as
    the plain layer). Groups of ``group_size`` basis vectors are the units of the group-lasso
    regulariser (``group_reg``): a row tile whose coefficients on a group are all zero skips that
    group's ADC conversions and MACs, and crossbars that hold no group a row tile uses are free to
    serve another row tile in the same cycle.
    """

    METHOD: ClassVar[str] = "basisn"
    VERSION: ClassVar[int] = 1
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the paper's setting as far as it is stated: 128x128 crossbars, quantised coefficients,
        # alternating basis / coefficient updates (specs/rram.md, BasisN)
        "paper": {"crossbars": 16, "crossbar_size": 128, "coef_bits": 4, "schedule": "alternating"},
        # what this project measured (docs/basisn.md): joint updates, 4-bit coefficients
        "ours": {"crossbars": 16, "crossbar_size": 128, "coef_bits": 4, "schedule": "joint"},
    }

    crossbars: int = option(16, "crossbars available on the chip (the basis is written to them once)", low=1)
    crossbar_size: int = option(128, "rows = columns of one crossbar (basis vector height)", low=2)
    coef_bits: int = option(4, "bits of each quantised coefficient (32 = float coefficients)", low=1, high=32)
    n_basis: int | None = option(
        None, "basis vectors (default: the most that fit, see max_basis_fraction)", low=1
    )
    max_basis_fraction: float = option(
        0.5, "cap of the automatic n_basis as a share of the crossbar height", low=0, high=1, low_open=True
    )
    group_size: int = option(16, "basis vectors per regulariser group (divides crossbar_size // 2)", low=1)
    group_reg: float = option(
        1e-4, "group-lasso weight on (layer, row tile, group) coefficient blocks", low=0
    )
    schedule: str = option("joint", "update basis and coefficients together or alternately",
                           choices=("joint", "alternating"))  # fmt: skip
    steps: int = option(600, "training steps after the decomposition (0 = decomposition only)", low=0)
    batch_size: int = option(128, "training batch size", low=1)
    lr: float = option(5e-4, "Adam learning rate (cosine to 0)", low=0, low_open=True)
    seed: int = option(0, "seed of batch order and augmentation")

    @property
    def basis_per_crossbar(self) -> int:
        """Basis vectors one crossbar holds: a signed vector takes a differential pair of bit lines."""
        return self.crossbar_size // 2

    @property
    def float_coefficients(self) -> bool:
        return self.coef_bits >= FLOAT_BITS

    def resolved_n_basis(self) -> int:
        if self.n_basis is not None:
            return self.n_basis
        cap = max(1, int(self.max_basis_fraction * self.crossbar_size))
        return min(self.crossbars * self.basis_per_crossbar, cap)

    def crossbar_config(self, **overrides: Any) -> CrossbarConfig:
        """The hardware the basis is written to (other CrossbarConfig fields keep their defaults)."""
        return CrossbarConfig(rows=self.crossbar_size, cols=self.crossbar_size, **overrides)

    def check(self) -> None:
        per = self.basis_per_crossbar
        n = self.resolved_n_basis()
        if n > self.crossbar_size:
            raise FieldError(
                "n_basis",
                f"must be at most the crossbar height {self.crossbar_size} (more basis vectors than "
                f"entries add nothing), got {n}",
            )
        need = -(-n // per)
        if need > self.crossbars:
            raise FieldError(
                "crossbars",
                f"of {self.crossbars} is too small even for the basis: {n} basis vectors need at least "
                f"{need} crossbars of {self.crossbar_size}x{self.crossbar_size} ({per} per crossbar); "
                f"raise crossbars to {need} or lower n_basis to {self.crossbars * per}",
            )
        if per % self.group_size:
            raise FieldError(
                "group_size",
                f"must divide the {per} basis vectors of one crossbar so that no group straddles two "
                f"crossbars, got {self.group_size}; use a divisor of {per}",
            )
