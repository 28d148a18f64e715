"""A mapped gate-level netlist as topologically ordered arrays, and its bit-parallel simulation in numpy.

Values are packed 64 vectors per ``uint64`` word: a net's value over N vectors is an array of
ceil(N/64) words, and every cell is one numpy bitwise expression compiled from its Liberty ``function``.

* zero-delay simulation: ``evaluate(values)`` settles all nets for every packed vector at once;
* timed simulation (``timed.py`` logic below, :meth:`Netlist.simulate_timed`): each net's waveform is
  sampled on a time grid (unit delay, or Liberty NLDM delays rounded to ``time_step_ns``); a gate's
  output waveform is its function of the input waveforms shifted by the arc delays (transport delay),
  so glitches appear and are counted. The time axis and all vectors are numpy array axes: one numpy
  call per gate, none per event or vector.
* energy: ``EnergyModel`` gives each net an energy per toggle, ½·C·V² for its load (fan-out pin
  capacitance + wire + port load) plus the driving cell's internal energy from the Liberty tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from frugalnn.errors import ConfigError, DataError
from frugalnn.hw.boolean import compile_function
from frugalnn.hw.liberty import Cell, Library

CONST0, CONST1 = 0, 1
ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class Gate:
    name: str
    cell: str
    ins: tuple[int, ...]  # nets in the order of the Liberty cell's input pins
    outs: tuple[int, ...]  # nets in the order of the cell's output pins (-1: unconnected)


@dataclass
class Netlist:
    """Nets are integers (0 = constant 0, 1 = constant 1); ``comb`` is topologically ordered."""

    top: str
    library: Library
    net_names: list[str]
    inputs: dict[str, list[int]]  # port -> nets, LSB first
    outputs: dict[str, list[int]]
    comb: list[Gate]
    seq: list[Gate]
    undriven: list[str] = field(default_factory=list)
    _fns: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @property
    def n_nets(self) -> int:
        return len(self.net_names)

    @property
    def area(self) -> float:
        return sum(self.library.cells[g.cell].area for g in self.comb + self.seq)

    def cell_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for g in self.comb + self.seq:
            counts[g.cell] = counts.get(g.cell, 0) + 1
        return dict(sorted(counts.items()))

    # ------------------------------------------------------------ construction

    @classmethod
    def from_yosys_json(cls, data: dict, top: str, library: Library) -> Netlist:
        """Build from yosys ``write_json`` output of a flattened, Liberty-mapped module."""
        modules = data.get("modules", {})
        if top not in modules:
            raise DataError(
                f"module {top!r} not in the yosys netlist (has {sorted(modules)}); check the top module name"
            )
        mod = modules[top]
        ids: dict[Any, int] = {"0": CONST0, "1": CONST1, "x": CONST0, "z": CONST0}
        names = ["1'b0", "1'b1"]

        def net(bit: Any) -> int:
            if bit not in ids:
                ids[bit] = len(names)
                names.append(f"n{bit}")
            return ids[bit]

        for name, info in mod.get("netnames", {}).items():  # readable names first where yosys kept them
            bits = info["bits"]
            for k, bit in enumerate(bits):
                if not isinstance(bit, str) and bit not in ids:
                    net(bit)
                    names[ids[bit]] = name if len(bits) == 1 else f"{name}[{k}]"
        inputs, outputs = {}, {}
        for pname, port in mod.get("ports", {}).items():
            nets = [net(b) for b in port["bits"]]
            (inputs if port["direction"] == "input" else outputs)[pname] = nets
        gates: list[Gate] = []
        for gname, info in mod.get("cells", {}).items():
            ctype = info["type"]
            if ctype not in library.cells:
                raise DataError(
                    f"cell {gname} has type {ctype!r}, not in library {library.name}; map the design with it (abc -liberty)"
                )
            cell = library.cells[ctype]
            if cell.latch is not None:
                raise DataError(
                    f"cell {gname} is a latch ({ctype}); latches are not simulated, use flip-flops"
                )
            conns = info.get("connections", {})

            def pin_net(pin: str, gname: str = gname, conns: dict = conns) -> int:
                bits = conns.get(pin)
                if not bits:
                    return -1
                if len(bits) != 1:
                    raise DataError(f"cell {gname} pin {pin} has {len(bits)} bits; expected a mapped netlist")
                return net(bits[0])

            ins = tuple(max(pin_net(p), CONST0) for p in cell.inputs)
            outs = tuple(pin_net(p) for p in cell.outputs)
            gates.append(Gate(gname, ctype, ins, outs))
        return cls._assemble(top, library, names, inputs, outputs, gates)

    @classmethod
    def _assemble(cls, top, library, names, inputs, outputs, gates) -> Netlist:
        driver: dict[int, str] = {}
        for g in gates:
            for o in g.outs:
                if o < 0:
                    continue
                if o in driver or o <= CONST1:
                    raise DataError(
                        f"net {names[o]} has two drivers ({driver.get(o, 'a constant')}, {g.name})"
                    )
                driver[o] = g.name
        seq = [g for g in gates if library.cells[g.cell].is_sequential]
        comb = [g for g in gates if not library.cells[g.cell].is_sequential]
        ready = {CONST0, CONST1} | {n for nets in inputs.values() for n in nets}
        ready |= {o for g in seq for o in g.outs if o >= 0}
        comb_driven = {o for g in comb for o in g.outs if o >= 0}
        undriven = sorted({n for g in gates for n in g.ins} - ready - comb_driven)
        undriven += sorted(
            {n for nets in outputs.values() for n in nets} - ready - comb_driven - set(undriven)
        )
        ready |= set(undriven)
        # Kahn's algorithm over nets: a gate runs once all its input nets are known
        waiting = {id(g): sum(1 for n in set(g.ins) if n not in ready) for g in comb}
        users: dict[int, list[Gate]] = {}
        for g in comb:
            for n in set(g.ins):
                if n not in ready:
                    users.setdefault(n, []).append(g)
        order = [g for g in comb if waiting[id(g)] == 0]
        head = 0
        while head < len(order):
            g = order[head]
            head += 1
            for o in g.outs:
                for u in users.get(o, []):
                    waiting[id(u)] -= 1
                    if waiting[id(u)] == 0:
                        order.append(u)
        if len(order) != len(comb):
            stuck = [g for g in comb if waiting[id(g)] > 0]
            shown = ", ".join(f"{g.name} ({g.cell})" for g in stuck[:5])
            raise DataError(
                f"combinational loop: {len(stuck)} cells never settle, e.g. {shown}; break the loop with a register"
            )
        return cls(top, library, names, inputs, outputs, order, seq, [names[n] for n in undriven])

    # ------------------------------------------------------------ zero-delay simulation

    def functions(self, cell_name: str) -> list[Any]:
        """Compiled numpy functions of a cell's outputs (arguments: input pins, then the state var)."""
        if cell_name not in self._fns:
            cell = self.library.cells[cell_name]
            args = list(cell.inputs) + ([cell.ff["state"]] if cell.ff else [])
            fns = []
            for pin in cell.outputs:
                expr = cell.pins[pin].function
                if expr is None:
                    raise DataError(f"cell {cell_name} output {pin} has no function in the Liberty file")
                fns.append(compile_function(expr, args, np.uint64(0), ALL_ONES))
            self._fns[cell_name] = fns
        return self._fns[cell_name]

    def evaluate(self, values: np.ndarray) -> np.ndarray:
        """Settle every combinational net in ``values`` (shape (n_nets, ...) uint64) in place.

        Sources (constants, input ports, flip-flop outputs) must already be filled in.
        """
        values[CONST0] = 0
        values[CONST1] = ALL_ONES
        for g in self.comb:
            fns = self.functions(g.cell)
            args = [values[n] for n in g.ins]
            for o, fn in zip(g.outs, fns):
                if o >= 0:
                    values[o] = fn(*args)
        return values

    def new_values(self, words: int) -> np.ndarray:
        return np.zeros((self.n_nets, words), dtype=np.uint64)

    def set_port(self, values: np.ndarray, port: str, ints: np.ndarray) -> None:
        """Pack integer vectors (one per simulated vector) onto an input port's bits."""
        for k, n in enumerate(self.inputs[port]):
            if n > CONST1:
                values[n] = pack_bits((np.asarray(ints, dtype=np.int64) >> k) & 1)

    def read_port(self, values: np.ndarray, port: str, count: int, signed: bool = False) -> np.ndarray:
        nets = self.outputs.get(port, self.inputs.get(port))
        if nets is None:
            raise ConfigError(
                f"no port {port!r} on {self.top}; ports: {sorted(self.inputs) + sorted(self.outputs)}"
            )
        out = np.zeros(count, dtype=np.int64)
        for k, n in enumerate(nets):
            out |= unpack_bits(values[n], count).astype(np.int64) << k
        if signed and nets:
            out -= (out >> (len(nets) - 1) & 1) << len(nets)
        return out

    def simulate(self, inputs: dict[str, np.ndarray], state: dict[str, np.ndarray] | None = None) -> dict:
        """Zero-delay simulation of integer vectors per input port -> unsigned integers per output port.

        ``state`` gives flip-flop contents (instance name -> 0/1 per vector; default 0).
        """
        count = len(next(iter(inputs.values()))) if inputs else 1
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ConfigError(f"simulate: no values for input ports {sorted(missing)}")
        values = self.new_values(-(-count // 64))
        for port, ints in inputs.items():
            if port not in self.inputs:
                raise ConfigError(f"simulate: {self.top} has no input port {port!r}")
            self.set_port(values, port, ints)
        self.load_state(values, state or {}, count)
        self.evaluate(values)
        return {port: self.read_port(values, port, count) for port in self.outputs}

    def load_state(self, values: np.ndarray, state: dict[str, np.ndarray], count: int) -> None:
        for g in self.seq:
            bits = pack_bits(np.asarray(state.get(g.name, np.zeros(count)), dtype=np.int64) & 1)
            for o, fn in zip(g.outs, self.functions(g.cell)):
                if o >= 0:
                    values[o] = fn(*([np.uint64(0)] * len(g.ins)), bits)

    def run_cycles(self, cycles: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Cycle simulation: per cycle, settle with the current flip-flop state, read outputs, clock once.

        All flip-flops share one clock; asynchronous set/reset (DFFSR) are honoured at the edge.
        """
        count = len(next(iter(cycles[0].values())))
        words = -(-count // 64)
        state = {g.name: np.zeros(words, dtype=np.uint64) for g in self.seq}
        results = []
        for step in cycles:
            values = self.new_values(words)
            for port, ints in step.items():
                self.set_port(values, port, ints)
            for g in self.seq:
                for o, fn in zip(g.outs, self.functions(g.cell)):
                    if o >= 0:
                        values[o] = fn(*([np.uint64(0)] * len(g.ins)), state[g.name])
            self.evaluate(values)
            results.append({port: self.read_port(values, port, count) for port in self.outputs})
            for g in self.seq:
                cell = self.library.cells[g.cell]
                pin = dict(zip(cell.inputs, g.ins))
                nxt = values[pin[cell.ff["next_state"].strip("()")]].copy()
                if "clear" in cell.ff:
                    nxt &= ~_eval_pin_expr(cell, cell.ff["clear"], pin, values)
                if "preset" in cell.ff:
                    nxt |= _eval_pin_expr(cell, cell.ff["preset"], pin, values)
                state[g.name] = nxt
        return results


def _eval_pin_expr(cell: Cell, expr: str, pin: dict[str, int], values: np.ndarray) -> np.ndarray:
    fn = compile_function(expr, list(cell.inputs), np.uint64(0), ALL_ONES)
    return fn(*[values[pin[p]] for p in cell.inputs])


# ---------------------------------------------------------------- bit packing


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """0/1 per vector (length N) -> ceil(N/64) uint64 words; vector i is bit i%64 of word i//64."""
    bits = np.asarray(bits, dtype=np.uint8).ravel()
    pad = (-len(bits)) % 64
    if pad:
        bits = np.concatenate([bits, np.zeros(pad, dtype=np.uint8)])
    return np.packbits(bits, bitorder="little").view(np.uint64)


def unpack_bits(words: np.ndarray, count: int | None = None) -> np.ndarray:
    flat = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")
    return flat[:count] if count is not None else flat


def popcount(words: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.bitwise_count(words).sum(axis=axis, dtype=np.int64)
