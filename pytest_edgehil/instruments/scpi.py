"""Declarative SCPI: settings tables, SCPI error numbers, IEEE 488.2 block encoding.

A driver is mostly a table of `Setting`s (header, unit, range or choices, channel-list or not); the
analyzer twin reads the same tables to parse what it receives, so driver and twin cannot drift apart.
Validation raises ConfigError with the bounds: a setpoint is never clamped, because a silently changed
test condition would poison every comparison made later. Replies are decoded and checked in
`replies`; the logged VISA link that recovers a session after a bad reply is `visa_link` (both
re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments.replies import check_plausible, decode_block, parse_error_entry
from pytest_edgehil.instruments.scpi_header import Header, match_choice, parse_header, split_header

Value = float | int | str

# SCPI-99 error numbers the twin raises and the drivers recognise.
NO_ERROR = (0, "No error")
UNDEFINED_HEADER = (-113, "Undefined header")
DATA_TYPE_ERROR = (-104, "Data type error")
MISSING_PARAMETER = (-109, "Missing parameter")
TRIGGER_IGNORED = (-211, "Trigger ignored")
SETTINGS_CONFLICT = (-221, "Settings conflict")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
DATA_STALE = (-230, "Data corrupt or stale")
HARDWARE_MISSING = (-241, "Hardware missing")

def format_error(code: int, text: str) -> str:
    """The reply to SYST:ERR? for one queue entry, e.g. `-222,"Data out of range"`."""
    return f'{code:+d},"{text}"'


def parse_error(reply: str, *, resource: str = "instrument") -> tuple[int, str]:
    """Split a SYST:ERR? reply into (code, text); InstrumentReplyError if it is not one."""
    return parse_error_entry(reply, resource=resource)


@dataclass(frozen=True)
class Setting:
    """One programmable setting: how to send it, query it, and which values the instrument accepts."""

    name: str  # python-side name, with its unit: "sample_interval_s"
    header: str  # SCPI header as the manual writes it: "SENSe:SWEep:TINTerval", "[SOURce:]VOLTage"
    unit: str = ""
    kind: type = float  # float, int or str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # canonical character data: ("NORMal", "SWAPped")
    channel_list: bool = False  # takes "(@<ch>)" after the value (Keysight style)
    doc: str = ""
    reset: Value | None = None  # the value after *RST (the analyzer twin starts from it)
    suffixes: int = 1  # a header with `<n>` exists for n = 1..suffixes (e.g. 7 digital pins)
    confirmed: bool = True  # False: not found in the maker's manual (see docs/instruments.md)

    @property
    def parsed(self) -> Header:
        return parse_header(self.header)

    def short(self, suffix: int = 1) -> str:
        """The header as the driver sends it: "SENS:SWE:TINT"."""
        return self.parsed.short(suffix)

    def bounds_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"{self.minimum:g} to {self.maximum:g} {self.unit}".rstrip()

    def choice(self, value: Value) -> str | None:
        """The short form of the choice `value` names (long or short form, any case; 1/0 for ON/OFF)."""
        return match_choice(str(value), self.choices)

    def accepts(self, value: Value) -> bool:
        if self.choices:
            return self.choice(value) is not None
        number = float(value)
        return (math.isfinite(number)
                and (self.minimum is None or number >= self.minimum)
                and (self.maximum is None or number <= self.maximum))

    def check(self, value: Value, *, model: str) -> Value:
        """Return the value to send, or raise ConfigError naming the setting and its bounds."""
        if self.kind is str:
            text = self.choice(value) if self.choices else str(value).upper()
            if text is None:
                raise ConfigError(f"{model}: {self.name} = {value!r} is not accepted; "
                                  f"use {self.bounds_text()}")
            return text
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ConfigError(f"{model}: {self.name} must be a number ({self.unit}), not {value!r}")
        if self.kind is int and float(value) != int(value):
            raise ConfigError(f"{model}: {self.name} must be a whole number, not {value!r}")
        if not self.accepts(value):
            raise ConfigError(f"{model}: {self.name} = {value:g} {self.unit} is out of range; the "
                              f"instrument accepts {self.bounds_text()} (values are never clamped)")
        return int(value) if self.kind is int else float(value)

    def format_value(self, value: Value) -> str:
        if self.kind is float:
            return f"{float(value):.9g}"
        return str(value)

    def set_command(self, value: Value, channel: int, suffix: int = 1) -> str:
        text = f"{self.short(suffix)} {self.format_value(value)}"
        return f"{text},(@{channel})" if self.channel_list else text

    def query_command(self, channel: int, suffix: int = 1) -> str:
        header = self.short(suffix)
        return f"{header}? (@{channel})" if self.channel_list else f"{header}?"

    def parse(self, text: str) -> Value:
        """Parse a value as sent or answered (raises ValueError on a malformed one)."""
        text = text.strip().strip('"')
        if self.kind is str:
            return (self.choice(text) or text.upper()) if self.choices else text.upper()
        if self.kind is int:
            number = float(text)
            if number != int(number):
                raise ValueError(f"{text!r} is not a whole number")
            return int(number)
        return float(text)


class SettingTable:
    """The settings of one instrument model, looked up by python name or by SCPI header."""

    def __init__(self, settings: Iterable[Setting]) -> None:
        self._by_name: dict[str, Setting] = {}
        self._by_header: dict[str, Setting] = {}
        for setting in settings:
            if setting.name in self._by_name or setting.short() in self._by_header:
                raise ValueError(f"duplicate setting {setting.name} / {setting.header}")
            self._by_name[setting.name] = setting
            self._by_header[setting.short()] = setting

    def __getitem__(self, name: str) -> Setting:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def by_header(self, header: str) -> Setting | None:
        """The setting a received header names (long or short form, optional nodes, any case)."""
        found = self.lookup(split_header(header))
        return None if found is None else found[0]

    def lookup(self, tokens: tuple[str, ...]) -> tuple[Setting, int] | None:
        """(setting, numeric suffix) for a received header's upper-case node tokens; None if none."""
        for setting in self._by_name.values():
            suffixes = setting.parsed.match(tokens)
            if suffixes is not None:
                suffix = suffixes[0] if suffixes else 1
                return (setting, suffix) if 1 <= suffix <= setting.suffixes else None
        return None


# --- IEEE 488.2 definite-length arbitrary blocks -------------------------------------------------


def encode_block(payload: bytes) -> bytes:
    """`#<n><length><payload>`: the definite-length block instruments use for binary arrays."""
    length = str(len(payload))
    return f"#{len(length)}{length}".encode("ascii") + payload


def float32_payload(values: np.ndarray, *, big_endian: bool) -> bytes:
    return np.asarray(values, dtype=">f4" if big_endian else "<f4").tobytes()


def encode_float32_block(values: np.ndarray, *, big_endian: bool) -> bytes:
    return encode_block(float32_payload(values, big_endian=big_endian))


def format_ascii_floats(values: np.ndarray) -> bytes:
    """Comma-separated values, float32-exact (9 significant digits round-trip a float32)."""
    return ",".join(f"{v:.9g}" for v in np.asarray(values, dtype=np.float32).tolist()).encode("ascii")




# Re-exported: the link and the reply checks were split out of this module (import them from here or there).
from pytest_edgehil.instruments.visa_link import VisaLink, drain_errors

__all__ = ["Setting", "SettingTable", "Value", "VisaLink", "check_plausible", "decode_block", "drain_errors",
           "encode_block", "encode_float32_block", "float32_payload", "format_ascii_floats", "format_error",
           "parse_error"]
