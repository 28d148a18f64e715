"""Choosing the allowed weight and activation codes (PowerPruning Sec. 3.1 and 3.2).

1. Power: every weight code's energy per operation is characterised under each layer's own stream;
   the network's cost of a code is the MAC-weighted mean over layers,
   E_net(w) = Σ_l M_l · E_l(w) / Σ_l M_l (M_l: the layer's multiply-accumulates), and the K cheapest
   codes are kept (``sign="ranked"``, the paper). On a two's-complement MAC every negative code costs
   more than every non-negative one (its partial products are dense in ones), so that keeps no
   negative weight for K <= 128; ``sign="balanced"`` keeps the ceil(K/2) cheapest non-negative and the
   floor(K/2) cheapest negative codes instead.
2. Timing: with D[w, a] the worst sensitised delay into activation a with weight w held, the greedy
   step repeatedly takes the slowest remaining pair (w*, a*) and removes whichever of w* or a* adds
   less squared error to the network's products once its MACs move to the nearest kept code
   (``removal_costs``, from the recorded (weight, activation) counts), until
   max D[kept w, kept a] <= target. Activation 0 (every ReLU zero) and weight 0 (the cheapest MAC,
   and every pruned connection) are never removed, nor the last weight code or an activation set at
   its floor: then the other one of the pair goes, and when neither can, the step stops short of the
   target (reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from frugalnn.methods.power_pruning.characterise import ALL_WEIGHTS, EnergyTable
from frugalnn.methods.power_pruning.stats import OFFSET, LayerStats


@dataclass
class Selection:
    weight_codes: list[int]  # allowed weight codes, ascending
    activation_codes: list[int]  # allowed activation codes, ascending
    ranking: list[int]  # all weight codes, cheapest first
    network_energy_pj: list[float]  # E_net per code, in ranking order
    max_delay_ns: float  # worst sensitised delay over the allowed pairs
    baseline_delay_ns: float  # ... over every pair of the int8 grid
    target_delay_ns: float | None  # the delay step's target (None: no delay step)
    target_met: bool
    dropped_weights: list[int] = field(default_factory=list)  # removed by the delay step, in order
    dropped_activations: list[int] = field(default_factory=list)


def network_energy(layers: list[LayerStats], tables: list[EnergyTable], mode: str) -> np.ndarray:
    """E_net(w) for every code -127..127 (index code + 127)."""
    macs = np.array([s.macs for s in layers], dtype=np.float64)
    per_layer = np.stack([t.full(mode) for t in tables])
    return (macs[:, None] * per_layer).sum(axis=0) / macs.sum()


def project_codes(codes: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Nearest allowed code (ties go down), as layers.nearest_code does for tensors."""
    allowed = np.sort(allowed)
    idx = np.clip(np.searchsorted(allowed, codes), 1, max(1, len(allowed) - 1))
    if len(allowed) == 1:
        return np.full_like(codes, allowed[0])
    lo, hi = allowed[idx - 1], allowed[idx]
    out = np.where(codes - lo <= hi - codes, lo, hi)
    return np.where(codes <= allowed[0], allowed[0], np.where(codes >= allowed[-1], allowed[-1], out))


def _mapping(allowed: np.ndarray) -> np.ndarray:
    """(255, 255) one-hot matrix: code index -> index of its nearest allowed code."""
    to = project_codes(ALL_WEIGHTS, allowed) + OFFSET
    m = np.zeros((len(ALL_WEIGHTS), len(ALL_WEIGHTS)))
    m[np.arange(len(ALL_WEIGHTS)), to] = 1.0
    return m


def _neighbour_gap(keep: np.ndarray) -> np.ndarray:
    """For each kept code, the distance to the nearest other kept code (inf when it is the only one)."""
    codes = ALL_WEIGHTS[keep].astype(np.float64)
    gap = np.full(len(ALL_WEIGHTS), np.inf)
    if len(codes) > 1:
        d = np.diff(codes)
        gap[keep] = np.minimum(np.r_[np.inf, d], np.r_[d, np.inf])
    return gap


def removal_costs(
    counts: np.ndarray, w_keep: np.ndarray, a_keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Squared error that removing each kept code adds to the layers' products (in code² units).

    With the counts projected onto the allowed codes (Cp), moving weight w by its gap d_w changes every
    product w·a by a·d_w: cost_w = Σ_a Cp[w, a]·a²·d_w²; likewise cost_a = Σ_w Cp[w, a]·w²·d_a².
    """
    cp = _mapping(ALL_WEIGHTS[w_keep]).T @ counts @ _mapping(ALL_WEIGHTS[a_keep])
    sq = ALL_WEIGHTS.astype(np.float64) ** 2
    with np.errstate(invalid="ignore"):  # 0 · inf: an unused sole code; it stays (cost inf)
        cost_w = np.nan_to_num((cp @ sq) * _neighbour_gap(w_keep) ** 2, nan=np.inf)
        cost_a = np.nan_to_num((sq @ cp) * _neighbour_gap(a_keep) ** 2, nan=np.inf)
    return cost_w, cost_a


def select(
    layers: list[LayerStats],
    tables: list[EnergyTable],
    delay_ns: np.ndarray,
    keep: int,
    mode: str,
    delay_target: float | None,
    min_activations: int,
    sign: str = "ranked",
) -> Selection:
    e_net = network_energy(layers, tables, mode)
    order = np.argsort(e_net, kind="stable")
    ranking = ALL_WEIGHTS[order]
    w_keep = np.zeros(len(ALL_WEIGHTS), dtype=bool)
    if sign == "balanced" and keep < len(ALL_WEIGHTS):
        neg = order[ALL_WEIGHTS[order] < 0]
        pos = order[ALL_WEIGHTS[order] >= 0]
        w_keep[pos[: keep - keep // 2]] = True
        w_keep[neg[: keep // 2]] = True
    else:
        w_keep[order[: min(keep, len(ALL_WEIGHTS))]] = True
    a_keep = np.ones(len(ALL_WEIGHTS), dtype=bool)
    base = float(delay_ns.max())
    target = None if delay_target is None else delay_target * base
    dropped_w: list[int] = []
    dropped_a: list[int] = []
    met = True
    if target is not None:
        counts = sum(s.counts for s in layers).astype(np.float64)
        while True:
            sub = np.where(w_keep[:, None] & a_keep[None, :], delay_ns, -np.inf)
            wi, ai = np.unravel_index(int(np.argmax(sub)), sub.shape)
            if sub[wi, ai] <= target:
                break
            can_w = ALL_WEIGHTS[wi] != 0 and w_keep.sum() > 1
            can_a = ALL_WEIGHTS[ai] != 0 and a_keep.sum() > min_activations
            if not (can_w or can_a):
                met = False
                break
            cost_w, cost_a = removal_costs(counts, w_keep, a_keep)
            drop_w = can_w and (not can_a or cost_w[wi] <= cost_a[ai])
            if drop_w:
                w_keep[wi] = False
                dropped_w.append(int(ALL_WEIGHTS[wi]))
            else:
                a_keep[ai] = False
                dropped_a.append(int(ALL_WEIGHTS[ai]))
    final = float(delay_ns[np.ix_(w_keep, a_keep)].max())
    return Selection(
        weight_codes=[int(w) for w in ALL_WEIGHTS[w_keep]],
        activation_codes=[int(a) for a in ALL_WEIGHTS[a_keep]],
        ranking=[int(w) for w in ranking],
        network_energy_pj=[float(e) for e in e_net[order]],
        max_delay_ns=final,
        baseline_delay_ns=base,
        target_delay_ns=target,
        target_met=met and (target is None or final <= target),
        dropped_weights=dropped_w,
        dropped_activations=dropped_a,
    )
