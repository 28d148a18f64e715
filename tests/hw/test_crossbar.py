"""RRAM crossbar substrate: references are float64 numpy, closed forms and hand-computed costs."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from frugalnn.core.models import build_model
from frugalnn.errors import ConfigError, UnsupportedModelError
from frugalnn.hw.crossbar import AnalogConv2d, AnalogLinear, CrossbarConfig, convert_to_analog, program
from frugalnn.hw.crossbar_cost import LayerShape, crossbar_cost, layer_shapes
from frugalnn.hw.crossbar_mc import monte_carlo_accuracy


def _linear(k: int, n: int, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(k, n).double()


def _np_ref(x: torch.Tensor, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    out = x.detach().numpy().astype(np.float64) @ w.T
    return out if b is None else out + b


def test_ideal_analog_linear_equals_float64_reference():
    lin = _linear(300, 37)
    x = torch.randn(20, 300, dtype=torch.float64)
    analog = convert_to_analog(lin, CrossbarConfig.ideal())
    assert isinstance(analog, AnalogLinear) and not isinstance(lin, AnalogLinear)
    ref = _np_ref(x, lin.weight.detach().numpy(), lin.bias.detach().numpy())
    np.testing.assert_allclose(analog(x).detach().numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())


def test_tiled_equals_untiled_and_numpy_cell_quantisation():
    # 300 inputs x 200 outputs: 3 row tiles x 4 column tiles of 128x128 (64 differential pairs per row)
    lin = _linear(300, 200, seed=1)
    x = torch.randn(8, 300, dtype=torch.float64)
    kw = dict(cell_bits=3, weight_scaling="per_tensor")
    tiled = convert_to_analog(lin, CrossbarConfig.ideal(rows=128, cols=128, **kw))
    whole = convert_to_analog(lin, CrossbarConfig.ideal(rows=512, cols=512, **kw))
    assert tiled.conductances_us()[0].shape[0] == 3 and whole.conductances_us()[0].shape[0] == 1
    w = lin.weight.detach().numpy()
    s = np.abs(w).max()
    wq = np.round(w / s * 7) / 7 * s  # 8 levels per cell, a pair gives 15 signed levels
    ref = _np_ref(x, wq, lin.bias.detach().numpy())
    tol = 1e-6 * np.abs(ref).max()
    np.testing.assert_allclose(tiled(x).detach().numpy(), ref, rtol=0, atol=tol)
    np.testing.assert_allclose(whole(x).detach().numpy(), tiled(x).detach().numpy(), rtol=0, atol=tol)


def test_per_column_scaling_matches_numpy_per_tile_columns():
    lin = _linear(200, 10, seed=2)
    x = torch.randn(5, 200, dtype=torch.float64)
    analog = convert_to_analog(lin, CrossbarConfig.ideal(cell_bits=2, weight_scaling="per_column"))
    w = lin.weight.detach().numpy()
    wq = np.zeros_like(w)
    for lo in (0, 128):  # each row tile has its own scale per column
        blk = w[:, lo : lo + 128]
        s = np.abs(blk).max(axis=1, keepdims=True)
        wq[:, lo : lo + 128] = np.round(blk / s * 3) / 3 * s
    ref = _np_ref(x, wq, lin.bias.detach().numpy())
    np.testing.assert_allclose(analog(x).detach().numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("bit_serial", [False, True])
def test_dac_quantisation_matches_numpy(bit_serial):
    lin = _linear(200, 6, seed=3)
    x = torch.randn(7, 200, dtype=torch.float64)
    analog = convert_to_analog(lin, CrossbarConfig.ideal(dac_bits=3, bit_serial_inputs=bit_serial))
    xn = x.numpy().copy()
    for lo in (0, 128):  # abs-max scaling per input vector and row tile, 3 bits = 7 levels k/3
        blk = xn[:, lo : lo + 128]
        s = np.abs(blk).max(axis=1, keepdims=True)
        xn[:, lo : lo + 128] = np.round(blk / s * 3) / 3 * s
    ref = xn @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    np.testing.assert_allclose(analog(x).detach().numpy(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("differential, n_levels, n_weights", [(True, 8, 15), (False, 8, 8)])
def test_conductance_levels_counted_exactly(differential, n_levels, n_weights):
    cfg = CrossbarConfig.ideal(cell_bits=3, g_min_us=1.0, g_max_us=41.0, differential=differential,
                               weight_scaling="per_tensor")  # fmt: skip
    lin = nn.Linear(1001, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.linspace(-1, 1, 1001, dtype=torch.float64))
    analog = convert_to_analog(lin, cfg)
    g_pos, g_neg = analog.conductances_us()
    levels = torch.unique(torch.cat([g_pos.flatten(), g_neg.flatten()]))
    np.testing.assert_allclose(levels.numpy(), 1.0 + np.arange(8) * 40.0 / 7, rtol=0, atol=1e-12)
    assert len(levels) == n_levels
    real = analog._programmed().w_eff[:, 0].flatten()[:1001]
    assert len(torch.unique(torch.round(real * 1e9))) == n_weights


def test_lognormal_variation_matches_closed_form():
    sigma = 0.3
    lin = nn.Linear(512, 256, bias=False).double()
    with torch.no_grad():
        lin.weight.fill_(0.5)
    cfg = CrossbarConfig.ideal(variation_sigma=sigma, g_min_us=0.0)
    analog = convert_to_analog(lin, cfg)
    program(analog, torch.Generator().manual_seed(7))
    ratio = (analog._programmed().w_eff / 1.0).flatten().numpy()  # w' / w with w normalised to 1
    n = ratio.size
    mean, var = math.exp(sigma**2 / 2), (math.exp(sigma**2) - 1) * math.exp(sigma**2)
    assert abs(ratio.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(ratio.var() - var) < 0.05 * var
    assert abs(np.log(ratio).std() - sigma) < 0.01
    assert float(analog.conductances_us()[1].abs().max()) == 0.0  # G⁻ = g_min = 0 stays 0 under e^θ


def test_adc_clips_at_output_bound_and_quantises():
    lin = nn.Linear(10, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.fill_(1.0)
    analog = convert_to_analog(lin, CrossbarConfig.ideal(out_bound=2.0, adc_bits=9))
    x = torch.ones(2, 10, dtype=torch.float64) * torch.tensor([[1.0], [0.1]], dtype=torch.float64)
    # Σ x·w = 10 in normalised units is clipped to the bound 2, then rescaled by s_x (1 and 0.1)
    np.testing.assert_allclose(analog(x).detach().numpy().ravel(), [2.0, 0.2], rtol=1e-12)
    lin2 = _linear(50, 20, seed=4)
    coarse = convert_to_analog(
        lin2, CrossbarConfig.ideal(adc_bits=3, out_bound=3.0, weight_scaling="per_tensor")
    )
    xr = torch.randn(30, 50, dtype=torch.float64)
    y = (coarse(xr) - lin2.bias).detach().numpy()
    s_w = np.abs(lin2.weight.detach().numpy()).max()
    codes = y / (np.abs(xr.numpy()).max(axis=1, keepdims=True) * s_w) / 3.0 * 3  # m = 2**2 − 1 = 3
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-9)
    assert np.abs(codes).max() <= 3 + 1e-9 and len(np.unique(np.round(codes))) > 3


def test_analog_conv_equals_torch_conv_when_ideal():
    torch.manual_seed(5)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    analog = convert_to_analog(conv, CrossbarConfig.ideal(rows=16, cols=8))  # 27 rows -> 2 row tiles
    assert isinstance(analog, AnalogConv2d)
    with torch.no_grad():
        ref = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
        torch.testing.assert_close(analog(x), ref, rtol=0, atol=1e-6 * float(ref.abs().max()))


def test_convert_swaps_modules_keeps_original_and_state_dict():
    model = build_model("lenet5")
    analog = convert_to_analog(model, CrossbarConfig())
    kinds = [type(m).__name__ for m in analog.modules()]
    assert kinds.count("AnalogConv2d") == 2 and kinds.count("AnalogLinear") == 3
    assert not any(isinstance(m, AnalogLinear | AnalogConv2d) for m in model.modules())
    assert analog.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(4, 1, 28, 28)
    out = analog(x)
    assert out.shape == (4, 10) and not torch.equal(out, model(x))
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(UnsupportedModelError, match="filter_fn"):
        convert_to_analog(grouped, CrossbarConfig())
    kept = convert_to_analog(
        grouped, CrossbarConfig(), filter_fn=lambda m, name: not isinstance(m, nn.Conv2d)
    )
    assert type(kept[0]) is nn.Conv2d


def test_straight_through_gradient_and_reprogram_after_update():
    lin = _linear(20, 3, seed=6)
    analog = convert_to_analog(lin, CrossbarConfig(variation_sigma=0.2))
    x = torch.randn(4, 20, dtype=torch.float64)
    analog(x).sum().backward()
    ref = x.sum(0).expand(3, 20)  # d/dW of Σ (xWᵀ + b)
    torch.testing.assert_close(analog.weight.grad, ref)
    before = analog.conductances_us()[0].clone()
    with torch.no_grad():
        analog.weight.mul_(0.5)
    assert not torch.equal(analog.conductances_us()[0], before)  # stale chip is written again


def test_lenet5_cost_by_hand():
    model = build_model("lenet5")
    example = torch.zeros(1, 1, 28, 28)
    shapes = layer_shapes(model, example)
    assert [(s.in_features, s.out_features, s.positions) for s in shapes] == [
        (25, 6, 784), (150, 16, 100), (400, 120, 1), (120, 84, 1), (84, 10, 1)
    ]  # fmt: skip
    cfg = CrossbarConfig()  # 128 rows, 64 differential pairs per tile, 100 ns, 1 µs per cell write
    # tiles: 1·1, 2·1, 4·2, 1·2, 1·1 = 14
    resident = crossbar_cost(model, cfg, n_crossbars=14, example=example)
    assert resident.fits and resident.tiles == 14
    assert resident.read_cycles == 784 + 100 + 1 + 1 + 1 and resident.write_cycles == 0
    four = crossbar_cost(shapes, cfg, n_crossbars=4)
    assert not four.fits and [layer.rounds for layer in four.layers] == [1, 1, 2, 1, 1]
    assert four.read_cycles == 784 + 100 + 2 + 1 + 1
    # largest tile per layer x 2 cells: 25·6, 128·16, 128·64 (2 rounds), 120·64, 84·10 -> µs -> 100 ns cycles
    write_us = 2 * (25 * 6 + 128 * 16 + 2 * 128 * 64 + 120 * 64 + 84 * 10)
    assert four.write_cycles == pytest.approx(write_us * 1000 / 100)
    assert four.cells_written == 2 * (25 * 6 + 150 * 16 + 400 * 120 + 120 * 84 + 84 * 10)
    serial = crossbar_cost(shapes, CrossbarConfig(bit_serial_inputs=True), n_crossbars=14)
    assert serial.read_cycles == 6 * resident.read_cycles


def test_cost_energy_and_edp_by_hand():
    cfg = CrossbarConfig(
        read_energy_per_cell_pj=0.01, adc_energy_pj=1.0, dac_energy_pj=0.5,
        write_energy_per_cell_pj=2.0, write_verify_time_per_cell_us=0.5, read_cycle_ns=50.0,
    )  # fmt: skip
    cost = crossbar_cost([LayerShape("a", 200, 100, positions=3)], cfg, n_crossbars=2, batch_size=4)
    # 2 row tiles x 2 column tiles; 2 rounds of 3 reads; 40,000 cells; largest tile 2·128·64 cells
    assert (cost.tiles, cost.read_cycles) == (4, 6)
    assert cost.write_cycles == pytest.approx(2 * 16384 * 500 / 50 / 4)
    assert cost.read_energy_pj == pytest.approx(3 * 40000 * 0.01)
    assert cost.adc_energy_pj == pytest.approx(3 * 100 * 2 * 1.0)
    assert cost.dac_energy_pj == pytest.approx(3 * 200 * 2 * 0.5)
    assert cost.write_energy_pj == pytest.approx(40000 / 4 * 2.0)
    energy = 1200 + 600 + 600 + 20000
    assert cost.energy_pj == pytest.approx(energy)
    assert cost.edp_pj_ns == pytest.approx(energy * (6 + 81920) * 50)


def _digits_mlp():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1200], perm[1200:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x[tr]), y[tr]).backward()
        opt.step()
    return model, x[te], y[te]


@pytest.fixture(scope="module")
def digits_mlp():
    return _digits_mlp()


def test_monte_carlo_reproducible_with_generator(digits_mlp):
    model, x, y = digits_mlp
    cfg = CrossbarConfig(variation_sigma=0.4)
    runs = [monte_carlo_accuracy(model, x, y, 3, cfg, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0]["per_draw"] != runs[2]["per_draw"]
    assert runs[0]["min"] == min(runs[0]["per_draw"]) and len(runs[0]["per_draw"]) == 3


def test_accuracy_falls_as_variation_grows(digits_mlp):
    model, x, y = digits_mlp
    digital = float((model(x).argmax(1) == y).float().mean())
    means = [
        monte_carlo_accuracy(
            model, x, y, 6, CrossbarConfig(variation_sigma=s), torch.Generator().manual_seed(0)
        )["mean"]
        for s in (0.0, 0.2, 0.35, 0.5)
    ]
    assert means[0] > 0.9 and abs(means[0] - digital) < 0.02
    assert all(b <= a + 0.005 for a, b in zip(means, means[1:], strict=False)), means
    assert means[-1] < means[0] - 0.04, means


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(cell_bits=0), "cell_bits"),
        (dict(dac_bits=-1), "dac_bits"),
        (dict(adc_bits=0), "adc_bits"),
        (dict(g_min_us=50.0, g_max_us=40.0), "g_min_us < g_max_us"),
        (dict(g_min_us=40.0, g_max_us=40.0), "g_min_us < g_max_us"),
        (dict(variation_sigma=-0.1), "variation_sigma"),
        (dict(out_bound=0.0), "out_bound"),
        (dict(rows=0), "rows"),
        (dict(weight_scaling="per_row"), "per_column"),
        (dict(write_energy_per_cell_pj=-1.0), "write_energy_per_cell_pj"),
    ],
)
def test_impossible_configs_raise_config_error_with_fix(kwargs, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        CrossbarConfig(**kwargs)
    assert "use" in str(err.value) or "set" in str(err.value)


def test_bad_calls_raise_typed_errors():
    with pytest.raises(UnsupportedModelError, match="convert_to_analog"):
        program(nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="n_crossbars"):
        crossbar_cost([LayerShape("a", 4, 4)], CrossbarConfig(), n_crossbars=0)
    with pytest.raises(ConfigError, match="draws"):
        monte_carlo_accuracy(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1), 0, CrossbarConfig())


def test_output_and_read_noise_std_match_closed_form():
    lin = _linear(100, 1, seed=8)
    x = torch.randn(1, 100, dtype=torch.float64).expand(20000, 100)  # one vector read 20,000 times
    xn = x[0].numpy() / np.abs(x[0].numpy()).max()
    s = np.abs(x[0].numpy()).max() * np.abs(lin.weight.detach().numpy()).max()  # s_x · s_w
    for out_noise, read_noise in ((0.06, 0.0), (0.0, 0.02), (0.06, 0.02)):
        cfg = CrossbarConfig.ideal(
            out_noise=out_noise, read_noise_std=read_noise, weight_scaling="per_tensor"
        )
        with torch.no_grad():
            y = convert_to_analog(lin, cfg)(x).numpy().ravel()
        # Σ_r x_r·ε_r with ε_r ~ N(0, read²) per weight and read, plus N(0, out²) at the column
        std = s * math.sqrt(out_noise**2 + read_noise**2 * float(xn @ xn))
        assert abs(y.std() - std) < 0.03 * std


# ---------------------------------------------------------------- chips as a batch dimension (issue 18)
def _small_cnn() -> nn.Module:
    torch.manual_seed(3)
    # conv K = 2·3·3 = 18 < rows; second conv K = 4·5·5 = 100 > rows=64: two row tiles, one of them short
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 5, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        dict(variation_sigma=0.4, out_noise=0.06),
        dict(
            variation_sigma=0.3, read_noise_std=0.02, differential=False, bit_serial_inputs=True, dac_bits=4
        ),
    ],
)
def test_batched_chips_equal_one_chip_loop(kw):
    from frugalnn.hw.crossbar_mc import forward_chips, program_chips

    model = convert_to_analog(_small_cnn(), CrossbarConfig(rows=64, cols=16, **kw)).eval()
    x = torch.randn(7, 2, 12, 12)
    with torch.no_grad():
        chips = program_chips(model, 3, torch.Generator().manual_seed(5))
        batched = [forward_chips(model, x[:4], chips), forward_chips(model, x[4:], chips)]
        gen = torch.Generator().manual_seed(5)
        for d in range(3):
            program(model, gen)
            one = torch.cat([model(x[:4]), model(x[4:])])
            torch.testing.assert_close(torch.cat([batched[0][d], batched[1][d]]), one, rtol=0, atol=1e-5)
    y = torch.randint(0, 5, (7,))
    runs = [
        monte_carlo_accuracy(
            model, x, y, 5, None, torch.Generator().manual_seed(9), batch_size=3, chips_per_pass=c
        )
        for c in (1, 2, 5)
    ]
    assert runs[0]["per_draw"] == runs[1]["per_draw"] == runs[2]["per_draw"]
    assert runs[0]["p5"] <= runs[0]["mean"] and runs[0]["min"] == min(runs[0]["per_draw"])


def test_batched_chips_train_through_straight_through():
    from frugalnn.hw.crossbar_mc import forward_chips, program_chips

    model = convert_to_analog(_small_cnn(), CrossbarConfig(variation_sigma=0.2))
    x = torch.randn(3, 2, 12, 12, requires_grad=True)
    out = forward_chips(model, x, program_chips(model, 4, torch.Generator().manual_seed(0)))
    assert out.shape == (4, 3, 5)
    out.sum().backward()
    assert x.grad is not None and model[0].weight.grad is not None  # the ideal layers' gradients
    with pytest.raises(ConfigError, match="forward_chips"):
        chips = program_chips(model, 2)
        from frugalnn.hw.crossbar_mc import load_chips

        with load_chips(model, chips):
            for c in chips.values():
                c.images = 5
            model(x)


def test_crossbar_digital_modules_stay_digital():
    class Keep(nn.Linear):
        crossbar_digital = True

    model = nn.Sequential(nn.Linear(4, 4), Keep(4, 4))
    analog = convert_to_analog(model, CrossbarConfig())
    assert isinstance(analog[0], AnalogLinear) and type(analog[1]) is Keep
