"""Flattened logic networks (arXiv 2309.10510): a quantised MLP as dedicated logic with embedded weights."""

from __future__ import annotations

from dataclasses import dataclass

from frugalnn.core.config import FieldError, MethodConfig, option

DATASETS = ("digits", "fashion-mnist")


@dataclass
class LogicFlattenConfig(MethodConfig):
    """How the network is trained, turned into logic, and pipelined."""

    METHOD = "logic-flatten"
    PRESETS = {
        "paper": {"multiplier": "csd", "csd_penalty": 0.0, "pipeline_ns": None},
        "ours": {"multiplier": "csd", "csd_penalty": 1.0, "pipeline_ns": 2.0, "retime": "levelised"},
    }

    data: str = option(
        "digits", "training data (digits: sklearn 8x8; fashion-mnist: average-pooled)", choices=DATASETS
    )
    hidden: tuple[int, ...] = option((16,), "hidden layer widths of the MLP")
    downsample: int = option(
        4, "fashion-mnist: average-pool factor (28/4 = 7x7 = 49 features)", choices=(1, 2, 4, 7)
    )
    weight_bits: int = option(4, "signed weight bits", low=2, high=8)
    act_bits: int = option(4, "unsigned hidden activation bits", low=1, high=8)
    input_bits: int = option(4, "unsigned input feature bits", low=1, high=8)
    requant_bits: int = option(
        8, "significant bits of each neuron's requantisation multiplier", low=2, high=16
    )
    epochs: int = option(40, "float training epochs", low=0)
    qat_epochs: int = option(40, "quantisation-aware training epochs (with the logic-cost penalty)", low=0)
    lr: float = option(3e-3, "Adam learning rate", low=0, low_open=True)
    batch_size: int = option(64, "training batch size", low=1)
    csd_penalty: float = option(
        0.0, "weight of the logic-cost penalty (mean non-zero CSD digits per weight)", low=0
    )
    multiplier: str = option(
        "csd", "constant products as CSD shift-and-add, or '*' left to synthesis", choices=("csd", "synth")
    )
    pipeline_ns: float | None = option(
        None, "target clock period for the pipelined design (None: combinational)", low=0, low_open=True
    )
    retime: str = option(
        "levelised",
        "pipelining: our levelised registers, or yosys/abc retiming",
        choices=("levelised", "abc"),
    )
    max_adders: int = option(
        10000, "largest design (two-input adders, ~30 cells each) handed to synthesis", low=1
    )
    seed: int = option(0, "random seed")

    def check(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise FieldError("hidden", f"must list positive layer widths, got {self.hidden}")
        if self.retime == "abc" and self.pipeline_ns is None:
            raise FieldError("retime", "'abc' retimes registers toward a clock: also set pipeline_ns")
