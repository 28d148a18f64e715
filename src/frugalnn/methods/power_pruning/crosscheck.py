"""Cross-check of the power model: one layer's MAC energy predicted from per-weight energies against a
direct gate-level simulation of the MAC fed that layer's real (weight, activation, partial-sum) stream.

Prediction: Σ_w n[w]·E(w) / Σ_w n[w] with E(w) from ``characterize_mac`` on the layer's sampled
stream (lane-packed, all weights at once) and n[w] the layer's MACs per weight code.
Direct: ``sites`` processing elements drawn uniformly over (output channel, input position) — each PE
runs the same number of MACs, so their mean is the layer's mean. Every PE's weight is loaded into the
register as flip-flop state, and its own activation and partial-sum sequence is applied one vector per
clock cycle through ``hw.timed.stream_energy`` (a separate simulation path: vectors packed in time
order, electrical model rebuilt per call). PEs holding the same weight share one call.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from frugalnn.hw.mac import _weight_register_nets
from frugalnn.hw.timed import ElectricalConfig, stream_energy
from frugalnn.methods.power_pruning.characterise import MAC, Characteriser
from frugalnn.methods.power_pruning.stats import LayerStats, input_codes, mac_layers, weight_codes


@torch.no_grad()
def layer_crosscheck(
    model: nn.Module,
    layer_name: str,
    x: torch.Tensor,
    stats: LayerStats,
    ch: Characteriser,
    *,
    sites: int = 48,
    run: int = 256,
    glitch: bool = False,
    seed: int = 1,
) -> dict:
    layers = mac_layers(model)
    layer = layers[layer_name]
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    try:
        model.eval()
        model(x)
    finally:
        hook.remove()
    w_q = weight_codes(layer)
    cols = input_codes(layer, seen[0])
    weights = np.unique(w_q.numpy())
    table = ch.energies(stats.activations, stats.psums, weights, glitch)
    mode = "glitch" if glitch else "zero-delay"
    use = stats.weight_use.astype(np.float64)
    per_code = table.full(mode)
    predicted = float(use[use > 0] @ per_code[use > 0] / use.sum())
    rng = np.random.default_rng(seed)
    # each site: its own contiguous run of (activation, partial sum) in time order
    o = rng.integers(0, w_q.shape[0], size=sites)
    i = rng.integers(0, w_q.shape[1], size=sites)
    acts, psums = [], []
    for k in range(sites):
        a, p = _site_stream(w_q[o[k]], cols, int(i[k]), run, rng)
        acts.append(a)
        psums.append(p)
    net = ch.mapped.netlist
    wreg = _weight_register_nets(net, MAC.bits)
    q_to_ff = {g.outs[0]: g.name for g in net.seq}
    w_site = w_q[o, i].numpy()
    energy, ops = 0.0, 0
    for w in np.unique(w_site):
        idx = np.flatnonzero(w_site == w)
        a = np.concatenate([acts[k] for k in idx])
        p = np.concatenate([psums[k] for k in idx])
        n = len(a)
        state = {q_to_ff[q]: (int(w) >> b) & 1 for b, q in enumerate(wreg)}
        stream = {
            "a": a & 0xFF,
            "p": p & ((1 << MAC.psum_bits) - 1),
            "w_in": np.zeros(n, dtype=np.int64),
            "load_w": np.zeros(n, dtype=np.int64),
            "clk": np.zeros(n, dtype=np.int64),
        }
        res = stream_energy(
            net,
            stream,
            state=state,
            config=ElectricalConfig(input_slew_ns=0.06, output_load_pf=0.0088),
            clock_ns=10.0,
            delay_model="liberty" if glitch else None,
        )
        e = res.timed_energy_pj_per_op if glitch else res.energy_pj_per_op
        energy += e * (n - 1)
        ops += n - 1
    direct = energy / ops
    return {
        "layer": layer_name,
        "energy": mode,
        "predicted_pj_per_mac": predicted,
        "direct_pj_per_mac": direct,
        "relative_error": predicted / direct - 1.0,
        "sites": sites,
        "ops_simulated": ops,
        "distinct_weights": int(len(np.unique(w_site))),
    }


def _site_stream(
    w_row: torch.Tensor, cols: torch.Tensor, i: int, run: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Activations at input position i and the partial sums from rows < i, over a random time run."""
    seq = cols.permute(1, 0, 2).reshape(cols.shape[1], -1)
    t_len = seq.shape[1]
    length = min(run, t_len)
    start = int(rng.integers(0, t_len - length + 1))
    window = seq[:, start : start + length].to(torch.float64)
    psum = (w_row[:i].to(torch.float64) @ window[:i]).round().to(torch.int64)
    return window[i].round().to(torch.int64).numpy(), psum.numpy()
