"""Read a Liberty (.lib) cell library: cells, area, pin capacitances, leakage, NLDM delay and power tables.

The syntax tree comes from ``liberty_syntax`` (groups ``name (args) { ... }``, simple
attributes ``name : value ;`` and complex attributes ``name (v, v) ;``), then typed views of what the
gate-level models need. All quantities are converted on read to one unit system, carried in the names:
time in ns, capacitance in pF, leakage power in nW, internal energy in pJ (capacitance unit x voltage
unit squared), voltage in V.

NLDM tables are looked up by bilinear interpolation in (input slew, output load) and extrapolated
linearly beyond the table edges, as Liberty timing tools do (OpenSTA ``TableModel``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frugalnn.errors import DataError
from frugalnn.hw.liberty_syntax import Group, parse_liberty_text

# ---------------------------------------------------------------- units and tables

_SCALE = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3}


def _unit(text: str, base: str, source: str) -> float:
    """'1ns' -> 1e-9 (seconds per library unit); base is the SI symbol ('s', 'W', 'V', 'A', 'F')."""
    m = re.fullmatch(r"\s*([0-9.eE+-]*)\s*([fpnumk]?)" + base + r"\s*", text)
    if not m:
        raise DataError(f"{source}: cannot read unit {text!r}; expected e.g. '1n{base}'")
    return float(m.group(1) or 1.0) * _SCALE[m.group(2)]


def _floats(value: Any) -> np.ndarray:
    parts = value if isinstance(value, list) else [value]
    return np.array([float(x) for p in parts for x in str(p).replace(",", " ").split()], dtype=np.float64)


@dataclass
class Table:
    """One NLDM table in library-independent units; ``lookup(slew_ns, load_pf)`` interpolates."""

    slew_index: np.ndarray | None  # input transition axis (ns), None if the table does not depend on it
    load_index: np.ndarray | None  # output load axis (pF)
    values: np.ndarray  # shape (len(slew_index) or 1, len(load_index) or 1)

    def lookup(self, slew_ns: float, load_pf: float) -> float:
        row = _interp_weights(self.slew_index, slew_ns)
        col = _interp_weights(self.load_index, load_pf)
        return float(sum(wr * wc * self.values[i, j] for i, wr in row for j, wc in col))


def _interp_weights(axis: np.ndarray | None, x: float) -> list[tuple[int, float]]:
    """Linear interpolation weights on one axis; outside it, linear extrapolation from the edge pair."""
    if axis is None or len(axis) == 1:
        return [(0, 1.0)]
    k = int(np.clip(np.searchsorted(axis, x) - 1, 0, len(axis) - 2))
    x0, x1 = axis[k], axis[k + 1]
    t = (x - x0) / (x1 - x0)
    return [(k, 1.0 - t), (k + 1, t)]


_SLEW_VARS = {"input_net_transition", "input_transition_time", "related_pin_transition"}
_LOAD_VARS = {"total_output_net_capacitance"}


def _table(group: Group, templates: dict[str, Group], scale: float, time_ns: float, cap_pf: float) -> Table:
    tmpl = templates.get(group.args[0]) if group.args else None
    axes: list[np.ndarray | None] = []
    kinds: list[str] = []
    for k in (1, 2):
        var = tmpl.attrs.get(f"variable_{k}") if tmpl else None
        idx = group.attrs.get(f"index_{k}", tmpl.attrs.get(f"index_{k}") if tmpl else None)
        if var is None or idx is None:
            continue
        if var in _SLEW_VARS:
            kinds.append("slew")
            axes.append(_floats(idx) * time_ns)
        elif var in _LOAD_VARS:
            kinds.append("load")
            axes.append(_floats(idx) * cap_pf)
        else:
            raise DataError(f"table template {group.args[0]}: unsupported variable {var!r}")
    vals = _floats(group.attrs.get("values", "0")) * scale
    shape = [len(a) for a in axes] or [1]
    if vals.size != int(np.prod(shape)):
        raise DataError(
            f"table {group.kind}({group.args}): {vals.size} values for axes {shape}; fix the .lib"
        )
    vals = vals.reshape(shape)
    slew = axes[kinds.index("slew")] if "slew" in kinds else None
    load = axes[kinds.index("load")] if "load" in kinds else None
    # normalise to rows = slew, columns = load
    if kinds == ["load", "slew"]:
        vals = vals.T
    elif kinds == ["load"]:
        vals = vals.reshape(1, -1)
    elif kinds == ["slew"]:
        vals = vals.reshape(-1, 1)
    elif not kinds:
        vals = vals.reshape(1, 1)
    return Table(slew, load, vals)


# ---------------------------------------------------------------- typed cell view


@dataclass
class TimingArc:
    related_pin: str
    timing_type: str  # combinational, rising_edge, setup_rising, ...
    cell_rise: Table | None = None
    cell_fall: Table | None = None
    rise_transition: Table | None = None
    fall_transition: Table | None = None

    def delay_ns(self, slew_ns: float, load_pf: float) -> float:
        """Worst (max of rise and fall) propagation delay of this arc."""
        vals = [t.lookup(slew_ns, load_pf) for t in (self.cell_rise, self.cell_fall) if t is not None]
        return max(vals) if vals else 0.0

    def transition_ns(self, slew_ns: float, load_pf: float) -> float:
        vals = [
            t.lookup(slew_ns, load_pf) for t in (self.rise_transition, self.fall_transition) if t is not None
        ]
        return max(vals) if vals else 0.0


@dataclass
class InternalPower:
    related_pin: str | None
    rise_power: Table | None  # energy (pJ) per output (or input, for passive tables) rising edge
    fall_power: Table | None

    def energy_pj(self, slew_ns: float, load_pf: float) -> float:
        """Mean of the rise and fall energies: over a stream, rises and falls alternate on every net."""
        vals = [t.lookup(slew_ns, load_pf) for t in (self.rise_power, self.fall_power) if t is not None]
        return float(np.mean(vals)) if vals else 0.0


@dataclass
class Pin:
    name: str
    direction: str  # input / output / inout
    capacitance_pf: float = 0.0
    function: str | None = None
    three_state: str | None = None
    is_clock: bool = False
    timing: list[TimingArc] = field(default_factory=list)
    internal_power: list[InternalPower] = field(default_factory=list)


@dataclass
class Cell:
    name: str
    area: float
    leakage_nw: float
    pins: dict[str, Pin]
    ff: dict[str, str] | None = None  # next_state, clocked_on, clear, preset, state variable names
    latch: dict[str, str] | None = None

    @property
    def inputs(self) -> list[str]:
        return [p.name for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self) -> list[str]:
        return [p.name for p in self.pins.values() if p.direction in ("output", "inout")]

    @property
    def is_sequential(self) -> bool:
        return self.ff is not None or self.latch is not None


@dataclass
class Library:
    name: str
    path: str
    nom_voltage_v: float
    cells: dict[str, Cell]
    units: dict[str, str]

    def cell(self, name: str) -> Cell:
        if name not in self.cells:
            raise DataError(
                f"cell {name!r} is not in Liberty library {self.name}; synthesise with this library"
            )
        return self.cells[name]


def _cell(g: Group, templates: dict[str, Group], u: dict[str, float]) -> Cell:
    pins: dict[str, Pin] = {}
    for pg in g.find("pin"):
        for pname in pg.args:
            pin = Pin(
                name=pname,
                direction=str(pg.attrs.get("direction", "input")),
                capacitance_pf=float(pg.attrs.get("capacitance", 0.0)) * u["cap"],
                function=pg.attrs.get("function"),
                three_state=pg.attrs.get("three_state"),
                is_clock=str(pg.attrs.get("clock", "false")) == "true",
            )
            for tg in pg.find("timing"):
                arc = TimingArc(
                    str(tg.attrs.get("related_pin", "")), str(tg.attrs.get("timing_type", "combinational"))
                )
                for sub in tg.groups:
                    if sub.kind in ("cell_rise", "cell_fall", "rise_transition", "fall_transition"):
                        setattr(arc, sub.kind, _table(sub, templates, u["time"], u["time"], u["cap"]))
                pin.timing.append(arc)
            for ig in pg.find("internal_power"):
                tabs = {s.kind: _table(s, templates, u["energy"], u["time"], u["cap"]) for s in ig.groups}
                pin.internal_power.append(
                    InternalPower(ig.attrs.get("related_pin"), tabs.get("rise_power"), tabs.get("fall_power"))
                )
            pins[pname] = pin
    ff = g.find("ff")
    latch = g.find("latch")
    seq = None
    if ff:
        seq = {k: str(v) for k, v in ff[0].attrs.items()} | {"state": ff[0].args[0]}
    return Cell(
        name=g.args[0],
        area=float(g.attrs.get("area", 0.0)),
        leakage_nw=float(g.attrs.get("cell_leakage_power", 0.0)) * u["leak"],
        pins=pins,
        ff=seq,
        latch=({k: str(v) for k, v in latch[0].attrs.items()} | {"state": latch[0].args[0]})
        if latch
        else None,
    )


def parse_liberty(text: str, source: str = "<liberty>") -> Library:
    """Parse Liberty text into a :class:`Library` (units converted to ns / pF / nW / pJ / V)."""
    lib = parse_liberty_text(text, source)
    try:
        time_s = _unit(str(lib.attrs.get("time_unit", "1ns")), "s", source)
        volt_v = _unit(str(lib.attrs.get("voltage_unit", "1V")), "V", source)
        leak_w = _unit(str(lib.attrs.get("leakage_power_unit", "1nW")), "W", source)
        cap_attr = lib.attrs.get("capacitive_load_unit", ["1", "pf"])
        cap_name = str(cap_attr[1]).strip().lower()  # 'pf', 'ff', ...: SI prefix + farad
        if not cap_name.endswith("f") or cap_name[:-1] not in _SCALE:
            raise DataError(f"{source}: unknown capacitive_load_unit {cap_attr}; expected e.g. (1,pf)")
        cap_f = float(cap_attr[0]) * _SCALE[cap_name[:-1]]
        voltage = float(lib.attrs.get("nom_voltage", 0.0)) * volt_v
        for oc in lib.find("operating_conditions"):
            if oc.args and oc.args[0] == lib.attrs.get("default_operating_conditions"):
                voltage = float(oc.attrs.get("voltage", voltage)) * volt_v
        cells = {}
        templates = {t.args[0]: t for t in lib.groups if t.kind.endswith("template") and t.args}
        u = {
            "time": time_s / 1e-9,
            "cap": cap_f / 1e-12,
            "leak": leak_w / 1e-9,
            "energy": cap_f * volt_v**2 / 1e-12,
        }
        for cg in lib.find("cell"):
            cells[cg.args[0]] = _cell(cg, templates, u)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{source}: malformed Liberty content ({exc}); check the library file") from None
    if not cells:
        raise DataError(f"{source}: no cells found; is this a Liberty cell library?")
    if voltage <= 0:
        raise DataError(f"{source}: no nom_voltage or operating-condition voltage; add one to the library")
    units = {
        "time": str(lib.attrs.get("time_unit")),
        "capacitance": str(cap_attr),
        "leakage_power": str(lib.attrs.get("leakage_power_unit")),
    }
    return Library(
        name=lib.args[0] if lib.args else "?", path=source, nom_voltage_v=voltage, cells=cells, units=units
    )


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime: float) -> Library:
    return parse_liberty(Path(path).read_text(errors="replace"), source=path)


def read_liberty(path: str | Path | None = None) -> Library:
    """Read (and cache) a Liberty file; ``None`` means the bundled OSU018 library."""
    if path is None:
        from frugalnn.core.assets import asset_path

        path = asset_path("osu018")
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"Liberty file {path} not found; pass an existing .lib (or run 'frugalnn assets fetch osu018')"
        )
    return _read_cached(str(path.resolve()), path.stat().st_mtime)
