"""Liberty boolean ``function`` strings: parsed into an expression tree from the Liberty grammar, then
run as closures over bit-packed words or printed as Verilog. Names from a file never become code."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from frugalnn.errors import DataError

# A pin name is a plain identifier: names from a file never become code, in Python or in Verilog.
_PIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_FTOK = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|([01])|(.))")

Node = tuple  # ("pin", index) | ("const", 0 | 1) | ("not", node) | ("and" | "or" | "xor", node, node)


def check_pins(pins: list[str], where: str) -> None:
    for pin in pins:
        if not _PIN.match(pin):
            raise DataError(
                f"{where}: pin name {pin!r} is not an identifier (letters, digits, _); fix the Liberty file"
            )


def parse_function(expr: str, pins: list[str]) -> Node:
    """A Liberty boolean ``function`` as an expression tree over ``pins`` (by index).

    Grammar (Liberty): ``!`` / postfix ``'`` NOT, ``^`` XOR, ``&``, ``*`` or juxtaposition AND,
    ``|`` / ``+`` OR; precedence NOT > XOR > AND > OR; constants ``0`` and ``1``.
    """
    check_pins(pins, f"Liberty function {expr!r}")
    toks: list[str] = []
    for m in _FTOK.finditer(expr):
        tok = m.group(1) or m.group(2) or m.group(3)
        if tok and not tok.isspace():
            toks.append(tok)
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(toks):
            raise DataError(f"Liberty function {expr!r} ends early; fix the cell's function attribute")
        pos += 1
        return toks[pos - 1]

    def atom() -> Node:
        tok = take()
        if tok == "!":
            return ("not", atom())
        if tok == "(":
            out = orx()
            if take() != ")":
                raise DataError(f"Liberty function {expr!r}: unbalanced parentheses")
        elif tok in ("0", "1"):
            out = ("const", int(tok))
        elif tok in pins:
            out = ("pin", pins.index(tok))
        else:
            raise DataError(f"Liberty function {expr!r} uses {tok!r}, not a pin of the cell ({pins})")
        while peek() == "'":
            take()
            out = ("not", out)
        return out

    def xorx() -> Node:
        out = atom()
        while peek() == "^":
            take()
            out = ("xor", out, atom())
        return out

    def andx() -> Node:
        out = xorx()
        while peek() is not None and peek() not in ("|", "+", ")"):
            if peek() in ("&", "*"):
                take()
            out = ("and", out, xorx())
        return out

    def orx() -> Node:
        out = andx()
        while peek() in ("|", "+"):
            take()
            out = ("or", out, andx())
        return out

    result = orx()
    if pos != len(toks):
        raise DataError(f"Liberty function {expr!r}: unexpected {toks[pos]!r}")
    return result


def compile_function(expr: str, pins: list[str], zero: Any, one: Any) -> Callable[..., Any]:
    """``fn(*values)``: the function evaluated bit-wise on words (``values`` in ``pins`` order), built
    from closures over the parsed tree (no source text is generated or evaluated)."""

    def build(node: Node) -> Callable[[tuple], Any]:
        kind = node[0]
        if kind == "pin":
            index = node[1]
            return lambda v: v[index]
        if kind == "const":
            word = one if node[1] else zero
            return lambda v: word
        if kind == "not":
            inner = build(node[1])
            return lambda v: ~inner(v)
        left, right = build(node[1]), build(node[2])
        if kind == "and":
            return lambda v: left(v) & right(v)
        if kind == "or":
            return lambda v: left(v) | right(v)
        return lambda v: left(v) ^ right(v)

    root = build(parse_function(expr, pins))
    return lambda *values: root(values)


def function_to_verilog(expr: str, pins: list[str]) -> str:
    """The function as a Verilog expression (pins are checked identifiers)."""

    def text(node: Node) -> str:
        kind = node[0]
        if kind == "pin":
            return pins[node[1]]
        if kind == "const":
            return "1'b1" if node[1] else "1'b0"
        if kind == "not":
            return f"(~{text(node[1])})"
        op = {"and": "&", "or": "|", "xor": "^"}[kind]
        return f"({text(node[1])} {op} {text(node[2])})"

    return text(parse_function(expr, pins))
