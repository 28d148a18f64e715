"""MAC-array power of a network (PowerPruning Sec. 4: power relative to the 8-bit baseline).

Per layer l and weight code w, the energy of one multiply-accumulate, E_l(w), is characterised on
the layer's own (activation, partial-sum) stream, which carries its activation statistics and their
transitions. The layer's energy over the recorded images is
    E_l = Σ_w Σ_a counts_l[w, a] · E_l(w)
(counts_l[w, a]: the MACs pairing weight code w with activation code a in real inference), and the
array's power at clock period T is Σ_l E_l / (MACs · T) per MAC unit. Voltage scaling multiplies the
dynamic part (data-dependent switching and internal energy, plus the clock) by (V/V_nom)² and the
leakage part by the leakage factor (voltage.py); the clock period stays the original one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn.methods.power_pruning.characterise import EnergyTable
from frugalnn.methods.power_pruning.stats import LayerStats
from frugalnn.methods.power_pruning.voltage import VoltageChoice


@dataclass
class LayerPower:
    name: str
    macs: int
    energy_pj: float  # over the recorded images, at the nominal voltage
    leakage_pj: float  # its leakage part

    def scaled_pj(self, vc: VoltageChoice | None) -> float:
        if vc is None:
            return self.energy_pj
        return (self.energy_pj - self.leakage_pj) * vc.dynamic_factor + self.leakage_pj * vc.leakage_factor


def layer_energy(stats: LayerStats, table: EnergyTable, mode: str) -> LayerPower:
    """Σ_w Σ_a counts[w, a] · E(w) for one layer; every weight code it uses must be characterised."""
    per_code = table.full(mode)
    use = stats.weight_use.astype(np.float64)
    used = use > 0
    if np.isnan(per_code[used]).any():
        missing = (np.flatnonzero(used & np.isnan(per_code)) - 127).tolist()
        raise ValueError(f"layer {stats.name} uses weight codes {missing[:5]} that were not characterised")
    energy = float(use[used] @ per_code[used])
    return LayerPower(stats.name, stats.macs, energy, float(use.sum()) * table.leakage_pj)


def network_power(
    layers: list[LayerStats], tables: list[EnergyTable], mode: str, clock_ns: float
) -> tuple[list[LayerPower], dict]:
    """Per-layer energies and the network's totals (energy per image, mean energy per MAC, power)."""
    rows = [layer_energy(s, t, mode) for s, t in zip(layers, tables, strict=True)]
    macs = sum(r.macs for r in rows)
    energy = sum(r.energy_pj for r in rows)
    return rows, {
        "macs": macs,
        "energy_pj": energy,
        "energy_pj_per_mac": energy / macs,
        "power_mw_per_mac_unit": energy / macs / clock_ns,  # pJ / ns = mW
    }


def total_pj(rows: list[LayerPower], vc: VoltageChoice | None) -> float:
    return sum(r.scaled_pj(vc) for r in rows)


def breakdown(before: list[LayerPower], after: list[LayerPower], vc: VoltageChoice | None) -> list[dict]:
    """Per-layer energy before (nominal) and after (at the chosen voltage), with the reduction."""
    out = []
    for b, a in zip(before, after, strict=True):
        scaled = a.scaled_pj(vc)
        out.append(
            {
                "layer": b.name,
                "macs": b.macs,
                "pj_per_mac_before": b.energy_pj / b.macs,
                "pj_per_mac_after_nominal": a.energy_pj / a.macs,
                "pj_per_mac_after": scaled / a.macs,
                "power_reduction": 1.0 - scaled / b.energy_pj,
            }
        )
    return out
