"""PowerPruning configuration (Li et al., "PowerPruning: Selecting Weights and Activations for
Power-Efficient Neural Network Acceleration", DAC 2023, arXiv 2303.13997).

The paper leaves the MAC's activation streams, the delay target, the retraining schedule and the
voltage model's constants open; here they are fields. The alpha-power-law constants live in one
object, ``VoltageModel`` (voltage.py), with their sources.
"""

from __future__ import annotations

from dataclasses import dataclass

from frugalnn.core.config import FieldError, MethodConfig, option

ENERGY_MODES = ("glitch", "zero-delay")
SIGN_MODES = ("balanced", "ranked")


@dataclass
class PowerPruningConfig(MethodConfig):
    """What to keep, how to characterise the MAC, how to retrain, how to scale the voltage.

    keep: K, the number of 8-bit weight values kept (the K cheapest under the network's own per-layer
        activation streams; 256 = every value the symmetric int8 grid uses, i.e. -127..127).
    sign: ``ranked`` keeps the K cheapest codes whatever their sign (the paper); on this two's-complement
        MAC every negative code costs more than every non-negative one, so for K <= 128 that keeps no
        negative weight (LeNet-5 fell to 15% accuracy); ``balanced`` keeps the ceil(K/2) cheapest
        non-negative and floor(K/2) cheapest negative codes.
    energy: ``glitch`` ranks by glitch-aware energy (timed gate-level simulation, Liberty delays) or
        ``zero-delay`` by toggles of settled values only.
    delay_step: after the selection, drop weight and activation values whose transitions have the
        longest sensitised delays until the worst remaining one is at most delay_target x the baseline's.
    delay_target: target maximum sensitised delay as a share of the 8-bit baseline's (all weights, all
        activations); only with delay_step.
    min_activations: the delay step never shrinks the allowed activation codes below this many.
    voltage_scaling: lower the supply to the lowest grid voltage at which the remaining worst delay
        still meets the clock (alpha-power law), and report power at that voltage.
    vdd_step_v: the supply voltage grid (nominal, nominal - step, ...).
    clock_ns: the clock period to meet; None = the baseline MAC's worst sensitised delay (the design
        runs at its own speed before pruning).
    stats_images: training images whose inference gives each layer's activation / partial-sum streams
        and the (weight, activation) counts of the power model.
    stream_sites: processing-element sites (output channel, input position) sampled per layer to form
        its characterisation stream (each site contributes its activations over time in order).
    transitions, timed_transitions: per-layer characterisation stream lengths (zero-delay;
        glitch-aware). delay_transitions: the uniform-activation timed stream that gives the delay table.
    delay_characterisation: a ``mac_characterisation.json`` from ``frugalnn hw characterize-mac`` to
        take the delay table from (8-bit, with delays); None = characterise and cache it here.
    cache_dir: where characterisations are cached (None = $FRUGALNN_CACHE/power_pruning).
    finetune_steps, lr, batch_size: retraining with the projection in the forward pass (STE);
        skipped when the allowed sets restrict nothing.
    calibration_images: training images for the int8 activation scales.
    test_images: the first this many test images give the accuracies (None: the whole test split).
    """

    METHOD = "power-pruning"
    VERSION = 1
    PRESETS = {
        # the paper's setting: glitch-aware power, delay step and voltage scaling, K = 32 (its Table 2 row)
        "paper": {"keep": 32, "sign": "ranked", "delay_step": True, "voltage_scaling": True},
        # what we measured best on Fashion-MNIST LeNet-5 (docs/power_pruning.md)
        "ours": {"keep": 16, "sign": "balanced", "delay_step": True, "delay_target": 0.8, "lr": 0.01},
    }

    keep: int = option(32, "number of weight values kept (K)", low=1, high=256)
    energy: str = option("glitch", "energy that ranks the weights", choices=ENERGY_MODES)
    sign: str = option(
        "balanced", "balanced: half the kept codes negative; ranked: pure ranking", choices=SIGN_MODES
    )
    delay_step: bool = option(True, "drop weight/activation values with the longest sensitised delays")
    delay_target: float = option(
        0.8, "target worst delay as a share of the baseline's", low=0.0, high=1.0, low_open=True
    )
    min_activations: int = option(16, "fewest activation codes the delay step keeps", low=2, high=255)
    voltage_scaling: bool = option(True, "scale Vdd down to the lowest voltage meeting the clock")
    vdd_step_v: float = option(0.05, "supply voltage grid step (V)", low=0.001, high=0.5)
    clock_ns: float | None = option(None, "clock period (ns); default: the baseline's worst delay", low=0.0)
    stats_images: int = option(256, "images whose inference gives the activation statistics", low=8)
    stream_sites: int = option(64, "PE sites sampled per layer for its stream", low=1)
    transitions: int = option(16384, "zero-delay stream length per layer (multiple of 64)", low=64)
    timed_transitions: int = option(1024, "glitch-aware stream length per layer (multiple of 64)", low=64)
    delay_transitions: int = option(4096, "uniform stream length of the delay table", low=64)
    delay_characterisation: str | None = option(None, "mac_characterisation.json with delays to use")
    cache_dir: str | None = option(None, "characterisation cache folder")
    finetune_steps: int = option(300, "retraining steps with the projection (STE)", low=0)
    lr: float = option(0.005, "retraining learning rate (SGD, cosine)", low=0.0, low_open=True)
    batch_size: int = option(128, "retraining batch size", low=1)
    calibration_images: int = option(2048, "images that calibrate the int8 activation scales", low=1)
    test_images: int | None = option(None, "test images for the accuracies (default: the whole split)", low=1)
    seed: int = option(0, "seed for streams and retraining")

    def check(self) -> None:
        for name in ("transitions", "timed_transitions", "delay_transitions"):
            if getattr(self, name) % 64:
                raise FieldError(name, f"must be a multiple of 64, got {getattr(self, name)}")
        if self.clock_ns is not None and self.clock_ns <= 0:
            raise FieldError("clock_ns", f"must be positive, got {self.clock_ns}")
