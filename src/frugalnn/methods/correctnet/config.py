"""CorrectNet configuration (Eldebiky et al., DATE 2023, arXiv 2211.14917; specs/rram.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from frugalnn.core.config import FieldError, MethodConfig, option
from frugalnn.hw.crossbar import CrossbarConfig

PLACEMENTS = ("search", "none", "all", "given")


@dataclass
class CorrectNetConfig(MethodConfig):
    """Crossbar non-idealities, the Lipschitz fine-tuning, the compensation modules and their placement."""

    METHOD: ClassVar[str] = "correctnet"
    VERSION: ClassVar[int] = 1
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the paper: σ = 0.5 lognormal variation, regulariser during training, RL-placed compensation
        "paper": {"sigma": 0.5, "lipschitz_weight": 1e-3, "placement": "search"},
        # what this project ran (docs/correctnet.md): short schedules for 1-thread CPUs
        "ours": {"sigma": 0.5, "lipschitz_weight": 1e-3, "placement": "search", "comp_rank": 4},
    }

    sigma: float = option(0.5, "lognormal variation σ of the RRAM cells (w' = w·e^θ, θ ~ N(0, σ²))", low=0)
    cell_bits: int = option(4, "conductance levels per cell = 2**cell_bits", low=1, high=32)
    dac_bits: int = option(7, "DAC resolution in bits (aihwkit: 7)", low=2, high=32)
    adc_bits: int = option(9, "ADC resolution in bits (aihwkit: 9)", low=2, high=32)
    out_noise: float = option(0.06, "output noise std per read, normalised units (aihwkit: 0.06)", low=0)
    ideal_converters: bool = option(False, "30-bit DAC/cells, 32-bit ADC, no output noise, no clipping")
    lipschitz_weight: float = option(
        1e-3, "λ of Σ_l ‖W_lᵀW_l − βI‖²; 0 skips the regularised fine-tune", low=0
    )
    beta: float | None = option(
        None, "β of the regulariser; None: each layer's mean squared singular value", low=0
    )
    lipschitz_steps: int = option(300, "SGD steps of the regularised fine-tune", low=0)
    lipschitz_lr: float = option(0.005, "learning rate of the regularised fine-tune", low=0, low_open=True)
    placement: str = option(
        "search", "where compensation goes: search, none, all, given (layers)", choices=PLACEMENTS
    )
    layers: tuple[str, ...] = option((), "layer names that get compensation when placement=given")
    comp_rank: int = option(4, "hidden width r of a compensation module (0: per-channel affine only)", low=0)
    comp_steps: int = option(300, "Adam steps training the compensation modules on noisy chips", low=0)
    comp_lr: float = option(3e-3, "learning rate of the compensation modules", low=0, low_open=True)
    batch_size: int = option(64, "images per chip per training step", low=1)
    train_chips: int = option(4, "chips (variation draws) per training step", low=1)
    search_iters: int = option(12, "REINFORCE iterations of the placement search", low=1)
    search_samples: int = option(4, "placements sampled per search iteration", low=1)
    search_chips: int = option(4, "chips each placement is scored on (the same chips for all)", low=1)
    search_images: int = option(1000, "validation images each placement is scored on", low=1)
    overhead_budget_pct: float = option(
        5.0, "largest compensation overhead allowed, % of network MACs", low=0
    )
    overhead_weight: float = option(0.01, "reward penalty per % of MACs added (accuracy in [0, 1])", low=0)
    seed: int = option(0, "seeds chips, batches and the search")
    device: str = option("cpu", "where training and Monte-Carlo passes run (cpu, cuda)")

    def check(self) -> None:
        if self.placement == "given" and not self.layers:
            raise FieldError("layers", "is empty but placement=given; name the layers to compensate")
        if self.placement != "given" and self.layers:
            raise FieldError("layers", f"are only used with placement=given (placement={self.placement})")
        if len(set(self.layers)) != len(self.layers):
            raise FieldError("layers", f"{list(self.layers)} name a layer twice; list each once")
        if not self.device.startswith(("cpu", "cuda")):
            raise FieldError("device", f"must be cpu or cuda[:N], got {self.device!r}")

    def crossbar(self, sigma: float | None = None) -> CrossbarConfig:
        """The crossbar these settings describe (``sigma`` overrides the variation)."""
        s = self.sigma if sigma is None else sigma
        if s < 0:
            raise FieldError("sigma", f"must be >= 0, got {s}")
        if self.ideal_converters:
            return CrossbarConfig.ideal(variation_sigma=s, seed=self.seed)
        return CrossbarConfig(
            cell_bits=self.cell_bits, dac_bits=self.dac_bits, adc_bits=self.adc_bits,
            out_noise=self.out_noise, variation_sigma=s, seed=self.seed,
        )  # fmt: skip
