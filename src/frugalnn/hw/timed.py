"""Electrical view of a mapped netlist (loads, slews, arc delays, energy per toggle) and timed simulation.

Energy model (per net, per toggle; a toggle is one rising or falling transition):
    E_toggle = ½·C_load·V²                       switching energy (CMOS: C·V² drawn per rise/fall pair)
             + mean(rise_power, fall_power)       the driving cell's internal energy (Liberty NLDM table
                                                  at this net's load and the driver's input slew)
             + Σ passive input-pin energies       fan-out pins with their own internal_power (flip-flops)
Rise and fall energies are averaged: over a stream every net alternates rise/fall, so the total is exact
to one transition per net. Leakage adds P_leak·t_clock per cycle; the clock net adds 2 toggles per cycle.

Timed simulation samples every net's waveform on a time grid: unit delay (1 step per gate) or Liberty
delays (each arc's NLDM delay, max of rise and fall, at the net's load and propagated slew, rounded to
``time_step_ns``). With transport delays a gate output is its function of the inputs shifted by the arc
delays, so hazards propagate and every glitch is a counted toggle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frugalnn.errors import ConfigError
from frugalnn.hw.netlist import CONST1, Netlist


@dataclass
class ElectricalConfig:
    """Boundary conditions that the netlist itself does not fix."""

    input_slew_ns: float = 0.06  # transition time of primary inputs and the clock
    output_load_pf: float = 0.0  # extra load on every output-port net (OpenSTA default: 0)
    wire_cap_pf_per_fanout: float = 0.0  # OSU018 ships no wire-load model; 0 = pin capacitance only
    voltage_v: float | None = None  # None: the library's nominal voltage (1.8 V for OSU018)


@dataclass
class Electrical:
    voltage_v: float
    load_pf: np.ndarray  # per net
    slew_ns: np.ndarray
    switching_energy_pj: np.ndarray  # ½ C V² per toggle
    internal_energy_pj: np.ndarray  # driver internal + passive fan-out-pin energy per toggle
    arc_delay_ns: list[np.ndarray]  # per comb gate: (n_outs, n_ins)
    arrival_ns: np.ndarray  # static longest-path arrival per net (our own STA, max of rise/fall)
    leakage_nw: float
    clock_energy_pj: float  # per clock cycle (clock nets rise and fall once)

    @property
    def toggle_energy_pj(self) -> np.ndarray:
        return self.switching_energy_pj + self.internal_energy_pj

    def critical_path_ns(self, nets: list[int] | None = None) -> float:
        return float(self.arrival_ns[nets].max() if nets else self.arrival_ns.max())


def _arcs(cell, out_pin: str) -> dict[str, list]:
    arcs: dict[str, list] = {}
    for arc in cell.pins[out_pin].timing:
        if arc.timing_type in ("combinational", "rising_edge", "falling_edge", ""):
            for rp in arc.related_pin.split():
                arcs.setdefault(rp, []).append(arc)
    return arcs


def electrical(net: Netlist, config: ElectricalConfig | None = None) -> Electrical:
    """Loads, slews, delays and energies for every net (Liberty NLDM tables)."""
    cfg = config or ElectricalConfig()
    lib = net.library
    volt = cfg.voltage_v or lib.nom_voltage_v
    n = net.n_nets
    load = np.zeros(n)
    clock_nets: set[int] = set()
    for g in net.comb + net.seq:
        cell = lib.cells[g.cell]
        for pin, i in zip(cell.inputs, g.ins):
            load[i] += cell.pins[pin].capacitance_pf + cfg.wire_cap_pf_per_fanout
            if cell.pins[pin].is_clock:
                clock_nets.add(i)
    for nets in net.outputs.values():
        for i in nets:
            load[i] += cfg.output_load_pf
    load[: CONST1 + 1] = 0.0
    slew = np.full(n, cfg.input_slew_ns)
    arrival = np.zeros(n)
    internal = np.zeros(n)
    delays: list[np.ndarray] = []
    for g in net.seq:  # flip-flop outputs: clock-to-Q arcs from the clock pin
        cell = lib.cells[g.cell]
        for pin, o in zip(cell.outputs, g.outs):
            if o < 0:
                continue
            arcs = [a for lst in _arcs(cell, pin).values() for a in lst]
            arrival[o] = max((a.delay_ns(cfg.input_slew_ns, load[o]) for a in arcs), default=0.0)
            slew[o] = max(
                (a.transition_ns(cfg.input_slew_ns, load[o]) for a in arcs), default=cfg.input_slew_ns
            )
            pw = cell.pins[pin].internal_power
            internal[o] += np.mean([p.energy_pj(cfg.input_slew_ns, load[o]) for p in pw]) if pw else 0.0
    for g in net.comb:
        cell = lib.cells[g.cell]
        pin_slew = {p: slew[i] for p, i in zip(cell.inputs, g.ins)}
        d = np.zeros((len(g.outs), len(g.ins)))
        for k, (pin, o) in enumerate(zip(cell.outputs, g.outs)):
            if o < 0:
                continue
            arcs = _arcs(cell, pin)
            out_slew = 0.0
            for j, ip in enumerate(cell.inputs):
                for a in arcs.get(ip, []):
                    d[k, j] = max(d[k, j], a.delay_ns(pin_slew[ip], load[o]))
                    out_slew = max(out_slew, a.transition_ns(pin_slew[ip], load[o]))
            slew[o] = out_slew or cfg.input_slew_ns
            arrival[o] = max(arrival[i] + d[k, j] for j, i in enumerate(g.ins)) if g.ins else 0.0
            # internal energy per output toggle: averaged over the related input pins (which one
            # switched is not tracked), each at that pin's slew and this net's load
            pw = cell.pins[pin].internal_power
            if pw:
                internal[o] += np.mean(
                    [p.energy_pj(pin_slew.get(p.related_pin, cfg.input_slew_ns), load[o]) for p in pw]
                )
        delays.append(d)
    for g in net.comb + net.seq:  # passive input-pin tables (e.g. flip-flop D and CLK pins)
        cell = lib.cells[g.cell]
        for pin, i in zip(cell.inputs, g.ins):
            for p in cell.pins[pin].internal_power:
                internal[i] += p.energy_pj(slew[i], 0.0)
    internal[: CONST1 + 1] = 0.0
    switching = 0.5 * load * volt**2
    clock_energy = sum(2.0 * (switching[i] + internal[i]) for i in clock_nets)
    leakage = sum(lib.cells[g.cell].leakage_nw for g in net.comb + net.seq)
    return Electrical(volt, load, slew, switching, internal, delays, arrival, leakage, clock_energy)


@dataclass
class TimedResult:
    toggles: np.ndarray  # (n_nets, words) toggles per net per 64-vector word, glitches included
    settle_step: np.ndarray | None  # per vector: last step at which a watched net changed (-1: none)
    steps: int  # time steps simulated after the input change
    time_step_ns: float  # 1.0 with unit delay (then steps are gate levels)
    settled: bool  # every watched net ends on its zero-delay value (a self-check of the simulation)


def delay_steps(
    net: Netlist, el: Electrical | None, delay_model: str, time_step_ns: float
) -> list[np.ndarray]:
    if delay_model == "unit":
        return [np.ones((len(g.outs), len(g.ins)), dtype=np.int64) for g in net.comb]
    if delay_model != "liberty":
        raise ConfigError(f"delay model {delay_model!r} unknown; use 'unit' or 'liberty'")
    if el is None or time_step_ns <= 0:
        raise ConfigError("Liberty-delay simulation needs the electrical view and a positive time_step_ns")
    return [np.maximum(1, np.rint(d / time_step_ns)).astype(np.int64) for d in el.arc_delay_ns]


def simulate_timed(
    net: Netlist,
    before: np.ndarray,
    after: np.ndarray,
    steps_per_gate: list[np.ndarray],
    watch: list[int] | None = None,
    time_step_ns: float = 1.0,
    inertial: bool = True,
) -> TimedResult:
    """Glitch-aware simulation of the transition ``before`` -> ``after`` for every packed vector.

    ``before``/``after``: settled zero-delay values (n_nets, words); sources switch at t = 0.
    ``inertial``: a gate swallows output pulses narrower than its own (smallest) arc delay, as real
    gates and Verilog's inertial delays do; without it (pure transport delay) every hazard survives.
    """
    words = before.shape[1]
    pad = int(max((int(s.max()) for s in steps_per_gate if s.size), default=1))
    level = np.zeros(net.n_nets, dtype=np.int64)  # arrival in steps (longest path)
    for g, s in zip(net.comb, steps_per_gate):
        for k, o in enumerate(g.outs):
            if o >= 0:
                level[o] = max((level[i] + s[k, j] for j, i in enumerate(g.ins)), default=0)
    horizon = int(level.max()) if net.comb else 0
    rows = pad + horizon + 1
    watch_set = set(watch or [])
    last_use = {}
    for gi, g in enumerate(net.comb):
        for i in g.ins:
            last_use[i] = gi
    toggles = np.zeros((net.n_nets, words), dtype=np.int64)
    bufs: dict[int, np.ndarray] = {}
    static = np.all(before == after, axis=1)
    changed_any = np.zeros((horizon + 1, words), dtype=np.uint64) if watch else None

    def source(i: int) -> np.ndarray:
        if static[i]:
            return np.broadcast_to(before[i], (rows, words))
        buf = np.empty((rows, words), dtype=np.uint64)
        buf[:pad] = before[i]
        buf[pad:] = after[i]
        return buf

    def record(i: int, buf: np.ndarray) -> None:
        diff = buf[pad:] ^ buf[pad - 1 : -1]
        toggles[i] = np.bitwise_count(diff).sum(axis=0, dtype=np.int64)
        if i in watch_set:
            changed_any[...] |= diff

    comb_outs = {o for g in net.comb for o in g.outs}
    sources = set(last_use) | watch_set | {i for nets in net.inputs.values() for i in nets}
    sources |= {o for g in net.seq for o in g.outs if o >= 0}
    for i in sorted(sources - comb_outs):
        buf = source(i)
        if not static[i]:
            record(i, buf)
        if i in last_use or i in watch_set:
            bufs[i] = buf
    for gi, (g, s) in enumerate(zip(net.comb, steps_per_gate)):
        fns = net.functions(g.cell)
        for k, (o, fn) in enumerate(zip(g.outs, fns)):
            if o < 0:
                continue
            if all(static[i] for i in g.ins):
                static[o] = True
                buf = np.broadcast_to(before[o], (rows, words))
            else:
                args = [bufs[i][pad - s[k, j] : rows - s[k, j]] for j, i in enumerate(g.ins)]
                buf = np.empty((rows, words), dtype=np.uint64)
                buf[:pad] = before[o]
                buf[pad:] = fn(*args)
                width = int(s[k].min()) if inertial and s.size else 1
                if width > 1:
                    buf[pad:] = min_pulse_filter(buf[pad:], before[o], width)
                static[o] = False
                record(o, buf)
            if o in last_use or o in watch_set:
                bufs[o] = buf
        for i in set(g.ins):
            if last_use.get(i) == gi and i not in watch_set:
                bufs.pop(i, None)
    settled = all(np.array_equal(bufs[i][-1], after[i]) for i in watch_set)
    settle = None
    if changed_any is not None:
        bits = np.unpackbits(changed_any.view(np.uint8), axis=1, bitorder="little").reshape(horizon + 1, -1)
        rev = bits[::-1].argmax(axis=0)
        settle = np.where(bits.any(axis=0), horizon - rev, -1).astype(np.int64)
    return TimedResult(toggles, settle, horizon, time_step_ns, settled)


def _window(x: np.ndarray, k: int, op) -> np.ndarray:
    """y[t] = op-reduction of x[t .. t+k-1] along axis 0 (sparse-table doubling: log2(k)+1 ops)."""
    span = 1
    while 2 * span <= k:
        x = op(x[:-span], x[span:])
        span *= 2
    n = x.shape[0] - (k - span)
    return op(x[:n], x[k - span : k - span + n]) if span < k else x


def min_pulse_filter(raw: np.ndarray, before: np.ndarray, k: int) -> np.ndarray:
    """Remove pulses (of 1s, then of 0s) shorter than ``k`` steps from waveforms ``raw`` (rows = time).

    A morphological opening then closing with a k-step window: edges of runs at least k long keep
    their exact time; shorter runs vanish. Before t = 0 the net holds ``before``, after the end its
    last (settled) value.
    """
    rows = raw.shape[0]
    pad = 2 * k
    ext = np.empty((rows + 2 * pad,) + raw.shape[1:], dtype=raw.dtype)
    ext[:pad] = before
    ext[pad : pad + rows] = raw
    ext[pad + rows :] = raw[-1]
    opened = _window(_window(ext, k, np.bitwise_and), k, np.bitwise_or)  # index u <-> ext u + k - 1
    closed = _window(_window(opened, k, np.bitwise_or), k, np.bitwise_and)  # index v <-> ext v + 2k - 2
    return closed[2 : 2 + rows]


@dataclass
class StreamEnergy:
    """Energy of a vector stream applied one vector per clock cycle (N+1 vectors = N operations)."""

    operations: int
    energy_pj_per_op: float  # dynamic (zero delay) + clock + leakage
    dynamic_pj_per_op: float
    toggles_per_op: float
    net_toggles: np.ndarray  # per net, over the whole stream (zero delay)
    timed_energy_pj_per_op: float | None = None  # glitch-aware, if a delay model was given
    timed_toggles_per_op: float | None = None


def _packed_stream(net: Netlist, stream: dict[str, np.ndarray], state: dict[str, int] | None) -> np.ndarray:
    count = len(next(iter(stream.values())))
    values = net.new_values(-(-count // 64))
    for port, ints in stream.items():
        net.set_port(values, port, ints)
    net.load_state(values, {k: np.full(count, int(v) & 1) for k, v in (state or {}).items()}, count)
    return net.evaluate(values)


def stream_energy(
    net: Netlist,
    stream: dict[str, np.ndarray],
    *,
    state: dict[str, int] | None = None,
    config: ElectricalConfig | None = None,
    clock_ns: float = 10.0,
    delay_model: str | None = None,
    time_step_ns: float = 0.05,
) -> StreamEnergy:
    """Average energy per operation of any mapped netlist for a stream of input vectors.

    ``stream``: integer values per input port (all of length N+1); ``state``: flip-flop contents
    (instance name -> 0/1), held fixed (e.g. stationary weights). ``delay_model`` 'unit' or 'liberty' adds the glitch-aware figure.
    """
    missing = set(net.inputs) - set(stream)
    if missing:
        raise ConfigError(f"stream_energy: no values for input ports {sorted(missing)}")
    count = len(next(iter(stream.values())))
    if count < 2:
        raise ConfigError("stream_energy needs at least two vectors (one transition)")
    el = electrical(net, config)
    values = _packed_stream(net, stream, state)
    # vector i sits at bit i % 64 of word i // 64; its successor is one bit position later
    nxt = (values >> np.uint64(1)) | (np.roll(values, -1, axis=1) << np.uint64(63))
    diff = values ^ nxt
    last = count - 1  # the pair (count-1, count) does not exist: clear that bit and the padding
    mask = np.zeros(values.shape[1], dtype=np.uint64)
    full, rem = divmod(last, 64)
    mask[:full] = np.uint64(0xFFFFFFFFFFFFFFFF)
    if rem:
        mask[full] = np.uint64((1 << rem) - 1)
    toggles = np.bitwise_count(diff & mask).sum(axis=1, dtype=np.int64)
    ops = count - 1
    fixed = el.clock_energy_pj * (1 if net.seq else 0) + el.leakage_nw * clock_ns * 1e-6
    dynamic = float(toggles @ el.toggle_energy_pj) / ops
    out = StreamEnergy(ops, dynamic + fixed, dynamic, float(toggles.sum()) / ops, toggles)
    if delay_model is not None:
        before = _packed_stream(net, {p: np.asarray(v)[:-1] for p, v in stream.items()}, state)
        after = _packed_stream(net, {p: np.asarray(v)[1:] for p, v in stream.items()}, state)
        res = simulate_timed(net, before, after, delay_steps(net, el, delay_model, time_step_ns))
        timed = res.toggles.sum(axis=1)  # padding vectors (all-zero inputs before and after) never toggle
        out.timed_toggles_per_op = float(timed.sum()) / ops
        out.timed_energy_pj_per_op = float(timed @ el.toggle_energy_pj) / ops + fixed
    return out
