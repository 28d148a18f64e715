"""Cross-checks against second tools: Icarus Verilog (bit-exact outputs) and OpenSTA ``report_power``.

Both take a :class:`~frugalnn.hw.synth.MappedNetlist`; neither is needed by the simulator itself.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frugalnn.errors import ConfigError, ToolError
from frugalnn.hw.synth import MappedNetlist, PowerReport, run_tool, sta_power

# ---------------------------------------------------------------- power cross-check against OpenSTA


@dataclass
class PowerBreakdown:
    internal_w: float
    switching_w: float
    leakage_w: float

    @property
    def total_w(self) -> float:
        return self.internal_w + self.switching_w + self.leakage_w


@dataclass
class PowerCrossCheck:
    sta: PowerReport  # OpenSTA report_power, input-port activities from the stream, its own propagation
    ours: PowerBreakdown  # our model, activities from simulating the stream (the figure we use)
    ours_sta_convention: PowerBreakdown  # our tables with OpenSTA 2019's activities and conventions
    vectors: int

    @property
    def rel_diff_same_convention(self) -> float:
        return self.ours_sta_convention.total_w / self.sta.total_w - 1.0

    @property
    def rel_diff_ours(self) -> float:
        return self.ours.total_w / self.sta.total_w - 1.0


class _Act:
    """(activity, duty) with OpenSTA 2019's propagation rules (Power::evalActivity), via operators."""

    def __init__(self, act: float, duty: float) -> None:
        self.act, self.duty = act, duty

    def __invert__(self) -> _Act:
        return _Act(self.act, 1.0 - self.duty)

    def __or__(self, o: _Act) -> _Act:
        p1, p2 = 1.0 - self.duty, 1.0 - o.duty
        return _Act(self.act * p2 + o.act * p1, 1.0 - p1 * p2)

    def __and__(self, o: _Act) -> _Act:
        return _Act(self.act * o.duty + o.act * self.duty, self.duty * o.duty)

    def __xor__(self, o: _Act) -> _Act:
        p1, p2 = self.duty * (1.0 - o.duty), o.duty * (1.0 - self.duty)
        return _Act(self.act * p1 + o.act * p2, p1 + p2)


def power_crosscheck(
    mapped: MappedNetlist,
    stream: dict[str, np.ndarray],
    clock_ns: float = 10.0,
    output_load_pf: float = 0.0,
    input_slew_ns: float = 0.06,
) -> PowerCrossCheck:
    """Our power for a vector stream (one vector per clock cycle) next to OpenSTA's ``report_power``.

    The 2019 OpenSTA overwrites activities on internal pins with its own probabilistic propagation
    from the input ports, and charges rise + fall internal energy per output toggle (newer versions
    average them), split over the related pins by their activity. ``ours_sta_convention`` applies those
    rules to our Liberty tables and loads; it isolates the energy model from the activity estimate.
    """
    from frugalnn.hw.netlist import unpack_bits
    from frugalnn.hw.timed import ElectricalConfig, electrical

    net = mapped.netlist
    if net.seq:
        raise ConfigError(
            "power_crosscheck handles combinational netlists; pass the datapath without registers"
        )
    count = len(next(iter(stream.values())))
    values = net.new_values(-(-count // 64))
    for port, ints in stream.items():
        net.set_port(values, port, ints)
    net.evaluate(values)
    bits = np.stack([unpack_bits(values[i], count) for i in range(net.n_nets)]).astype(np.int8)
    act = np.abs(np.diff(bits, axis=1)).sum(axis=1) / (count - 1)  # toggles per clock cycle
    duty = bits.mean(axis=1)
    el = electrical(net, ElectricalConfig(input_slew_ns, output_load_pf))
    to_w = 1e-3 / clock_ns  # pJ per cycle -> W
    ours = PowerBreakdown(
        float(act @ el.internal_energy_pj) * to_w,
        float(act @ el.switching_energy_pj) * to_w,
        el.leakage_nw * 1e-9,
    )
    port_act = {}
    for port, nets in net.inputs.items():
        for k, n in enumerate(nets):
            port_act[f"{port}[{k}]" if len(nets) > 1 else port] = (float(act[n]), float(duty[n]))
    sta = sta_power(mapped, port_act, clock_ns, output_load_pf, input_slew_ns)
    # OpenSTA-convention model: propagate (activity, duty) through the cell functions
    prop: dict[int, _Act] = {0: _Act(0.0, 0.0), 1: _Act(0.0, 1.0)}
    for nets in net.inputs.values():
        for n in nets:
            prop[n] = _Act(float(act[n]), float(duty[n]))
    internal = switching = 0.0
    lib = net.library
    for g in net.comb:
        cell = lib.cells[g.cell]
        ins = [prop.get(i, _Act(0.0, 0.0)) for i in g.ins]
        pin_act = dict(zip(cell.inputs, ins))
        pin_net = dict(zip(cell.inputs, g.ins))
        for pin, o, fn in zip(cell.outputs, g.outs, net.functions(g.cell)):
            out = fn(*ins)
            if o < 0:
                continue
            prop[o] = out
            switching += 0.5 * el.load_pf[o] * el.voltage_v**2 * out.act
            # rise + fall energy per output toggle, averaged over the related pins (OpenSTA 2019;
            # newer OpenSTA halves it, which is our convention: one toggle is a rise OR a fall)
            arcs = [p for p in cell.pins[pin].internal_power if p.related_pin in pin_act]
            for p in arcs:
                slew = el.slew_ns[pin_net[p.related_pin]]
                e_sum = sum(
                    t.lookup(slew, el.load_pf[o]) for t in (p.rise_power, p.fall_power) if t is not None
                )
                internal += out.act * e_sum / len(arcs)
    conv = PowerBreakdown(internal * to_w, switching * to_w, el.leakage_nw * 1e-9)
    return PowerCrossCheck(sta=sta, ours=ours, ours_sta_convention=conv, vectors=count)


# ---------------------------------------------------------------- second simulator: Icarus Verilog


def cell_models_path(mapped: MappedNetlist) -> Path | None:
    """The vendor's Verilog cell models shipped beside the Liberty file (``<name>.v``), if any."""
    lib = Path(mapped.liberty_path)
    candidate = lib.with_suffix(".v")
    return candidate if candidate.is_file() else None


def _generated_cell_models(mapped: MappedNetlist) -> str:
    """Behavioural models from the Liberty functions (only when no vendor models exist)."""
    from frugalnn.hw.boolean import check_pins, function_to_verilog

    out = []
    for name in sorted(mapped.cell_counts):
        cell = mapped.library.cells[name]
        if cell.is_sequential:
            raise ToolError(
                f"no Verilog model for sequential cell {name}; put the vendor's cell .v beside the .lib"
            )
        ports = cell.inputs + cell.outputs
        check_pins(ports, f"cell {name}")
        body = [f"  input {p};" for p in cell.inputs] + [f"  output {p};" for p in cell.outputs]
        for pin in cell.outputs:
            expr = function_to_verilog(cell.pins[pin].function or "0", cell.inputs)
            body.append(f"  assign {pin} = {expr};")
        out.append(f"module {name} ({', '.join(ports)});\n" + "\n".join(body) + "\nendmodule\n")
    return "\n".join(out)


def iverilog_simulate(mapped: MappedNetlist, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Simulate the mapped Verilog with Icarus Verilog (vendor cell models): an independent reference.

    Combinational designs: each vector is applied, settled, and the outputs read back as integers.
    """
    net = mapped.netlist
    missing = set(net.inputs) - set(inputs)
    if missing:
        raise ConfigError(f"iverilog_simulate: no values for input ports {sorted(missing)}")
    count = len(next(iter(inputs.values())))
    in_ports = list(net.inputs)
    out_ports = list(net.outputs)
    widths = {p: len(n) for p, n in {**net.inputs, **net.outputs}.items()}
    total_in = sum(widths[p] for p in in_ports)
    decl = [f"  reg [{widths[p] - 1}:0] {p};" for p in in_ports] + [
        f"  wire [{widths[p] - 1}:0] {p};" for p in out_ports
    ]
    conns = ", ".join(f".{p}({p})" for p in in_ports + out_ports)
    tb = f"""`timescale 1ns/10ps
module frugalnn_tb;
{chr(10).join(decl)}
  reg [{total_in - 1}:0] mem [0:{count - 1}];
  integer i, f;
  {mapped.top} dut ({conns});
  initial begin
    $readmemh("in.hex", mem);
    f = $fopen("out.txt", "w");
    for (i = 0; i < {count}; i = i + 1) begin
      {{{", ".join(in_ports)}}} = mem[i];
      #10;
      $fdisplay(f, "%h", {{{", ".join(out_ports)}}});
    end
    $fclose(f);
    $finish;
  end
endmodule
"""
    packed = np.zeros(count, dtype=object)
    for p in in_ports:
        packed = packed * (1 << widths[p]) + (
            np.asarray(inputs[p], dtype=np.int64) & ((1 << widths[p]) - 1)
        ).astype(object)
    digits = -(-total_in // 4)
    with tempfile.TemporaryDirectory(prefix="frugalnn-iverilog-") as tmp:
        work = Path(tmp)
        (work / "in.hex").write_text("\n".join(f"{int(v):0{digits}x}" for v in packed) + "\n")
        (work / "tb.v").write_text(tb)
        (work / "mapped.v").write_text(mapped.verilog)
        models = cell_models_path(mapped)
        if models is None:
            (work / "cells.v").write_text(_generated_cell_models(mapped))
            models = work / "cells.v"
        run_tool(["iverilog", "-o", "sim.vvp", "tb.v", "mapped.v", str(models)], work, "the mapped netlist")
        run_tool(["vvp", "-n", "sim.vvp"], work, "the testbench")
        rows = (work / "out.txt").read_text().split()
    if len(rows) != count:
        raise ToolError(f"iverilog wrote {len(rows)} output rows for {count} vectors")
    if any("x" in r.lower() or "z" in r.lower() for r in rows):
        raise ToolError("iverilog produced X/Z outputs; the netlist has undriven or conflicting nets")
    values = np.array([int(r, 16) for r in rows], dtype=object)
    out: dict[str, np.ndarray] = {}
    for p in reversed(out_ports):
        out[p] = (values % (1 << widths[p])).astype(np.int64)
        values = values // (1 << widths[p])
    return {p: out[p] for p in out_ports}
