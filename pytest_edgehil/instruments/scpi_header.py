"""SCPI headers and character data as the manuals write them: once, in canonical mixed case.

`SENSe:SWEep:POINts`, `FORMat[:DATA]`, `[SOURce:]VOLTage`, `DIGital:PIN<n>:FUNCtion`: the upper-case
part of each node is its short form, the whole node its long form, brackets mark optional nodes and
`<n>` a numeric suffix (IEEE 488.2 / SCPI-99 section 6). A driver sends the short form
(`Header.short()`); the analyzer twin matches what a client sends against the same declaration
(`Header.match`), so both derive from one string. Character-data parameters (`NORMal`, `EXTernal`)
follow the same rule (`match_choice`). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_TOKEN = re.compile(r"^(\*?[A-Z_]+?)(\d*)$")


def short_form(mnemonic: str) -> str:
    """`SWEep` -> `SWE`, `TINTerval` -> `TINT`, `DATA` -> `DATA`: the leading upper-case part
    (a mnemonic written all in upper case, digits included, is its own short form: `S62K5`); a
    numeric suffix stays on: `CURRent1` -> `CURR1` (the N6705C's trigger source `CURRent<1-4>`)."""
    if mnemonic == mnemonic.upper():
        return mnemonic
    match = re.match(r"^[*A-Z_]+", mnemonic)
    suffix = re.search(r"\d+$", mnemonic)
    return (match.group(0) if match else mnemonic.upper()) + (suffix.group(0) if suffix else "")


@dataclass(frozen=True)
class Node:
    """One node of a header: its long form as written, optional or not, with a numeric suffix or not."""

    name: str  # "SWEep", "PIN"
    optional: bool = False
    suffix: bool = False  # written `PIN<n>`: takes a numeric suffix

    @property
    def short(self) -> str:
        return short_form(self.name)

    @property
    def long(self) -> str:
        return self.name.upper()

    def accepts(self, token: str) -> int | None:
        """The suffix (1 when absent) if `token` (upper case) names this node; None if it does not."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        mnemonic, digits = match.groups()
        if mnemonic not in (self.short, self.long) or (digits and not self.suffix):
            return None
        return int(digits) if digits else 1


@dataclass(frozen=True)
class Header:
    """A parsed canonical header; `text` is how the manual writes it."""

    text: str
    nodes: tuple[Node, ...]

    @property
    def common(self) -> bool:
        """An IEEE 488.2 common command (`*IDN`)."""
        return self.text.startswith("*")

    def short(self, suffix: int = 1) -> str:
        """What a driver sends: mandatory nodes, short forms, `<n>` replaced by `suffix`."""
        return ":".join(node.short + (str(suffix) if node.suffix else "")
                        for node in self.nodes if not node.optional)

    def long(self, suffix: int = 1) -> str:
        """Every node in its long form (what a client written from the manual may send)."""
        return ":".join(node.long + (str(suffix) if node.suffix else "") for node in self.nodes)

    def match(self, tokens: tuple[str, ...]) -> tuple[int, ...] | None:
        """The numeric suffixes of the suffixed nodes if `tokens` (upper case, no colons) name this
        header, optional nodes left out or given; None if they do not."""
        return _match(self.nodes, tokens)


def _match(nodes: tuple[Node, ...], tokens: tuple[str, ...]) -> tuple[int, ...] | None:
    if not nodes:
        return () if not tokens else None
    node, rest = nodes[0], nodes[1:]
    if tokens:
        suffix = node.accepts(tokens[0])
        if suffix is not None:
            tail = _match(rest, tokens[1:])
            if tail is not None:
                return ((suffix,) if node.suffix else ()) + tail
    if node.optional:  # left out: an optional suffixed node takes its default, 1
        tail = _match(rest, tokens)
        if tail is not None:
            return ((1,) if node.suffix else ()) + tail
    return None


@cache
def parse_header(text: str) -> Header:
    """Parse `SENSe:SWEep[:POINts]`-style text; ValueError for unbalanced brackets or empty nodes."""
    nodes: list[Node] = []
    rest = text.strip().lstrip(":")
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ValueError(f"SCPI header {text!r}: '[' without ']'")
            inner, rest = rest[1:end], rest[end + 1:]
            names = [part for part in inner.split(":") if part]
            if not names:
                raise ValueError(f"SCPI header {text!r}: empty optional node")
            nodes += [_node(name, optional=True, text=text) for name in names]
        else:
            match = re.match(r"^([^:\[]+)", rest)
            if match is None:
                rest = rest[1:]  # a ':' between nodes
                continue
            nodes.append(_node(match.group(1), optional=False, text=text))
            rest = rest[match.end():]
    if not nodes or all(node.optional for node in nodes):
        raise ValueError(f"SCPI header {text!r} has no mandatory node")
    return Header(text=text, nodes=tuple(nodes))


def _node(name: str, *, optional: bool, text: str) -> Node:
    suffix = name.endswith("<n>")
    bare = name[:-3] if suffix else name
    if not re.fullmatch(r"\*?[A-Za-z_]+\d*", bare):  # digits: a fixed suffix, as sent ("PIN1")
        raise ValueError(f"SCPI header {text!r}: node {name!r} is not a mnemonic")
    return Node(bare, optional=optional, suffix=suffix)


def split_header(header: str) -> tuple[str, ...]:
    """A received header (no '?', any case, leading ':' allowed) as upper-case node tokens."""
    return tuple(part for part in header.upper().lstrip(":").split(":") if part)


def short_command(command: str) -> str:
    """A canonical command line (`FETCh:ARRay:CURRent[:DC]? (@{channel})`) with its header in the
    short form a driver sends (`FETC:ARR:CURR? (@{channel})`); arguments untouched."""
    head, sep, rest = command.partition(" ")
    query = head.endswith("?")
    return parse_header(head.rstrip("?")).short() + ("?" if query else "") + sep + rest


# --- character data (IEEE 488.2 7.7.1) ---------------------------------------------------------------

#: Boolean settings: SCPI accepts 1/0 for ON/OFF and instruments answer 1/0.
BOOLEAN = ("ON", "OFF")


def match_choice(text: str, choices: tuple[str, ...]) -> str | None:
    """The short form of the choice `text` names (long or short form, any case), None if none.

    `choices` are canonical (`NORMal`, `SWAPped`); `1`/`0` stand for ON/OFF where those are the choices."""
    token = text.strip().strip("\"'").upper()
    if set(choices) == set(BOOLEAN) and token in ("1", "0"):
        return "ON" if token == "1" else "OFF"
    for choice in choices:
        if token in (short_form(choice), choice.upper()):
            return short_form(choice)
    return None
