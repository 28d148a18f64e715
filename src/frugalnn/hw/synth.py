"""Verilog -> yosys (synth + dfflibmap + abc on a Liberty library) -> mapped netlist; OpenSTA timing and power.

Every tool runs as a subprocess in a temporary folder. A missing tool is a ToolError naming it and
``make tools``; a tool that rejects its input is a ToolError carrying the tool's own message, trimmed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from frugalnn.errors import ConfigError, ToolError
from frugalnn.hw.liberty import Library, read_liberty
from frugalnn.hw.netlist import Netlist

TOOL_PACKAGES = {
    "yosys": "yosys",
    "sta": "opensta",
    "iverilog": "iverilog",
    "vvp": "iverilog",
    "verilator": "verilator",
}


def require_tool(name: str) -> str:
    """Absolute path of a tool on PATH, or a ToolError that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pkg = TOOL_PACKAGES.get(name, name)
        raise ToolError(f"{name} not found on PATH; run 'make tools' (installs the Debian package {pkg})")
    return path


def _trim(text: str, lines: int = 12) -> str:
    """The tool's error lines (or its last lines), joined into one short message."""
    rows = [r.strip() for r in text.splitlines() if r.strip()]
    errors = [r for r in rows if re.search(r"error|ERROR|Error|syntax", r)]
    picked = (errors or rows)[-lines:]
    return " | ".join(picked)[:1500]


def _stop_group(proc: subprocess.Popen) -> None:
    """Kill the tool and every process it started (yosys runs abc, Verilator runs make and the compiler)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def run_tool(args: list[str], cwd: Path, what: str, timeout_s: float = 600.0) -> str:
    exe = require_tool(args[0])
    # a session of its own, so that a timeout or Ctrl-C stops the whole tree, not only its root: a
    # killed yosys otherwise leaves its abc child running for as long as abc likes
    with subprocess.Popen(
        [exe, *args[1:]],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise ToolError(f"{args[0]} took over {timeout_s:.0f} s on {what}; simplify the design") from None
        except BaseException:
            _stop_group(proc)
            raise
    out = stdout + stderr
    if proc.returncode != 0:
        raise ToolError(f"{args[0]} rejected {what}: {_trim(out)}")
    return out


@dataclass
class MappedNetlist:
    """A design mapped onto library cells: the simulator's netlist plus what synthesis reported."""

    top: str
    netlist: Netlist
    verilog: str  # mapped structural Verilog (write_verilog -noattr), for iverilog / OpenSTA
    yosys_json: dict = field(repr=False)
    area: float = 0.0  # library area units (um^2 for OSU018)
    cell_counts: dict[str, int] = field(default_factory=dict)
    liberty_path: str = ""

    @property
    def library(self) -> Library:
        return self.netlist.library

    @property
    def n_cells(self) -> int:
        return sum(self.cell_counts.values())


def synthesize(
    verilog: str,
    top: str,
    liberty: str | Path | None = None,
    abc_script: str = "",
    timeout_s: float = 600.0,
    pre_map: str = "",
) -> MappedNetlist:
    """Synthesise Verilog text with yosys + abc onto a Liberty library (default OSU018).

    ``pre_map``: extra yosys commands between ``synth`` and the library mapping (e.g. ``abc -dff -D 2000``
    to retime flip-flops through the logic).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ConfigError(f"top module name {top!r} is not a Verilog identifier")
    if "\n" in abc_script or "\r" in abc_script:
        raise ConfigError("abc_script is one line: a script file's path or '+cmd;cmd;...'")
    lib = read_liberty(liberty)
    with tempfile.TemporaryDirectory(prefix="frugalnn-yosys-") as tmp:
        work = Path(tmp)
        (work / "design.v").write_text(verilog)
        # files are linked in under fixed names: no path of the user's is ever written into a script
        lib_path = _link(lib.path, work, "cells.lib")
        if abc_script and not abc_script.startswith("+"):
            abc_script = _link(Path(abc_script), work, "abc.script")
        abc = f"abc -liberty {lib_path}" + (f" -script {abc_script}" if abc_script else "")
        script = "\n".join(
            [
                "read_verilog -sv design.v",
                f"synth -flatten -top {top}",
                *([pre_map] if pre_map else []),
                f"dfflibmap -liberty {lib_path}",
                abc,
                "opt_clean -purge",
                # one short name per cell and net, shared by the JSON and the Verilog (OpenSTA pin paths)
                "rename -enumerate -pattern g_%",
                f"stat -liberty {lib_path}",
                "write_json mapped.json",
                "write_verilog -noattr -noexpr mapped.v",
            ]
        )
        (work / "run.ys").write_text(script + "\n")
        log = run_tool(["yosys", "-q", "-l", "yosys.log", "run.ys"], work, f"the Verilog of {top}", timeout_s)
        log = (work / "yosys.log").read_text() if (work / "yosys.log").exists() else log
        data = json.loads((work / "mapped.json").read_text())
        mapped_v = (work / "mapped.v").read_text()
    area_m = re.findall(r"Chip area for (?:top )?module '\\?" + re.escape(top) + r"':\s*([0-9.eE+-]+)", log)
    netlist = Netlist.from_yosys_json(data, top, lib)
    if netlist.undriven:
        raise ToolError(f"{top}: nets without a driver after synthesis ({netlist.undriven[:5]}); drive them")
    return MappedNetlist(
        top=top,
        netlist=netlist,
        verilog=mapped_v,
        yosys_json=data,
        area=float(area_m[-1]) if area_m else netlist.area,
        cell_counts=netlist.cell_counts(),
        liberty_path=str(lib.path),
    )


def synthesize_file(
    path: str | Path, top: str | None = None, liberty: str | Path | None = None
) -> MappedNetlist:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Verilog file {path} not found; pass an existing .v file")
    text = path.read_text(errors="replace")
    if top is None:
        mods = re.findall(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", text, re.M)
        if not mods:
            raise ToolError(f"no 'module' found in {path}; is this Verilog?")
        top = mods[-1]
    return synthesize(text, top, liberty)


# ---------------------------------------------------------------- OpenSTA


@dataclass
class TimingReport:
    critical_path_ns: float
    startpoint: str
    endpoint: str
    report: str


@dataclass
class PowerReport:
    internal_w: float
    switching_w: float
    leakage_w: float
    total_w: float
    report: str


def _link(path: Path, work: Path, name: str) -> str:
    """``path`` reachable as ``name`` inside the tool's folder (a symlink; a copy where links fail)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not a file; pass an existing one")
    try:
        os.symlink(path.resolve(), work / name)
    except OSError:
        shutil.copyfile(path, work / name)
    return name


def _sta_preamble(mapped: MappedNetlist, clock_ns: float, output_load_pf: float, input_slew_ns: float) -> str:
    clk_ports = [p for p in mapped.netlist.inputs if p.lower() in ("clk", "clock")]
    lines = ["read_liberty cells.lib", "read_verilog mapped.v", f"link_design {mapped.top}"]
    if clk_ports:
        lines.append(f"create_clock -name clk -period {clock_ns} [get_ports {clk_ports[0]}]")
        data_in = f"[delete_from_list [all_inputs] [get_ports {clk_ports[0]}]]"
    else:
        lines.append(f"create_clock -name clk -period {clock_ns}")
        data_in = "[all_inputs]"
    lines += [
        f"set_input_delay 0 -clock clk {data_in}",
        f"set_input_transition {input_slew_ns} [all_inputs]",
        "set_output_delay 0 -clock clk [all_outputs]",
        f"set_load {output_load_pf} [all_outputs]",
    ]
    return "\n".join(lines)


def _run_sta(mapped: MappedNetlist, script: str) -> str:
    with tempfile.TemporaryDirectory(prefix="frugalnn-sta-") as tmp:
        work = Path(tmp)
        (work / "mapped.v").write_text(mapped.verilog)
        _link(Path(mapped.liberty_path), work, "cells.lib")
        (work / "run.tcl").write_text(script + "\nexit\n")
        out = run_tool(["sta", "-no_init", "-exit", "run.tcl"], work, f"the netlist of {mapped.top}")
    if re.search(r"^Error", out, re.M):
        raise ToolError(f"sta rejected the netlist of {mapped.top}: {_trim(out)}")
    return out


def sta_timing(
    mapped: MappedNetlist, clock_ns: float = 10.0, output_load_pf: float = 0.0, input_slew_ns: float = 0.06
) -> TimingReport:
    """Critical (max-delay) path from OpenSTA ``report_checks``."""
    script = (
        _sta_preamble(mapped, clock_ns, output_load_pf, input_slew_ns)
        + "\nreport_checks -path_delay max -digits 4"
    )
    out = _run_sta(mapped, script)
    arrival = re.search(r"([0-9.eE+-]+)\s+data arrival time", out)
    if arrival is None:
        raise ToolError(f"sta reported no timing path for {mapped.top}: {_trim(out)}")
    start = re.search(r"Startpoint:\s*(\S+)", out)
    end = re.search(r"Endpoint:\s*(\S+)", out)
    return TimingReport(
        float(arrival.group(1)), start.group(1) if start else "", end.group(1) if end else "", out
    )


def sta_power(
    mapped: MappedNetlist,
    activity: dict[str, tuple[float, float]],
    clock_ns: float = 10.0,
    output_load_pf: float = 0.0,
    input_slew_ns: float = 0.06,
) -> PowerReport:
    """OpenSTA ``report_power`` with per-pin activities: pin path ('port' or 'inst/PIN') -> (activity, duty).

    ``activity`` is OpenSTA's: transitions per clock period (measured: switching power = ½·C·V² x
    activity / period); ``duty`` the fraction of time the pin is 1.
    """
    lines = [_sta_preamble(mapped, clock_ns, output_load_pf, input_slew_ns)]
    for pin, (act, duty) in activity.items():
        if "/" in pin:
            # the 2019 Tcl `set_power_activity -pins` is broken (calls an undefined get_pins_error
            # and skips output pins); the command underneath it works
            lines.append(f"sta::set_power_pin_activity [get_pins {{{pin}}}] {act:.9g} {duty:.6g}")
        else:
            lines.append(
                f"set_power_activity -input_ports [get_ports {{{pin}}}] -activity {act:.9g} -duty {duty:.6g}"
            )
    lines.append("report_power -digits 8")
    out = _run_sta(mapped, "\n".join(lines))
    total = re.search(r"^Total\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)\s+([0-9.eE+-]+)", out, re.M)
    if total is None:
        raise ToolError(f"sta report_power gave no total for {mapped.top}: {_trim(out)}")
    vals = [float(total.group(k)) for k in range(1, 5)]
    return PowerReport(*vals, report=out)
