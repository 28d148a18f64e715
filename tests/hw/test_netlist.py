"""Bit-parallel and timed simulation: against Icarus Verilog, closed forms and hand-counted toggles."""

import numpy as np
import pytest

from frugalnn.errors import DataError
from frugalnn.hw.boolean import compile_function
from frugalnn.hw.crosscheck import iverilog_simulate
from frugalnn.hw.liberty import read_liberty
from frugalnn.hw.netlist import Netlist, pack_bits, unpack_bits
from frugalnn.hw.timed import (
    ElectricalConfig,
    delay_steps,
    electrical,
    min_pulse_filter,
    simulate_timed,
    stream_energy,
)


def test_pack_unpack_roundtrip():
    bits = np.random.default_rng(0).integers(0, 2, 200)
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.size == 4
    assert np.array_equal(unpack_bits(words, 200), bits)
    assert int(words[0]) & 1 == bits[0] and (int(words[1]) >> 3) & 1 == bits[67]


@pytest.mark.parametrize("design", ["adder", "mul4"])
def test_simulator_bit_exact_with_iverilog(design, request):
    mapped = request.getfixturevalue(design)
    rng = np.random.default_rng(1)
    n = 1500
    inputs = {p: rng.integers(0, 1 << len(nets), n) for p, nets in mapped.netlist.inputs.items()}
    ours = mapped.netlist.simulate(inputs)
    ref = iverilog_simulate(mapped, inputs)
    for port in ref:
        assert np.array_equal(ours[port], ref[port]), port
    if design == "adder":  # and both equal the arithmetic
        assert np.array_equal(ours["s"], inputs["a"] + inputs["b"] + inputs["ci"])
    else:
        assert np.array_equal(ours["y"], inputs["a"] * inputs["b"])


def _chain_json(length: int, with_and: bool) -> dict:
    """a -> INV -> INV -> ... (length inverters); optionally y = AND(a, last) (a static-hazard pulse)."""
    cells = {}
    for k in range(length):
        cells[f"inv{k}"] = {"type": "INVX1", "connections": {"A": [2 + k], "Y": [3 + k]}}
    ports = {"a": {"direction": "input", "bits": [2]}, "z": {"direction": "output", "bits": [2 + length]}}
    if with_and:
        cells["and"] = {"type": "AND2X1", "connections": {"A": [2], "B": [2 + length], "Y": [3 + length]}}
        ports["y"] = {"direction": "output", "bits": [3 + length]}
    return {"modules": {"chain": {"ports": ports, "cells": cells, "netnames": {}}}}


def _stream_values(net: Netlist, seq: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive vectors of a stream as (before, after) pairs, one pair per packed vector."""
    before, after = net.new_values(1), net.new_values(1)
    net.set_port(before, "a", np.array(seq[:-1]))
    net.set_port(after, "a", np.array(seq[1:]))
    net.evaluate(before)
    net.evaluate(after)
    return before, after


def test_inverter_chain_toggles_counted_exactly():
    lib = read_liberty()
    net = Netlist.from_yosys_json(_chain_json(5, with_and=False), "chain", lib)
    seq = [0, 1, 1, 0, 1, 0, 0, 0, 1, 1]  # 5 changes
    before, after = _stream_values(net, seq)
    zero = np.bitwise_count(before ^ after).sum(axis=1)
    chain = net.inputs["a"] + [g.outs[0] for g in net.comb]
    assert len(chain) == 6 and all(zero[n] == 5 for n in chain)  # the input and every inverter output
    res = simulate_timed(net, before, after, delay_steps(net, None, "unit", 1.0), watch=net.outputs["z"])
    assert res.settled and np.array_equal(res.toggles.sum(axis=1), zero)  # a chain has no glitches
    assert res.steps == 5
    # vector k is the transition seq[k] -> seq[k+1]; the output settles 5 unit delays after each change
    settle = res.settle_step[: len(seq) - 1]
    assert list(settle) == [5 if seq[k] != seq[k + 1] else -1 for k in range(len(seq) - 1)]


def test_static_hazard_glitch_counted_exactly():
    # y = a AND NOT^3(a) is constant 0, but with unit delays a rising edge of a makes a 3-step pulse
    lib = read_liberty()
    net = Netlist.from_yosys_json(_chain_json(3, with_and=True), "chain", lib)
    y = net.outputs["y"][0]
    seq = [0, 1, 0, 1, 1, 0, 1]  # rising edges: 3
    before, after = _stream_values(net, seq)
    assert np.bitwise_count(before[y] ^ after[y]).sum() == 0
    res = simulate_timed(net, before, after, delay_steps(net, None, "unit", 1.0), watch=[y])
    assert res.toggles[y].sum() == 2 * 3  # one up-and-down pulse per rising edge
    # inertial delay of 4 steps on the AND swallows the 3-step pulse
    steps = [np.full((1, 1), 1)] * 3 + [np.full((1, 2), 4)]
    res = simulate_timed(net, before, after, steps, watch=[y], inertial=True)
    assert res.toggles[y].sum() == 0
    res = simulate_timed(net, before, after, steps, watch=[y], inertial=False)
    assert res.toggles[y].sum() == 6


def _runs(wave: np.ndarray) -> list[int]:
    edges = np.flatnonzero(np.diff(wave)) + 1
    return list(np.diff(np.concatenate([[0], edges, [len(wave)]])))


def test_min_pulse_filter_removes_only_short_pulses():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(2, 6))
        wave = np.repeat(rng.integers(0, 2, 8), rng.integers(1, 9, 8)).astype(np.uint64)
        before = np.uint64(wave[0])
        out = min_pulse_filter(
            wave[:, None] * np.uint64(0xFFFFFFFFFFFFFFFF),
            np.array([before * np.uint64(0xFFFFFFFFFFFFFFFF)]),
            k,
        )
        got = (out[:, 0] & np.uint64(1)).astype(int)
        assert got[-1] == wave[-1]  # the settled value survives
        interior = _runs(got)[1:-1]
        assert all(r >= k for r in interior)  # no pulse shorter than k remains
        if all(r >= k for r in _runs(wave.astype(int))[1:-1]):
            assert np.array_equal(got, wave.astype(int))  # clean waveforms pass unchanged


@pytest.mark.parametrize("model", ["unit", "liberty"])
def test_zero_delay_toggles_never_exceed_timed(mul4, model):
    net = mul4.netlist
    rng = np.random.default_rng(2)
    n = 64 * 8 + 1
    values = net.new_values(-(-n // 64))
    stream = {p: rng.integers(0, 16, n) for p in net.inputs}
    before, after = net.new_values(8), net.new_values(8)
    for p, x in stream.items():
        net.set_port(before, p, x[:-1])
        net.set_port(after, p, x[1:])
    net.evaluate(before)
    net.evaluate(after)
    del values
    el = electrical(net)
    res = simulate_timed(net, before, after, delay_steps(net, el, model, 0.02), watch=net.outputs["y"])
    zero = np.bitwise_count(before ^ after)
    assert res.settled
    assert np.all(res.toggles >= zero)  # per net and per 64-vector word
    assert res.toggles.sum() > zero.sum()  # a multiplier does glitch
    # parity: a net that ends where it started toggled an even number of times (per word sum parity)
    assert np.all((res.toggles - zero) % 2 == 0)
    if model == "liberty":  # sensitised delays never exceed the static longest path
        assert res.settle_step.max() * 0.02 <= el.critical_path_ns(net.outputs["y"]) + 0.02 * 20


def test_energy_per_toggle_from_liberty_tables():
    lib = read_liberty()
    net = Netlist.from_yosys_json(_chain_json(2, with_and=False), "chain", lib)
    el = electrical(net, ElectricalConfig(input_slew_ns=0.06, output_load_pf=0.01))
    inv = lib.cells["INVX1"]
    mid = net.comb[0].outs[0]  # output of the first inverter drives the second one's A pin
    c = inv.pins["A"].capacitance_pf
    assert el.load_pf[mid] == pytest.approx(c)
    assert el.load_pf[net.outputs["z"][0]] == pytest.approx(0.01)  # the output port load
    assert el.switching_energy_pj[mid] == pytest.approx(0.5 * c * 1.8**2)
    pw = inv.pins["Y"].internal_power[0]
    expect = 0.5 * (pw.rise_power.lookup(0.06, c) + pw.fall_power.lookup(0.06, c))
    assert el.internal_energy_pj[mid] == pytest.approx(expect)
    assert el.leakage_nw == pytest.approx(2 * inv.leakage_nw)


def test_combinational_loop_is_rejected():
    lib = read_liberty()
    cells = {
        "n1": {"type": "NAND2X1", "connections": {"A": [2], "B": [5], "Y": [4]}},
        "n2": {"type": "NAND2X1", "connections": {"A": [3], "B": [4], "Y": [5]}},
    }
    ports = {
        "s": {"direction": "input", "bits": [2]},
        "r": {"direction": "input", "bits": [3]},
        "q": {"direction": "output", "bits": [4]},
    }
    data = {"modules": {"latch": {"ports": ports, "cells": cells, "netnames": {}}}}
    with pytest.raises(DataError, match="combinational loop"):
        Netlist.from_yosys_json(data, "latch", lib)


def test_unknown_cell_and_double_driver_are_rejected():
    lib = read_liberty()
    bad = {
        "modules": {"m": {"ports": {}, "cells": {"c": {"type": "NOPE", "connections": {}}}, "netnames": {}}}
    }
    with pytest.raises(DataError, match="NOPE"):
        Netlist.from_yosys_json(bad, "m", lib)
    two = {
        "modules": {
            "m": {
                "ports": {"a": {"direction": "input", "bits": [2]}},
                "netnames": {},
                "cells": {
                    "x": {"type": "INVX1", "connections": {"A": [2], "Y": [3]}},
                    "y": {"type": "INVX1", "connections": {"A": [2], "Y": [3]}},
                },
            }
        }
    }
    with pytest.raises(DataError, match="two drivers"):
        Netlist.from_yosys_json(two, "m", lib)


def _reference_transport(net, before, after, steps, vector):
    """Per-vector event reference: each net's waveform as {time: value}, pure Python integers."""
    word, bit = divmod(vector, 64)
    start = {n: (int(before[n][word]) >> bit) & 1 for n in range(net.n_nets)}
    end = {n: (int(after[n][word]) >> bit) & 1 for n in range(net.n_nets)}
    waves = {n: ({0: end[n]} if start[n] != end[n] else {}) for n in range(net.n_nets)}

    def value(n, t):
        changes = [tt for tt in waves[n] if tt <= t]
        return waves[n][max(changes)] if changes else start[n]

    lib = net.library
    for g, s in zip(net.comb, steps):
        cell = lib.cells[g.cell]
        for k, o in enumerate(g.outs):
            logic = compile_function(cell.pins[cell.outputs[k]].function, list(cell.inputs), 0, 1)
            fn = lambda *v, logic=logic: logic(*v) & 1  # noqa: E731
            times = sorted({t + int(s[k, j]) for j, i in enumerate(g.ins) for t in waves[i]})
            wave, last = {}, start[o]
            for t in times:
                v = fn(*[value(i, t - int(s[k, j])) for j, i in enumerate(g.ins)])
                if v != last:
                    wave[t], last = v, v
            waves[o] = wave
    return {n: len(w) for n, w in waves.items()}


def test_timed_transport_matches_a_per_vector_event_reference(mul4):
    net = mul4.netlist
    rng = np.random.default_rng(5)
    before, after = net.new_values(1), net.new_values(1)
    for p in net.inputs:
        net.set_port(before, p, rng.integers(0, 16, 64))
        net.set_port(after, p, rng.integers(0, 16, 64))
    net.evaluate(before)
    net.evaluate(after)
    steps = delay_steps(net, electrical(net), "liberty", 0.03)
    res = simulate_timed(net, before, after, steps, watch=net.outputs["y"], inertial=False)
    expect = np.zeros(net.n_nets, dtype=np.int64)
    for v in range(0, 64, 4):  # 16 of the 64 vectors (pure Python is slow)
        for n, count in _reference_transport(net, before, after, steps, v).items():
            expect[n] += count
    # toggles are returned per 64-vector word: re-run each chosen vector copied into all 64 lanes
    ours = np.zeros(net.n_nets, dtype=np.int64)
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    for v in range(0, 64, 4):
        b1, a1 = (
            np.where((x[:, :1] >> np.uint64(v)) & np.uint64(1), ones, np.uint64(0)) for x in (before, after)
        )
        one = simulate_timed(net, b1, a1, steps, inertial=False)
        ours += one.toggles[:, 0] // 64
    assert res.settled
    assert np.array_equal(ours, expect)
    assert expect.sum() > np.bitwise_count(before ^ after)[:, 0].sum() / 4  # glitches were exercised


def test_stream_energy_counts_consecutive_vectors(mul4):
    net = mul4.netlist
    rng = np.random.default_rng(7)
    n = 64 * 3 + 17  # not a multiple of 64: the last pair and the padding must not count
    stream = {p: rng.integers(0, 16, n) for p in net.inputs}
    res = stream_energy(net, stream, delay_model="unit")
    # brute force: settle every vector on its own and count changes of every net between neighbours
    bits = []
    for i in range(n):
        v = net.new_values(1)
        for p, x in stream.items():
            net.set_port(v, p, x[i : i + 1])
        net.evaluate(v)
        bits.append(v[:, 0] & np.uint64(1))
    bits = np.array(bits, dtype=np.int64)
    expect = np.abs(np.diff(bits, axis=0)).sum(axis=0)
    assert np.array_equal(res.net_toggles, expect)
    el = electrical(net)
    assert res.dynamic_pj_per_op == pytest.approx(expect @ el.toggle_energy_pj / (n - 1))
    assert res.energy_pj_per_op == pytest.approx(res.dynamic_pj_per_op + el.leakage_nw * 10.0 * 1e-6)
    assert res.timed_toggles_per_op >= res.toggles_per_op
