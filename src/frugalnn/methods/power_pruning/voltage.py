"""Supply-voltage scaling (PowerPruning Sec. 3.4): the lowest Vdd on a grid at which the remaining
worst sensitised delay still meets the original clock, and the power there.

Delay: the alpha-power law (Sakurai & Newton, IEEE JSSC 25(2), 1990, Eq. 11):
    t_d(V) ∝ V / (V - V_th)^α,   so   t_d(V) = t_d(V_nom) · g(V) / g(V_nom),  g(V) = V / (V - V_th)^α
(g falls monotonically in V for α >= 1, so the feasible voltages form one interval above a threshold).
Power at the same clock f: dynamic (switching + internal + clock) energy per operation scales as V²
(P_dyn = α_sw·C·V²·f); leakage power as V·exp(K4·(V - V_nom)) (Martin, Flautner, Mudge & Blaauw,
ICCAD 2002, Eq. 3: P_leak ∝ V·K3·e^{K4·V}, the drain-induced barrier lowering term), times the period.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from frugalnn.core.config import FieldError


@dataclass(frozen=True)
class VoltageModel:
    """Constants of the voltage model, in one place, with their sources.

    nominal_v: the OSU018 Liberty library's nominal voltage (``nom_voltage : 1.8``).
    vth_v, alpha: threshold voltage and velocity-saturation index of the alpha-power law. The Liberty
        file states neither; 0.45 V and 1.3 are typical of 0.18 µm bulk CMOS (OSU018 is characterised
        on TSMC 0.18 µm models; Sakurai & Newton report α near 1.2-1.3 for sub-micron devices). These are
        assumptions: change them here.
    leakage_k4_per_v: K4 of Martin et al. (ICCAD 2002, Table 1: 1.83 /V for their 70 nm fit; no 0.18 µm
        fit is published with it). Leakage is ~0.6 fJ of a ~20 pJ MAC operation here, so it barely matters.
    min_v: lowest supply considered (well above V_th, where the alpha-power law still holds).
    """

    nominal_v: float = 1.8
    vth_v: float = 0.45
    alpha: float = 1.3
    leakage_k4_per_v: float = 1.83
    min_v: float = 0.8

    def delay_factor(self, v: float) -> float:
        """t_d(v) / t_d(nominal)."""

        def g(x: float) -> float:
            return x / (x - self.vth_v) ** self.alpha

        return g(v) / g(self.nominal_v)

    def dynamic_factor(self, v: float) -> float:
        return (v / self.nominal_v) ** 2

    def leakage_factor(self, v: float) -> float:
        return (v / self.nominal_v) * math.exp(self.leakage_k4_per_v * (v - self.nominal_v))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VoltageChoice:
    vdd_v: float
    delay_ns: float  # worst sensitised delay at vdd_v
    clock_ns: float
    next_lower_v: float | None  # the next grid step down (None: the grid ends)
    next_lower_delay_ns: float | None  # its delay: above the clock (that is why it was not chosen)
    dynamic_factor: float
    leakage_factor: float


def choose_vdd(max_delay_ns: float, clock_ns: float, step_v: float, model: VoltageModel) -> VoltageChoice:
    """Lowest V = nominal - k·step (>= model.min_v) with max_delay · delay_factor(V) <= clock."""
    if max_delay_ns > clock_ns * (1 + 1e-9):
        raise FieldError(
            "clock_ns",
            f"is {clock_ns:.3f} ns but the MAC's worst sensitised delay is {max_delay_ns:.3f} ns even at the "
            f"nominal {model.nominal_v} V; use a clock period of at least {max_delay_ns:.3f} ns",
        )
    steps = int(math.floor((model.nominal_v - model.min_v) / step_v + 1e-9))
    grid = [round(model.nominal_v - k * step_v, 6) for k in range(steps + 1)]
    chosen = 0
    for k, v in enumerate(grid):
        if max_delay_ns * model.delay_factor(v) <= clock_ns * (1 + 1e-9):
            chosen = k
        else:
            break
    v = grid[chosen]
    nxt = grid[chosen + 1] if chosen + 1 < len(grid) else None
    return VoltageChoice(
        vdd_v=v,
        delay_ns=max_delay_ns * model.delay_factor(v),
        clock_ns=clock_ns,
        next_lower_v=nxt,
        next_lower_delay_ns=None if nxt is None else max_delay_ns * model.delay_factor(nxt),
        dynamic_factor=model.dynamic_factor(v),
        leakage_factor=model.leakage_factor(v),
    )
