"""The MAC generator (functional, exhaustive) and its per-weight characterisation."""

import numpy as np
import pytest

from frugalnn.errors import ConfigError, DataError
from frugalnn.hw.mac import (
    CharacterizeConfig,
    MacConfig,
    activation_stream,
    build_mac,
    characterize_mac,
    lane_words,
)
from frugalnn.hw.netlist import unpack_bits


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    return x & ((1 << bits) - 1)


@pytest.mark.parametrize("signed", [True, False])
def test_mac_equals_w_times_a_plus_p_for_all_inputs(signed):
    cfg = MacConfig(bits=4, psum_bits=8, weight_signed=signed, activation_signed=signed)
    net = build_mac(cfg).netlist
    vals = np.arange(-8, 8) if signed else np.arange(16)
    w, a, p = (x.ravel() for x in np.meshgrid(vals, vals, np.arange(-128, 128), indexing="ij"))
    n = w.size  # 65,536: every weight, activation and partial sum
    zeros = np.zeros(n, dtype=np.int64)
    load = {"clk": zeros, "load_w": zeros + 1, "w_in": _wrap(w, 4), "a": zeros, "p": zeros}
    use = {"clk": zeros, "load_w": zeros, "w_in": zeros, "a": _wrap(a, 4), "p": _wrap(p, 8)}
    out = net.run_cycles([load, use])[1]["y"]
    assert np.array_equal(out, _wrap(w * a + p, 8))


def test_lane_layout_counts_the_streams_toggles():
    rng = np.random.default_rng(0)
    stream = rng.integers(0, 256, 64 * 10 + 1)
    for bit in (0, 5):
        words = lane_words(stream, bit)
        lanes_toggles = np.bitwise_count(words[1:] ^ words[:-1]).sum()
        direct = np.abs(np.diff((stream >> bit) & 1)).sum()
        assert lanes_toggles == direct
        # lane j holds values j*L .. j*L+L
        assert unpack_bits(words[3:4], 64)[7] == (stream[7 * 10 + 3] >> bit) & 1


@pytest.fixture(scope="module")
def small_char():
    cfg = CharacterizeConfig(
        mac=MacConfig(bits=4, psum_bits=10), transitions=2048, timed_transitions=512, seed=1
    )
    return characterize_mac(cfg, progress=False)


def test_characterisation_shapes_and_physics(small_char):
    r = small_char
    assert list(r.weights) == list(range(-8, 8))
    assert np.all(np.isfinite(r.energy_pj)) and np.all(r.energy_pj > r.dynamic_energy_pj)
    # zero-delay toggles on the same stream never exceed the glitch-aware ones
    assert np.all(r.timed_toggles_per_op >= r.zero_delay_toggles_on_timed_stream)
    # a zero weight turns the multiplier off: cheapest; and no path is slower than the static bound
    assert r.weights[np.argmin(r.dynamic_energy_pj)] == 0
    assert np.all(r.delay_ns <= r.critical_path_ns + 0.05 * 10)
    assert r.delay_by_activation_ns.shape == (16, 16)
    assert np.allclose(r.delay_by_activation_ns.max(axis=1), r.delay_ns)
    assert r.to_json()["energy_pj"][0] == pytest.approx(float(r.energy_pj[0]))


def test_activation_files_are_quantised_or_checked():
    cfg = CharacterizeConfig(mac=MacConfig(bits=4, psum_bits=10))
    rng = np.random.default_rng(0)
    codes, info = activation_stream(cfg, 100, rng, np.linspace(-1.0, 1.0, 50).astype(np.float32))
    assert codes.min() == -7 and codes.max() == 7 and info["activations"] == "file" and codes.size == 100
    with pytest.raises(DataError):
        activation_stream(cfg, 100, rng, np.array([0, 99]))
    with pytest.raises(ConfigError):
        characterize_mac(
            CharacterizeConfig(mac=MacConfig(bits=4, psum_bits=10), transitions=100), progress=False
        )
    with pytest.raises(ConfigError):
        MacConfig(bits=4, psum_bits=2).validate()
