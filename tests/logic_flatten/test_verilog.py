import numpy as np
import pytest

from frugalnn.methods.logic_flatten.flow import _split_concats, min_period_ns, run_gates, synthesize_design
from frugalnn.methods.logic_flatten.graph import build_graph
from frugalnn.methods.logic_flatten.model import IntegerMLP, IntLayer
from frugalnn.methods.logic_flatten.sim import simulate_design
from frugalnn.methods.logic_flatten.verilog import emit_verilog, levelise

# 2 inputs -> 2 hidden neurons -> 2 outputs, 4-bit codes
W1, B1, M1, K1 = [[3, -2], [1, 5]], [1, -4], [200, 150], [9, 9]
W2, B2 = [[2, -1], [-3, 4]], [0, 1]


def _net() -> IntegerMLP:
    hidden = IntLayer(np.array(W1), np.array(B1), np.array(M1), np.array(K1))
    return IntegerMLP([hidden, IntLayer(np.array(W2), np.array(B2))], 4, 4, 4)


def _by_hand(x0: int, x1: int) -> tuple[int, list[int]]:
    """The network written out in plain Python integers (independent of IntegerMLP.forward)."""
    h = []
    for j in range(2):
        acc = W1[j][0] * x0 + W1[j][1] * x1 + B1[j]
        h.append(min(max((acc * M1[j] + 2 ** (K1[j] - 1)) // 2 ** K1[j], 0), 15))
    logits = [W2[j][0] * h[0] + W2[j][1] * h[1] + B2[j] for j in range(2)]
    return (1 if logits[1] > logits[0] else 0), logits


def _io(g, latency):
    return {
        "input": {"bits_per_feature": 4, "features": 2},
        "logits": {"bits_per_class": g.logit_width, "classes": 2},
        "output": {"width": g.index_bits},
        "latency_cycles": latency,
    }


CODES = np.array([[a, b] for a in range(16) for b in range(16)])  # every input of the network


@pytest.mark.parametrize("multiplier", ["csd", "synth"])
def test_two_neuron_network_in_iverilog_equals_hand_computed(multiplier):
    g = build_graph(_net(), multiplier)
    sim = simulate_design(emit_verilog(g), CODES, _io(g, 0), "iverilog")
    hand = [_by_hand(a, b) for a, b in CODES]
    assert np.array_equal(sim.pred, [p for p, _ in hand])
    assert np.array_equal(sim.logits, [lg for _, lg in hand])


def test_pipelined_design_is_the_combinational_one_delayed_by_its_latency():
    g = build_graph(_net(), "csd")
    comb = simulate_design(emit_verilog(g), CODES, _io(g, 0), "iverilog")
    stages, n = levelise(g, budget=5.0)
    assert n >= 3
    # claim a latency of 1 to read the raw output after every clock edge
    raw = simulate_design(emit_verilog(g, stages, n), CODES, _io(g, 1), "iverilog", allow_x=True)
    assert np.array_equal(raw.logits[n - 1 :], comb.logits[: len(CODES) - n + 1])
    assert np.array_equal(raw.pred[n - 1 :], comb.pred[: len(CODES) - n + 1])
    assert (raw.pred[: n - 1] == -1).all()  # nothing valid before the latency has passed


def test_mapped_netlist_equals_integer_model_combinational_and_pipelined():
    net = _net()
    g = build_graph(net, "csd")
    ref = net.forward(CODES)
    periods = []
    for stages_budget in (None, 5.0):
        if stages_budget is None:
            verilog, latency = emit_verilog(g), 0
        else:
            stages, latency = levelise(g, stages_budget)
            verilog = emit_verilog(g, stages, latency)
        mapped, _ = synthesize_design(verilog)
        run = run_gates(mapped.netlist, CODES, 4, latency, 1, g.logit_width)
        assert np.array_equal(run.pred, ref["pred"]) and np.array_equal(run.logits, ref["logits"])
        assert bool(mapped.netlist.seq) == (latency > 0)
        periods.append(min_period_ns(mapped)[0])
    assert 0 < periods[1] < periods[0] / 2  # OpenSTA: registers cut the critical path


def test_abc_retimed_netlist_equals_integer_model_after_its_latency():
    """The `retime="abc"` path: registers placed after the logic, moved back by `abc -dff -D`; the mapped
    netlist, cycle-simulated, still gives every input's exact outputs ``latency`` cycles later."""
    net = _net()
    g = build_graph(net, "csd")
    ref = net.forward(CODES)
    latency = 3
    mapped, _ = synthesize_design(emit_verilog(g, output_registers=latency), pre_map="abc -dff -D 1000")
    assert mapped.netlist.seq
    run = run_gates(mapped.netlist, CODES, 4, latency, 1, g.logit_width)
    assert np.array_equal(run.pred, ref["pred"]) and np.array_equal(run.logits, ref["logits"])


def test_yosys_concatenation_assigns_are_split_bit_by_bit_for_opensta():
    text = "  wire [2:0] b;\n  assign { a[5], a[3:1] } = { 1'h0, b };\n  assign c = d;\n"
    out = _split_concats(text)
    assert "{" not in out and "assign c = d;" in out
    assert [ln.strip() for ln in out.splitlines() if "a[" in ln] == [
        "assign a[5] = 1'b0;",
        "assign a[3] = b[2];",
        "assign a[2] = b[1];",
        "assign a[1] = b[0];",
    ]
