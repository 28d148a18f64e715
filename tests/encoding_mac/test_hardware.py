import numpy as np
import pytest

from frugalnn.hw.crosscheck import iverilog_simulate
from frugalnn.hw.synth import synthesize
from frugalnn.methods.encoding_mac.hardware import compare_columns, encoder_verilog, hardware_lut


def test_synthesised_encoder_matches_python_bits_in_both_simulators(enc4):
    mapped = synthesize(encoder_verilog(enc4), "encoder")
    codes = np.arange(256)
    x, w = codes >> 4, codes & 15
    want = enc4.kept_bits(x, w).astype(np.int64)
    want_words = (want << np.arange(len(enc4.kept))[:, None]).sum(axis=0)
    ours = mapped.netlist.simulate({"a": x, "w": w})["bits"]
    icarus = iverilog_simulate(mapped, {"a": x, "w": w})["bits"]
    assert np.array_equal(ours, want_words)
    assert np.array_equal(icarus, want_words)


def test_hardware_weights_round_to_the_given_bits(enc4):
    hw, shift = enc4.hardware_weights(3)
    assert all(-4 <= v < 4 for v in hw) and shift > 0
    assert np.array_equal(hardware_lut(enc4, 16), enc4.lut)


@pytest.mark.parametrize("weight_bits", [10, 5])
def test_column_comparison_on_a_short_stream(enc4, weight_bits):
    rng = np.random.default_rng(0)
    a = rng.integers(-7, 8, size=(129, 2))
    w = np.repeat(rng.integers(-7, 8, size=(2, 2)), 65, axis=0)[:129]
    p = rng.integers(-300, 300, size=129)
    r = compare_columns(enc4, a, w, p, psum_bits=12, weight_bits=weight_bits, delay_model="unit")
    assert r["area_encoded"] > 0 and r["area_multiplier"] > 0
    assert r["energy_encoded_pj"] > 0 and r["energy_multiplier_pj"] > 0
    if weight_bits == 10:  # no rounding of the position weights
        assert r["hardware_max_re"] == pytest.approx(enc4.max_re)
    else:  # rounded to 5 bits: the decoder shifts, and the checks inside compared it to its own table
        assert enc4.hardware_weights(5)[1] > 0
