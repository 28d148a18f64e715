"""PowerPruning parts against independent references: projection, integer path, counts vs brute force,
the voltage choice against the closed-form alpha-power law, the delay step's stopping rule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from frugalnn.core.quant import (
    QuantConfig,
    calibrate,
    quantize_model,
)
from frugalnn.core.quant import (
    integer_forward as core_integer_forward,
)
from frugalnn.methods.power_pruning import (
    PowerPrunedConv2d,
    VoltageModel,
    bake,
    choose_vdd,
    integer_forward,
    nearest_code,
    to_pruned,
)
from frugalnn.methods.power_pruning.characterise import ALL_WEIGHTS, EnergyTable
from frugalnn.methods.power_pruning.layers import ALL_CODES
from frugalnn.methods.power_pruning.power import layer_energy
from frugalnn.methods.power_pruning.select import select
from frugalnn.methods.power_pruning.stats import LayerStats, record_stats


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))


def int8(model: nn.Module, x: torch.Tensor) -> nn.Module:
    return calibrate(quantize_model(model, QuantConfig(8, 8, per_channel=True)), x)


def test_nearest_code_matches_brute_force_and_only_allowed():
    codes = torch.tensor([-64.0, -3.0, 0.0, 1.0, 2.0, 16.0, 100.0])
    v = torch.linspace(-140, 140, 2001)
    got = nearest_code(v, codes)
    ref = codes[(v[:, None] - codes[None, :]).abs().argmin(dim=1)]  # first minimum = the lower code on ties
    assert torch.equal(got, ref)
    assert set(got.tolist()) <= set(codes.tolist())


def test_projection_allowed_values_and_idempotent():
    x = torch.randn(16, 2, 5, 5)
    w_codes, a_codes = [-96, -64, -3, 0, 1, 2, 4, 8, 16, 32, 64], [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 127]
    model = to_pruned(int8(tiny_net(), x), w_codes, a_codes)
    bake(model)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    bake(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, first[k]), k  # idempotent
    for m in model.modules():
        if isinstance(m, PowerPrunedConv2d | nn.Linear):
            codes = m.weight.detach() / m.w_scale
            assert torch.allclose(codes, codes.round(), atol=1e-4)
            assert set(codes.round().unique().int().tolist()) <= set(w_codes)
            assert set(
                m.input_codes(torch.randn(4, *([2, 5, 5] if m.weight.dim() == 4 else [75]))).unique().tolist()
            ) <= set(a_codes)


def test_integer_path_equals_fake_quant_path():
    x = torch.randn(16, 2, 5, 5)
    model = int8(tiny_net(), x)
    full = to_pruned(int8(tiny_net(), x), ALL_CODES, ALL_CODES).eval()
    conv = full[0]
    # every code allowed: the core integer path of core/quant.py gives the pruned layer's outputs
    _, out_core = core_integer_forward(conv, x)
    assert torch.allclose(out_core.float(), conv(x), atol=1e-5)
    assert torch.allclose(full(x), model(x), atol=1e-6)  # K = 256: the int8 model itself
    pruned = bake(to_pruned(model, [-32, -1, 0, 1, 2, 4, 8, 16], [0, 1, 2, 4, 8, 16, 32, 64, 127])).eval()
    for layer, inp in ((pruned[0], x), (pruned[3], torch.relu(pruned[0](x)).flatten(1))):
        acc, out = integer_forward(layer, inp)
        assert acc.dtype == torch.int64
        assert torch.allclose(out.float(), layer(inp), atol=1e-5)


def brute_force_energy(x_codes: np.ndarray, w_codes: np.ndarray, energy: np.ndarray) -> float:
    """Σ over every multiply-accumulate of a 3x3 'same' conv (padding MACs included) of E(weight code):
    each (weight, activation) pair costs its weight's energy under the layer's stream."""
    n, c, h, w = x_codes.shape
    out_c = w_codes.shape[0]
    total = 0.0
    for o, _img, _y, _x, ci, dy, dx in itertools.product(
        range(out_c), range(n), range(h), range(w), range(c), range(3), range(3)
    ):
        total += energy[w_codes[o, ci, dy, dx] + 127]
    return total


def test_network_power_equals_brute_force_sum():
    x = torch.randn(3, 2, 5, 5)
    model = int8(tiny_net(), x)
    stats = record_stats(model, x, sites=4, length=128, seed=0)
    conv = model[0]
    rng = np.random.default_rng(0)
    energy = rng.uniform(5, 40, size=255)
    table = EnergyTable(ALL_WEIGHTS, energy, None, 1.0, 0.001)
    got = layer_energy(stats[0], table, "zero-delay").energy_pj
    w_codes = torch.clamp(torch.round(conv.weight / conv.weight_scale()), -127, 127).int().numpy()
    x_codes = torch.clamp(torch.round(x / conv.act_scale), -127, 127).int().numpy()
    assert got == pytest.approx(brute_force_energy(x_codes, w_codes, energy), rel=1e-9)
    # the pair counts themselves: every (w, a) pair of the layer, counted one by one
    ref = np.zeros((255, 255), dtype=np.int64)
    pad = torch.nn.functional.pad(torch.from_numpy(x_codes), (1, 1, 1, 1)).numpy()
    for o, img, y, xx, ci, dy, dx in itertools.product(
        range(3), range(3), range(5), range(5), range(2), range(3), range(3)
    ):
        ref[w_codes[o, ci, dy, dx] + 127, pad[img, ci, y + dy, xx + dx] + 127] += 1
    assert np.array_equal(stats[0].counts, ref)


def test_chosen_voltage_meets_clock_and_next_step_does_not():
    vm = VoltageModel()

    def delay(d_nom: float, v: float) -> float:  # closed form, t ∝ V / (V - Vth)^α
        return (
            d_nom * (v / (v - vm.vth_v) ** vm.alpha) / (vm.nominal_v / (vm.nominal_v - vm.vth_v) ** vm.alpha)
        )

    for d_max in (3.0, 4.0, 4.6, 5.45):
        vc = choose_vdd(d_max, 5.45, 0.05, vm)
        assert delay(d_max, vc.vdd_v) <= 5.45 + 1e-9
        assert vc.next_lower_v is not None and delay(d_max, vc.next_lower_v) > 5.45
        assert vc.dynamic_factor == pytest.approx((vc.vdd_v / 1.8) ** 2)
    assert choose_vdd(5.45, 5.45, 0.05, vm).vdd_v == 1.8
    assert math.isclose(choose_vdd(1.0, 5.45, 0.05, vm).vdd_v, vm.min_v)  # the grid's floor


def test_delay_step_reaches_target_and_keeps_zero():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(255, 255))
    stats = [LayerStats("l", counts, np.zeros(2, np.int64), np.zeros(2, np.int64), int(counts.sum()))]
    table = EnergyTable(ALL_WEIGHTS, np.abs(ALL_WEIGHTS).astype(float) + 1, None, 1.0, 0.0)
    mag = np.abs(ALL_WEIGHTS) / 127.0
    delay = 3.0 + mag[:, None] + mag[None, :] + rng.uniform(0, 0.05, size=(255, 255))
    sel = select(stats, [table], delay, keep=20, mode="zero-delay", delay_target=0.8, min_activations=16)
    assert sel.target_met and sel.max_delay_ns <= 0.8 * delay.max()
    sub = delay[np.ix_(np.isin(ALL_WEIGHTS, sel.weight_codes), np.isin(ALL_WEIGHTS, sel.activation_codes))]
    assert sub.max() == pytest.approx(sel.max_delay_ns)
    assert 0 in sel.weight_codes and 0 in sel.activation_codes
    assert len(sel.weight_codes) + len(sel.dropped_weights) == 20
    # sign="balanced": half the kept codes negative, the cheapest of each sign
    bal = select(
        stats,
        [table],
        delay,
        keep=8,
        mode="zero-delay",
        delay_target=None,
        min_activations=16,
        sign="balanced",
    )
    assert bal.weight_codes == [-4, -3, -2, -1, 0, 1, 2, 3]
