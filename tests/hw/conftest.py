"""Shared fixtures: small designs synthesised once per session (yosys + OSU018)."""

import pytest

from frugalnn.hw.synth import synthesize

ADDER = (
    "module add8(input [7:0] a, input [7:0] b, input ci, output [8:0] s); assign s = a + b + ci; endmodule"
)
MUL4 = "module mul4(input [3:0] a, input [3:0] b, output [7:0] y); assign y = a * b; endmodule"


@pytest.fixture(scope="session")
def adder():
    return synthesize(ADDER, "add8")


@pytest.fixture(scope="session")
def mul4():
    return synthesize(MUL4, "mul4")
