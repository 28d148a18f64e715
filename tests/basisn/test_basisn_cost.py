"""BasisN cost model: hand-counted cycles / energy of a tiny network, budget never exceeded, bad input."""

import math

import pytest
import torch
from torch import nn

import frugalnn
from frugalnn.errors import ConfigError
from frugalnn.hw.basis_cost import BasisLayerUse, DigitalConfig, basis_cost
from frugalnn.hw.crossbar import CrossbarConfig
from frugalnn.methods.basisn import BasisNConfig
from frugalnn.methods.basisn.cost import basisn_cost, layer_uses

XBAR = CrossbarConfig(rows=16, cols=16)  # 8 signed basis vectors per crossbar (differential pairs)


def tiny_uses() -> list[BasisLayerUse]:
    # conv 1->2, 3x3 on 6x6, no padding: K = 9 (one chunk of 9), 16 positions; linear 40 -> 3:
    # three chunks of 14 (ceil(40/16) = 3, ceil(40/3) = 14), one position
    return [BasisLayerUse("conv", 9, 2, 16, 1, 9), BasisLayerUse("fc", 40, 3, 1, 3, 14)]


def test_cycles_match_a_hand_count():
    # 8 basis vectors fill one crossbar; 3 crossbars hold 3 copies
    one_mac_per_cycle = DigitalConfig(mac_units=1, clock_ns=100.0)  # 1 MAC per 100 ns read cycle
    cost = basis_cost(
        tiny_uses(), XBAR, n_crossbars=3, n_basis=8, group_size=4, coef_bits=4, digital=one_mac_per_cycle
    )
    assert (cost.blocks, cost.copies, cost.crossbars_used) == (1, 3, 3)
    # analog: conv 16 chunk reads over 3 copies = ceil(16/3) = 6 cycles; fc 3 reads / 3 copies = 1
    assert [x.analog_cycles for x in cost.layers] == [6, 1]
    # digital MACs per position: 8 coefficients per (chunk, output) + one scale multiply per partial sum
    # conv: 16·(8·1·2 + 1·2) = 288; fc: 1·(8·3·3 + 3·3) = 81; one MAC per cycle dominates
    assert [x.digital_macs for x in cost.layers] == [288, 81]
    assert cost.cycles == 288 + 81
    fast = basis_cost(
        tiny_uses(), XBAR, n_crossbars=3, n_basis=8, group_size=4, coef_bits=4
    )  # 25,600 MACs/cycle
    assert fast.cycles == 6 + 1
    assert fast.latency_ns == 700.0
    # energy by hand at the default constants: reads 16+3, each 2·h·8 cells; 8 conversions per read
    read = (16 * 2 * 9 * 8 + 3 * 2 * 14 * 8) * 0.002
    adc = (16 + 3) * 8 * 2.0
    dac = (16 * 9 + 3 * 14) * 0.1
    digital = (288 + 81) * (0.2 * 4 * 9 / 64 + 0.1)
    fetch = (8 * 2 + 8 * 9) * 4 / 8 * 1.25
    assert fast.energy_pj == pytest.approx(read + adc + dac + digital + fetch)
    assert fast.edp_pj_ns == pytest.approx(fast.energy_pj * 700.0)
    # one copy on one crossbar: conv 16 cycles, fc 3
    assert basis_cost(tiny_uses(), XBAR, n_crossbars=1, n_basis=8, group_size=4, coef_bits=4).cycles == 19


def test_inactive_groups_skip_conversions_and_parallel_blocks():
    # 16 basis vectors = 2 crossbar blocks of 2 groups each; fc's row tiles use disjoint blocks
    uses = [BasisLayerUse("fc", 40, 3, 1, 3, 14, active=[[True, False, False], [False, False, False],
                                                         [False, True, False], [False, False, True]])]  # fmt: skip
    cost = basis_cost(uses, XBAR, n_crossbars=2, n_basis=16, group_size=4, coef_bits=4)
    assert (cost.blocks, cost.copies) == (2, 1)
    layer = cost.layers[0]
    assert layer.analog_cycles == 2  # block 0 serves tile 0, block 1 tiles 1 and 2 (in parallel with block 0)
    assert layer.adc_conversions == 3 * 4
    assert layer.digital_macs == 3 * 4 * 3 + 3 * 3
    dense = basis_cost([BasisLayerUse("fc", 40, 3, 1, 3, 14)], XBAR, 2, 16, 4, 4).layers[0]
    assert (dense.analog_cycles, dense.adc_conversions) == (3, 3 * 16)


@pytest.mark.parametrize("budget", [1, 2, 3, 5, 8, 13, 16])
@pytest.mark.parametrize("n_basis", [4, 8, 12, 16])
def test_crossbars_used_never_exceed_the_budget(budget, n_basis):
    blocks = math.ceil(n_basis / 8)
    if blocks > budget:
        with pytest.raises(ConfigError, match="too small even for the basis"):
            basis_cost(tiny_uses(), XBAR, budget, n_basis, 4, 4)
        return
    cost = basis_cost(tiny_uses(), XBAR, budget, n_basis, 4, 4)
    assert cost.crossbars_used <= budget
    assert cost.crossbars_used == blocks * (budget // blocks)


def test_model_cost_against_reprogramming_from_the_same_constants():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    cfg = BasisNConfig(crossbars=1, crossbar_size=16, n_basis=8, coef_bits=4, group_size=4, steps=0)
    model, _ = frugalnn.apply(net, cfg)
    x = torch.randn(1, 1, 8, 8)
    uses = layer_uses(model, x, 4)
    assert [(u.in_features, u.out_features, u.positions, u.row_tiles) for u in uses] == [
        (9, 4, 36, 1),
        (144, 10, 1, 9),
    ]
    out = basisn_cost(model, cfg, x)
    # the baseline: 1 + 2·... tiles > 1 crossbar, so every tile is written per inference
    assert not out["reprogram"]["fits"]
    assert out["basisn"]["crossbars_used"] <= 1
    assert out["edp_ratio"] == pytest.approx(out["basisn"]["edp_pj_ns"] / out["reprogram"]["edp_pj_ns"])


def test_bad_cost_input():
    with pytest.raises(ConfigError, match="n_crossbars=0 must be >= 1"):
        basis_cost(tiny_uses(), XBAR, 0, 8, 4, 4)
    with pytest.raises(ConfigError, match="group_size=3 must divide"):
        basis_cost(tiny_uses(), XBAR, 1, 8, 3, 4)
    with pytest.raises(ConfigError, match="mac_units=0"):
        DigitalConfig(mac_units=0)
