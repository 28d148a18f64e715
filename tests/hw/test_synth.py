"""yosys synthesis, OpenSTA timing and power, and the errors a user sees."""

import time
from pathlib import Path

import numpy as np
import pytest

from frugalnn.errors import ConfigError, ToolError
from frugalnn.hw.crosscheck import power_crosscheck
from frugalnn.hw.synth import sta_timing, synthesize, synthesize_file
from frugalnn.hw.timed import electrical


def test_synthesis_reports_area_and_cells(mul4):
    assert mul4.n_cells == sum(mul4.cell_counts.values()) > 10
    # yosys' stat area equals the sum of the Liberty areas of the instantiated cells
    lib = mul4.library
    assert mul4.area == pytest.approx(sum(lib.cells[c].area * k for c, k in mul4.cell_counts.items()))
    assert "module mul4" in mul4.verilog


def test_opensta_critical_path_close_to_ours(mul4):
    report = sta_timing(mul4)
    ours = electrical(mul4.netlist).critical_path_ns(mul4.netlist.outputs["y"])
    assert 0.5 < report.critical_path_ns < 5.0
    # ours takes the worse of rise and fall on every arc, so it bounds OpenSTA's from above
    assert report.critical_path_ns <= ours * 1.001
    assert ours <= report.critical_path_ns * 1.3


def test_power_crosscheck_switching_and_leakage_match_opensta(mul4):
    rng = np.random.default_rng(0)
    n = 64 * 40 + 1
    check = power_crosscheck(mul4, {"a": rng.integers(0, 16, n), "b": rng.integers(0, 16, n)})
    sta, conv = check.sta, check.ours_sta_convention
    # same activities (OpenSTA's propagation, replicated) and our loads -> the same switching power
    assert conv.switching_w == pytest.approx(sta.switching_w, rel=0.02)
    assert conv.leakage_w == pytest.approx(sta.leakage_w, rel=1e-4)
    assert check.ours.total_w > 0 and sta.internal_w > 0


def test_verilog_that_yosys_rejects_shows_its_message():
    with pytest.raises(ToolError, match="syntax error"):
        synthesize("module bad(input a, output y); assign y = a +; endmodule", "bad")
    with pytest.raises(ToolError, match="not found"):
        synthesize("module ok(input a, output y); assign y = a; endmodule", "other")
    with pytest.raises(ConfigError):
        synthesize("module ok(input a, output y); assign y = a; endmodule", "bad name")


def test_missing_tool_names_make_tools(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="make tools"):
        synthesize("module ok(input a, output y); assign y = a; endmodule", "ok")


def test_synthesize_file_picks_the_last_module(tmp_path):
    path = tmp_path / "two.v"
    path.write_text(
        "module inner(input a, output y); assign y = ~a; endmodule\n"
        "module outer(input [1:0] a, output [1:0] y); inner i0(a[0], y[0]); inner i1(a[1], y[1]); endmodule\n"
    )
    mapped = synthesize_file(path)
    assert mapped.top == "outer"
    assert np.array_equal(mapped.netlist.simulate({"a": np.arange(4)})["y"], 3 - np.arange(4))
    with pytest.raises(ConfigError):
        synthesize_file(tmp_path / "missing.v")


def test_library_paths_with_spaces_or_script_syntax_cannot_inject(tmp_path):
    """The Liberty file is linked into the tool's folder under a fixed name: a path with a space, a
    ';' or a newline works as a path and never becomes a yosys or OpenSTA command."""
    import shutil

    from frugalnn.core.assets import asset_path

    # were the path pasted into a script, yosys would try to read a file that does not exist and fail
    odd = tmp_path / "my libs; read_verilog does-not-exist.v\nexit"
    odd.mkdir()
    lib = odd / "cells x.lib"
    shutil.copyfile(asset_path("osu018"), lib)
    mapped = synthesize("module t(input a, input b, output y); assign y = a & b; endmodule", "t", lib)
    assert mapped.n_cells >= 1 and sta_timing(mapped).critical_path_ns > 0
    with pytest.raises(ConfigError, match="abc_script is one line"):
        synthesize("module t(input a, output y); assign y = a; endmodule", "t", lib, abc_script="x\nshell")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_a_tool_past_its_time_limit_is_stopped_with_everything_it_started(tmp_path):
    """yosys runs abc as a child: a timeout must not leave the child running."""
    from frugalnn.hw.synth import run_tool

    script = "sleep 60 & echo $! > child.pid; wait"
    with pytest.raises(ToolError, match=r"took over 1 s on the design"):
        run_tool(["sh", "-c", script], tmp_path, "the design", timeout_s=1)
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
