"""Cost of running a network on a fixed number of RRAM crossbars: tiles, cycles, energy, EDP.

The reprogramming baseline of BasisN (arXiv 2407.03738): when the network needs more tiles than the
chip has crossbars, the crossbars are rewritten layer by layer on every inference (batch), and the
write-verify time and energy dominate. Schedule (docs/crossbar.md):

* a layer's tiles run in parallel, ``ceil(tiles / n_crossbars)`` rounds; layers run one after another;
* each round reads ``positions · cycles_per_mvm`` cycles (positions = 1 for a linear layer, H_out·W_out
  for a convolution; cycles_per_mvm = dac_bits − 1 with bit-serial inputs, else 1);
* if every tile fits (Σ tiles ≤ n_crossbars) the weights are written once and cost nothing per inference;
  otherwise every tile is written once per batch: a round's write time is its largest tile's cells ×
  write_verify_time_per_cell_us / write_parallel_cells (crossbars program in parallel).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from frugalnn.core.measure import walk_layers
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.hw.crossbar import CrossbarConfig


@dataclass
class LayerShape:
    """A matrix layer as the crossbar sees it: (out_features × in_features), read ``positions`` times."""

    name: str
    in_features: int  # K: rows of the weight matrix (C·kh·kw for a convolution)
    out_features: int  # N: columns
    positions: int = 1  # matrix-vector products per inference (H_out·W_out for a convolution)


@dataclass
class LayerCrossbarCost:
    name: str
    in_features: int
    out_features: int
    positions: int
    row_tiles: int
    col_tiles: int
    tiles: int
    cells: int  # programmed cells (both cells of a pair; reference cells in offset mode)
    rounds: int
    read_cycles: int
    write_cycles: float
    cells_written: float
    read_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    write_energy_pj: float


@dataclass
class CrossbarCost:
    n_crossbars: int
    tiles: int
    fits: bool  # every tile resident: no reprogramming per inference
    batch_size: int
    read_cycles: int
    write_cycles: float
    cycles: float  # per inference, in read cycles (write time converted at read_cycle_ns)
    latency_ns: float
    cells_written: float  # per inference
    read_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    write_energy_pj: float
    energy_pj: float
    edp_pj_ns: float  # energy-delay product per inference
    layers: list[LayerCrossbarCost] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_shapes(model: nn.Module, example: torch.Tensor) -> list[LayerShape]:
    """Every nn.Linear / nn.Conv2d (analog or not) of ``model`` as a matrix-vector product: its K × N
    weight matrix and how many input positions it sees per inference, by one forward pass."""
    shapes: list[LayerShape] = []
    batch = example.shape[0]

    def visit(name: str, mod: nn.Module, inputs: tuple, kwargs: dict, out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            if mod.groups != 1:
                raise UnsupportedModelError(f"{name}: grouped convolution has no crossbar mapping here")
            k = mod.in_channels * math.prod(mod.kernel_size)
            pos = out.shape[-1] * out.shape[-2]
        else:
            k, pos = mod.in_features, out.numel() // out.shape[-1] // batch
        shapes.append(LayerShape(name, int(k), int(mod.weight.shape[0]), int(pos)))

    walk_layers(model, example, lambda _, mod: isinstance(mod, nn.Linear | nn.Conv2d), visit)
    return shapes


def crossbar_cost(
    model: nn.Module | list[LayerShape],
    config: CrossbarConfig,
    n_crossbars: int,
    example: torch.Tensor | None = None,
    batch_size: int = 1,
) -> CrossbarCost:
    """Tiles, cycles, energy and EDP per inference of ``model`` (or its layer shapes) on n crossbars."""
    if n_crossbars < 1:
        raise ConfigError(f"n_crossbars={n_crossbars} must be >= 1; pass how many crossbars the chip has")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1; writes are amortised over one batch")
    if isinstance(model, nn.Module):
        if example is None:
            raise ConfigError("crossbar_cost(model) needs example=, one input batch, to find conv positions")
        shapes = layer_shapes(model, example[:1])
    else:
        shapes = list(model)
    if not shapes:
        raise UnsupportedModelError(
            "no Linear/Conv2d layers to map onto crossbars; pass a model that has some"
        )
    c = config
    cyc = c.cycles_per_mvm
    per_weight = 2 if c.differential else 1
    total_tiles = sum(
        math.ceil(s.in_features / c.rows) * math.ceil(s.out_features / c.weight_cols) for s in shapes
    )
    fits = total_tiles <= n_crossbars
    layers = []
    for s in shapes:
        k, n = s.in_features, s.out_features
        rt, ct = math.ceil(k / c.rows), math.ceil(n / c.weight_cols)
        ref_cells = 0 if c.differential else k * ct  # one reference column per column tile
        cells = per_weight * k * n + ref_cells
        rounds = math.ceil(rt * ct / n_crossbars)
        reads = s.positions * cyc  # read cycles per round
        if fits:
            write_cycles, written = 0.0, 0.0
        else:  # largest tile of the layer bounds each round's write time
            big = per_weight * min(k, c.rows) * min(n, c.weight_cols) + (
                0 if c.differential else min(k, c.rows)
            )
            write_ns = (
                rounds * math.ceil(big / c.write_parallel_cells) * c.write_verify_time_per_cell_us * 1e3
            )
            write_cycles, written = write_ns / c.read_cycle_ns / batch_size, cells / batch_size
        layers.append(
            LayerCrossbarCost(
                s.name, k, n, s.positions, rt, ct, rt * ct, cells, rounds,
                read_cycles=rounds * reads, write_cycles=write_cycles, cells_written=written,
                read_energy_pj=reads * cells * c.read_energy_per_cell_pj,
                adc_energy_pj=reads * n * rt * c.adc_energy_pj,  # each row tile converts its N columns
                dac_energy_pj=reads * k * ct * c.dac_energy_pj,  # each column tile drives its K rows
                write_energy_pj=written * c.write_energy_per_cell_pj,
            )
        )  # fmt: skip
    read_cycles = sum(layer.read_cycles for layer in layers)
    write_cycles = sum(layer.write_cycles for layer in layers)
    cycles = read_cycles + write_cycles
    parts = {
        key: sum(getattr(layer, key) for layer in layers)
        for key in ("read_energy_pj", "adc_energy_pj", "dac_energy_pj", "write_energy_pj")
    }
    energy = sum(parts.values())
    latency = cycles * c.read_cycle_ns
    return CrossbarCost(
        n_crossbars, total_tiles, fits, batch_size, read_cycles, write_cycles, cycles, latency,
        sum(layer.cells_written for layer in layers), **parts, energy_pj=energy, edp_pj_ns=energy * latency,
        layers=layers,
    )  # fmt: skip
