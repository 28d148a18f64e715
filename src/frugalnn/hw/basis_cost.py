"""Cost of BasisN on a fixed number of RRAM crossbars: basis written once, reads, digital combination.

BasisN (arXiv 2407.03738) writes the global basis (``n_basis`` vectors of ``rows`` entries) to the
crossbars once; per inference a layer's input chunk x_t (h ≤ rows word lines) is read against the basis,
the ADCs convert the products x_t·b_j, and digital logic forms y_n = Σ_t s_{t,n} Σ_j c_{j,t,n}·(x_t·b_j).
Constants come from the same ``CrossbarConfig`` as the reprogramming baseline (``crossbar_cost``), plus
``DigitalConfig`` for the combination logic (docs/basisn.md gives their sources).

Placement and schedule:

* the basis occupies ``blocks = ceil(n_basis / weight_cols)`` crossbars (one copy); the budget holds
  ``copies = n_crossbars // blocks`` copies, ``copies·blocks ≤ n_crossbars`` crossbars in use;
* basis vectors form groups of ``group_size`` (never straddling a crossbar); ``active[g][t]`` says
  whether row tile t of a layer has any non-zero coefficient on group g;
* a layer reads, per position and cycle of the input code, every crossbar block one of its row tiles
  uses: ``a_k`` reads on block k, spread over its ``copies``: analog cycles
  ``max_k ceil(positions·a_k / copies) · cycles_per_mvm``; blocks work in parallel;
* the digital unit (``mac_units`` MACs per ``clock_ns``) runs pipelined behind the ADCs: a layer takes
  ``max(analog cycles, digital cycles)`` read cycles; layers run one after another;
* digital MACs per position: every non-zero coefficient once, plus one scale multiply per partial sum
  (row tile, output); each coefficient is fetched from SRAM once per inference (weight-stationary).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from frugalnn.errors import ConfigError
from frugalnn.hw.crossbar import CrossbarConfig


@dataclass
class DigitalConfig:
    """The digital combination logic. Energies: Horowitz, ISSCC 2014 (45 nm), see docs/basisn.md."""

    mac_units: int = 256  # multiply-accumulate units working in parallel
    clock_ns: float = 1.0  # their clock period (1 GHz)
    mult_energy_pj_8x8: float = 0.2  # 8-bit integer multiply; scaled by (coef_bits·adc_bits)/64
    add_energy_pj_32: float = 0.1  # 32-bit integer add (the accumulator)
    sram_energy_pj_per_byte: float = 1.25  # 64-bit read of an 8 KB SRAM = 10 pJ

    def __post_init__(self) -> None:
        if self.mac_units < 1 or not self.clock_ns > 0:
            raise ConfigError(
                f"DigitalConfig: mac_units={self.mac_units} and clock_ns={self.clock_ns} must be > 0"
            )
        for name in ("mult_energy_pj_8x8", "add_energy_pj_32", "sram_energy_pj_per_byte"):
            if not getattr(self, name) >= 0:
                raise ConfigError(
                    f"DigitalConfig: {name}={getattr(self, name)} is negative; use a value >= 0"
                )

    def mac_energy_pj(self, coef_bits: int, adc_bits: int) -> float:
        return self.mult_energy_pj_8x8 * coef_bits * adc_bits / 64 + self.add_energy_pj_32


@dataclass
class BasisLayerUse:
    """A layer as BasisN runs it: K inputs in ``row_tiles`` chunks of ``chunk_height``, N outputs."""

    name: str
    in_features: int
    out_features: int
    positions: int  # matrix-vector products per inference (H_out·W_out for a convolution)
    row_tiles: int
    chunk_height: int
    active: list[list[bool]] | None = None  # (groups, row_tiles); None: every group in every row tile
    nonzero_coefs: int | None = None  # non-zero quantised coefficients; None: all of the active groups


@dataclass
class BasisLayerCost:
    name: str
    positions: int
    row_tiles: int
    block_reads: int  # crossbar-block reads per inference
    adc_conversions: int
    digital_macs: int
    analog_cycles: int
    digital_cycles: int
    cycles: int
    read_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    digital_energy_pj: float


@dataclass
class BasisCost:
    n_crossbars: int
    n_basis: int
    blocks: int  # crossbars one copy of the basis takes
    copies: int
    crossbars_used: int
    cycles: int  # per inference, in read cycles
    latency_ns: float
    digital_macs: int
    read_energy_pj: float
    adc_energy_pj: float
    dac_energy_pj: float
    digital_energy_pj: float
    coef_fetch_energy_pj: float
    energy_pj: float
    edp_pj_ns: float
    basis_write_ns: float  # once, when the chip is set up (not per inference)
    basis_write_energy_pj: float
    layers: list[BasisLayerCost] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def basis_placement(n_basis: int, config: CrossbarConfig, n_crossbars: int) -> tuple[int, int]:
    """(blocks, copies): crossbars one basis copy needs and how many copies fit in the budget."""
    if n_crossbars < 1:
        raise ConfigError(f"n_crossbars={n_crossbars} must be >= 1; pass how many crossbars the chip has")
    blocks = math.ceil(n_basis / config.weight_cols)
    if blocks > n_crossbars:
        raise ConfigError(
            f"n_crossbars={n_crossbars} is too small even for the basis: {n_basis} basis vectors need "
            f"{blocks} crossbars of {config.weight_cols} vectors; use n_crossbars >= {blocks}"
        )
    return blocks, n_crossbars // blocks


def basis_cost(
    layers: list[BasisLayerUse],
    config: CrossbarConfig,
    n_crossbars: int,
    n_basis: int,
    group_size: int,
    coef_bits: int,
    digital: DigitalConfig | None = None,
) -> BasisCost:
    """Cycles, energy and EDP per inference of a basis network on ``n_crossbars`` crossbars."""
    c, d = config, digital or DigitalConfig()
    if not layers:
        raise ConfigError("no basis layers to cost; convert the model with to_basisn first")
    if n_basis > c.rows:
        raise ConfigError(f"n_basis={n_basis} exceeds the crossbar height {c.rows}; use n_basis <= {c.rows}")
    if group_size < 1 or c.weight_cols % group_size:
        raise ConfigError(
            f"group_size={group_size} must divide the {c.weight_cols} basis vectors of a crossbar"
        )
    blocks, copies = basis_placement(n_basis, c, n_crossbars)
    per_weight = 2 if c.differential else 1
    groups = math.ceil(n_basis / group_size)
    group_cols = [min(group_size, n_basis - g * group_size) for g in range(groups)]
    group_block = [g * group_size // c.weight_cols for g in range(groups)]
    block_cols = [min(c.weight_cols, n_basis - k * c.weight_cols) for k in range(blocks)]
    cyc = c.cycles_per_mvm
    macs_per_cycle = d.mac_units * c.read_cycle_ns / d.clock_ns
    e_mac = d.mac_energy_pj(coef_bits, c.adc_bits)
    out, nnz_total = [], 0
    for layer in layers:
        t, n, h, pos = layer.row_tiles, layer.out_features, layer.chunk_height, layer.positions
        act = layer.active if layer.active is not None else [[True] * t for _ in range(groups)]
        if len(act) != groups or any(len(row) != t for row in act):
            raise ConfigError(f"{layer.name}: active map must be {groups} groups x {t} row tiles")
        uses = [[any(act[g][r] for g in range(groups) if group_block[g] == k) for r in range(t)]
                for k in range(blocks)]  # fmt: skip
        a = [sum(row) for row in uses]  # reads per position on block k
        conv_cols = sum(group_cols[g] * sum(act[g]) for g in range(groups))  # ADC conversions per position
        nnz = layer.nonzero_coefs if layer.nonzero_coefs is not None else conv_cols * n
        nnz_total += nnz
        macs = pos * (nnz + t * n)
        analog = max(math.ceil(pos * ak / copies) for ak in a) * cyc
        dig = math.ceil(macs / macs_per_cycle)
        out.append(
            BasisLayerCost(
                layer.name, pos, t, block_reads=pos * cyc * sum(a), adc_conversions=pos * cyc * conv_cols,
                digital_macs=macs, analog_cycles=analog, digital_cycles=dig, cycles=max(analog, dig),
                read_energy_pj=pos * cyc * sum(ak * per_weight * h * block_cols[k] for k, ak in enumerate(a))
                * c.read_energy_per_cell_pj,
                adc_energy_pj=pos * cyc * conv_cols * c.adc_energy_pj,
                dac_energy_pj=pos * cyc * sum(a) * h * c.dac_energy_pj,
                digital_energy_pj=macs * e_mac,
            )
        )  # fmt: skip
    cycles = sum(x.cycles for x in out)
    parts = {k: sum(getattr(x, k) for x in out)
             for k in ("read_energy_pj", "adc_energy_pj", "dac_energy_pj", "digital_energy_pj")}  # fmt: skip
    fetch = nnz_total * coef_bits / 8 * d.sram_energy_pj_per_byte
    energy = sum(parts.values()) + fetch
    latency = cycles * c.read_cycle_ns
    cells_per_crossbar = per_weight * c.rows * max(block_cols) + (0 if c.differential else c.rows)
    write_ns = math.ceil(cells_per_crossbar / c.write_parallel_cells) * c.write_verify_time_per_cell_us * 1e3
    cells_all = copies * (per_weight * c.rows * n_basis + (0 if c.differential else c.rows * blocks))
    return BasisCost(
        n_crossbars, n_basis, blocks, copies, blocks * copies, cycles, latency,
        sum(x.digital_macs for x in out), **parts, coef_fetch_energy_pj=fetch, energy_pj=energy,
        edp_pj_ns=energy * latency, basis_write_ns=write_ns,
        basis_write_energy_pj=cells_all * c.write_energy_per_cell_pj, layers=out,
    )  # fmt: skip
