"""Liberty parsing, unit handling and NLDM interpolation against hand-computed values from OSU018."""

import numpy as np
import pytest

from frugalnn.errors import DataError
from frugalnn.hw.boolean import compile_function, function_to_verilog, parse_function
from frugalnn.hw.liberty import parse_liberty, read_liberty


@pytest.fixture(scope="module")
def lib():
    return read_liberty()


def test_library_units_and_cells(lib):
    assert lib.nom_voltage_v == pytest.approx(1.8)
    assert len(lib.cells) == 32
    and2 = lib.cells["AND2X1"]
    assert and2.area == 32 and and2.inputs == ["A", "B"] and and2.outputs == ["Y"]
    assert and2.pins["A"].capacitance_pf == pytest.approx(0.0129077)
    assert and2.leakage_nw == pytest.approx(0.0746794)
    assert lib.cells["DFFPOSX1"].ff["next_state"] == "D" and lib.cells["DFFPOSX1"].pins["CLK"].is_clock


def test_nldm_interpolation_matches_hand_computation(lib):
    # AND2X1, arc A->Y, cell_rise; rows = load (0.005, 0.0125, ...) pF, columns = slew (0.06, 0.18, ...) ns
    table = lib.cells["AND2X1"].pins["Y"].timing[0].cell_rise
    assert table.lookup(0.42, 0.025) == pytest.approx(0.116541)  # a grid point: row 3, column 3
    # the centre of the first cell is the mean of its four corners
    mid = (0.06367 + 0.070461 + 0.078318 + 0.085985) / 4
    assert table.lookup(0.12, 0.00875) == pytest.approx(mid)
    # slew 0.1, load 0.01: weights (1/3, 2/3) on slew and (2/3, 1/3) on load, written out by hand
    ts, tl = (0.1 - 0.06) / 0.12, (0.01 - 0.005) / 0.0075
    hand = (1 - tl) * ((1 - ts) * 0.06367 + ts * 0.070461) + tl * ((1 - ts) * 0.078318 + ts * 0.085985)
    assert table.lookup(0.1, 0.01) == pytest.approx(hand)
    # below the table: linear extrapolation from the first two slew points
    slope = (0.070461 - 0.06367) / (0.18 - 0.06)
    assert table.lookup(0.03, 0.005) == pytest.approx(0.06367 - 0.03 * slope)
    # internal energy table (pJ): fall_power of arc A at a grid point
    fall = lib.cells["AND2X1"].pins["Y"].internal_power[0].fall_power
    assert fall.lookup(0.18, 0.0125) == pytest.approx(0.063015)


SMALL = """
library(tiny) {
  time_unit : "1ps";
  voltage_unit : "1V";
  leakage_power_unit : "1pW";
  capacitive_load_unit (1,ff);
  nom_voltage : 1.2;
  lu_table_template(t2) { variable_1 : input_net_transition; variable_2 : total_output_net_capacitance;
    index_1 ("10, 20"); index_2 ("1, 3"); }
  cell (INV) {
    area : 2.5;
    cell_leakage_power : 1500;
    pin(A) { direction : input; capacitance : 2.0; }
    pin(Y) { direction : output; function : "A'";
      timing() { related_pin : "A";
        cell_rise(t2) { values ("100, 200", "300, 400"); }
      }
      internal_power() { related_pin : "A"; rise_power(t2) { values ("5, 5", "5, 5"); } }
    }
  }
}
"""


def test_units_are_converted_to_ns_pf_nw_pj():
    lib = parse_liberty(SMALL, "tiny.lib")
    inv = lib.cells["INV"]
    assert inv.pins["A"].capacitance_pf == pytest.approx(0.002)  # 2 fF
    assert inv.leakage_nw == pytest.approx(1.5)  # 1500 pW
    table = inv.pins["Y"].timing[0].cell_rise  # slew-major template: rows = slew
    assert table.lookup(0.010, 0.001) == pytest.approx(0.1)  # 100 ps at (10 ps, 1 fF)
    assert table.lookup(0.020, 0.003) == pytest.approx(0.4)
    # internal energy unit = 1 fF x (1 V)^2 = 1 fJ = 1e-3 pJ
    assert inv.pins["Y"].internal_power[0].rise_power.lookup(0.01, 0.001) == pytest.approx(5e-3)
    assert parse_function("A'", ["A"]) == ("not", ("pin", 0))
    assert function_to_verilog("(A B)+!C", ["A", "B", "C"]) == "((A & B) | (~C))"


def _truth(name: str, pin: str, b: dict) -> int:
    """The cells' documented behaviour, written independently of the Liberty strings."""
    if name == "AOI21X1":
        return 1 - ((b["A"] & b["B"]) | b["C"])
    if name == "OAI22X1":
        return 1 - ((b["A"] | b["B"]) & (b["C"] | b["D"]))
    if name == "MUX2X1":  # OSU018's mux is inverting
        return 1 - (b["A"] if b["S"] else b["B"])
    if name == "FAX1":
        total = b["A"] + b["B"] + b["C"]
        return total // 2 if pin == "YC" else total % 2
    return 1 - (b["A"] ^ b["B"])  # XNOR2X1


def test_boolean_functions_compile_to_the_right_truth_tables(lib):
    for name in ("AOI21X1", "OAI22X1", "MUX2X1", "FAX1", "XNOR2X1"):
        cell = lib.cells[name]
        ins = cell.inputs
        for pin in cell.outputs:
            fn = compile_function(cell.pins[pin].function, ins, np.uint8(0), np.uint8(1))
            for code in range(1 << len(ins)):
                bits = {p: (code >> k) & 1 for k, p in enumerate(ins)}
                got = fn(*[np.uint8(bits[p]) for p in ins]) & 1
                expect = _truth(name, pin, bits)
                assert got == expect, (name, pin, bits)


@pytest.mark.parametrize(
    "text",
    [
        "library(x) { cell(A) { area : 1; ",  # group never closed
        "this is not a liberty file",
        'library(x) { time_unit : "1ns"; }',  # no cells
        'library(x) { lu_table_template(t) { variable_1 : input_net_transition; index_1 ("1, 2"); }'
        ' cell(A) { pin(Y) { direction : output; timing() { related_pin : "A"; cell_rise(t) { values ("1, 2, 3"); } } } } }',
    ],
)
def test_bad_liberty_is_a_data_error(text):
    with pytest.raises(DataError):
        parse_liberty(text, "bad.lib")


def test_missing_liberty_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_liberty(tmp_path / "nope.lib")


def test_names_from_a_liberty_file_never_run_as_code(tmp_path):
    """A pin named like a Python or Verilog expression is refused, not evaluated."""
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for pins, expr in ([payload], "A"), (["A"], payload), (["A;B"], "A"):
        with pytest.raises(DataError):
            compile_function(expr, pins, 0, 1)(0)
    assert not marker.exists()
    with pytest.raises(DataError, match="not an identifier"):
        function_to_verilog("A", ["A) ; initial $finish; //"])
