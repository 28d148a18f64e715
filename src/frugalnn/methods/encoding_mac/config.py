"""EncodingNet configuration (arXiv 2402.18595; public code Bo-Liu-TUM/EncodingNet).

One config covers the three stages of the method: the encoder search (Cartesian genetic programming,
Sec. III of the paper), the encoded network (LUT layers, fine-tuning) and the hardware comparison
(encoded PE column vs multiplier PE column on OSU018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from frugalnn.core.config import FieldError, MethodConfig, option


@dataclass
class EncodingConfig(MethodConfig):
    """Settings of the encoder search, the encoded layers and the hardware comparison.

    The ``paper`` preset holds the public code's search settings (8-bit, 2 columns x 256 rows, 128
    searched outputs, 10 parents, 50 offspring, 2500 generations, mutation 0.3 -> 0.1 per gene,
    random initial population); ``ours`` starts from the partial-product encoder and mutates few
    genes per offspring so the time on 2 shared cores goes into removing area (docs/encodingnet.md).
    """

    METHOD: ClassVar[str] = "encodingnet"
    VERSION: ClassVar[int] = 1
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "bits": 8,
            "outputs": 128,
            "kept_bits": 64,
            "rows": 256,
            "columns": 2,
            "generations": 2500,
            "mutation_start": 0.3,
            "mutation_end": 0.1,
            "init": "random",
        },
        "ours": {
            "bits": 8,
            "outputs": 128,
            "kept_bits": 48,
            "rows": 256,
            "columns": 2,
            "generations": 600,
            "mutation_start": 0.01,
            "mutation_end": 0.003,
            "init": "partial-products",
        },
    }

    bits: int = option(4, "activation / weight width B of the encoder (two's complement)", low=2, high=8)
    threshold: float = option(
        0.05, "maxRE threshold: largest |error| / max|x*w| a feasible encoder may have", low=0.0, high=1.0,
        low_open=True, high_open=True,
    )  # fmt: skip
    outputs: int = option(32, "encoder output bits during the search (CGP output genes)", low=2, high=1024)
    kept_bits: int = option(12, "M: output bits kept (largest |position weight|)", low=1, high=1024)
    rows: int = option(64, "CGP grid rows", low=1, high=4096)
    columns: int = option(2, "CGP grid columns (gate levels)", low=1, high=16)
    levels_back: int = option(2, "CGP levels back: columns a node may read from", low=1, high=16)
    parents: int = option(10, "mu: parents kept each generation", low=1, high=1000)
    offspring: int = option(50, "lambda: offspring per generation", low=1, high=10000)
    tournament: int = option(2, "tournament size when picking a parent to mutate", low=1, high=1000)
    generations: int = option(200, "generations of (mu + lambda) evolution", low=0, high=10**7)
    mutation_start: float = option(0.05, "per-gene mutation probability at generation 0", low=0.0, high=1.0)
    mutation_end: float = option(
        0.01, "per-gene mutation probability at the last generation", low=0.0, high=1.0
    )
    ridge: float = option(0.1, "ridge regularisation of the position-weight solve", low=0.0)
    init: str = option(
        "partial-products", "initial population: random genomes or the exact partial-product encoder",
        choices=("random", "partial-products"),
    )  # fmt: skip
    checkpoint_every: int = option(10, "generations between search checkpoints", low=1)
    seed: int = option(0, "random seed of the search and fine-tuning")
    position_weights: str = option(
        "solved", "position weights: solved by ridge regression, or trained with the network",
        choices=("solved", "trained"),
    )  # fmt: skip
    finetune_epochs: float = option(1.0, "fine-tuning epochs of the encoded network (paper: 25)", low=0.0)
    finetune_lr: float = option(1e-4, "fine-tuning learning rate (Adam; paper: 1e-4)", low=0.0, low_open=True)
    max_steps: int = option(0, "cap on fine-tuning steps (0: no cap)", low=0)
    batch_size: int = option(128, "fine-tuning batch size", low=1)
    weight_bits_hw: int = option(
        15, "bits of the rounded position weights in the hardware decoder", low=2, high=32
    )
    column: int = option(
        16, "PEs per column sharing the bit-wise accumulators and the decoder", low=1, high=256
    )
    psum_bits: int = option(22, "partial-sum (accumulator) width of both MAC columns", low=4, high=48)

    def check(self) -> None:
        if self.kept_bits > self.outputs + 1:
            raise FieldError(
                "kept_bits", f"must be at most outputs + 1 ({self.outputs + 1}), got {self.kept_bits}"
            )
        if self.levels_back > self.columns:
            raise FieldError(
                "levels_back", f"must be at most columns ({self.columns}), got {self.levels_back}"
            )
        if self.tournament > self.parents:
            raise FieldError("tournament", f"must be at most parents ({self.parents}), got {self.tournament}")
        if self.psum_bits < 2 * self.bits:
            raise FieldError(
                "psum_bits", f"must be at least 2 * bits ({2 * self.bits}), got {self.psum_bits}"
            )
        if self.init == "partial-products":
            need = self.bits * self.bits + 2 * self.bits
            if self.rows * self.columns < need or self.outputs < self.bits * self.bits:
                raise FieldError(
                    "init",
                    f"'partial-products' needs rows*columns >= {need} and outputs >= {self.bits**2}; "
                    "enlarge the grid or use init 'random'",
                )
