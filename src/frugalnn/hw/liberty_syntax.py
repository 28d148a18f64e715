"""Liberty syntax: a tokenizer and a recursive parser into a generic tree of groups and attributes.

Groups ``name (args) { ... }``, simple attributes ``name : value ;`` and complex attributes
``name (v, v) ;``; ``frugalnn.hw.liberty`` builds the typed cell views on top of this tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from frugalnn.errors import DataError


@dataclass
class Group:
    """One Liberty group: ``kind (args) { attrs; subgroups }``."""

    kind: str
    args: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)

    def find(self, kind: str) -> list[Group]:
        return [g for g in self.groups if g.kind == kind]


_TOKEN = re.compile(
    r'\s+|/\*.*?\*/|//[^\n]*|\\\n|"(?:[^"\\]|\\.)*"|[{}();:,]|[^\s{}();:,"]+',
    re.S,
)


def _tokenize(text: str, source: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any single character class
            raise DataError(
                f"{source}:{line}: cannot tokenise {text[pos : pos + 20]!r}; is this a Liberty file?"
            )
        tok = m.group(0)
        if not (tok[0].isspace() or tok.startswith("/*") or tok.startswith("//") or tok == "\\\n"):
            tokens.append((tok, line))
        line += tok.count("\n")
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, int]], source: str) -> None:
        self.toks, self.i, self.source = tokens, 0, source

    def fail(self, what: str) -> DataError:
        line = self.toks[min(self.i, len(self.toks) - 1)][1] if self.toks else 0
        return DataError(
            f"{self.source}:{line}: Liberty syntax error: {what}; check the file is a valid .lib"
        )

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self, expect: str | None = None) -> str:
        if self.i >= len(self.toks):
            raise self.fail(f"unexpected end of file (expected {expect or 'more'})")
        tok = self.toks[self.i][0]
        if expect is not None and tok != expect:
            raise self.fail(f"expected {expect!r}, got {tok!r}")
        self.i += 1
        return tok

    def statement(self, parent: Group) -> None:
        name = self.take()
        if name in "{}();:,":
            raise self.fail(f"unexpected {name!r}")
        nxt = self.take()
        if nxt == ":":  # simple attribute
            value = self.take()
            while self.peek() not in (";", "}", None):  # unquoted expressions with spaces
                value += " " + self.take()
            if self.peek() == ";":
                self.take()
            parent.attrs[name] = _unquote(value)
            return
        if nxt != "(":
            raise self.fail(f"expected ':' or '(' after {name!r}, got {nxt!r}")
        args: list[str] = []
        while self.peek() != ")":
            tok = self.take()
            if tok != ",":
                args.append(_unquote(tok))
        self.take(")")
        if self.peek() == "{":
            self.take("{")
            group = Group(name, args)
            while self.peek() != "}":
                if self.peek() is None:
                    raise self.fail(f"group {name}({', '.join(args)}) is not closed")
                self.statement(group)
            self.take("}")
            parent.groups.append(group)
        else:  # complex attribute
            if self.peek() == ";":
                self.take()
            parent.attrs[name] = args


def _unquote(tok: str) -> str:
    return tok[1:-1] if len(tok) >= 2 and tok[0] == tok[-1] == '"' else tok


def parse_liberty_text(text: str, source: str = "<liberty>") -> Group:
    """Parse Liberty text into its top ``library`` group (raises DataError on syntax errors)."""
    parser = _Parser(_tokenize(text, source), source)
    root = Group("<root>", [])
    while parser.peek() is not None:
        parser.statement(root)
    libs = root.find("library")
    if len(libs) != 1:
        raise DataError(
            f"{source}: expected one library(...) group, found {len(libs)}; is this a Liberty file?"
        )
    return libs[0]
