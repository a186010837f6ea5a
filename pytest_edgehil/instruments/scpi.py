"""Declarative SCPI: settings tables, a logged VISA link, error-queue draining, IEEE 488.2 blocks.

A driver is mostly a table of `Setting`s (header, unit, range or choices, channel-list or not); the
analyzer twin reads the same tables to parse what it receives, so driver and twin cannot drift apart.
Validation raises ConfigError with the bounds: a setpoint is never clamped, because a silently changed
test condition would poison every comparison made later.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyvisa

from pytest_edgehil.errors import ConfigError, InstrumentError, InstrumentTimeout, ScpiError

T = TypeVar("T")
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

# More entries than any instrument's queue holds: past this the queue is not draining (a stuck reply).
_MAX_QUEUE_ENTRIES = 64


def format_error(code: int, text: str) -> str:
    """The reply to SYST:ERR? for one queue entry, e.g. `-222,"Data out of range"`."""
    return f'{code:+d},"{text}"'


def parse_error(reply: str) -> tuple[int, str]:
    """Split a SYST:ERR? reply into (code, text); raise InstrumentError if it is not one."""
    head, _, rest = reply.strip().partition(",")
    try:
        code = int(head)
    except ValueError:
        raise InstrumentError(
            f"SYST:ERR? answered {reply!r}, which is not '<code>,\"<text>\"'; another reply was "
            f"probably still pending: clear the instrument (*CLS) and reconnect") from None
    return code, rest.strip().strip('"')


@dataclass(frozen=True)
class Setting:
    """One programmable setting: how to send it, query it, and which values the instrument accepts."""

    name: str  # python-side name, with its unit: "sample_interval_s"
    header: str  # SCPI header in short form: "SENS:SWE:TINT"
    unit: str = ""
    kind: type = float  # float, int or str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    channel_list: bool = False  # takes "(@<ch>)" after the value (Keysight style)
    doc: str = ""
    reset: Value | None = None  # the value after *RST (the analyzer twin starts from it)

    def bounds_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return f"{self.minimum:g} to {self.maximum:g} {self.unit}".rstrip()

    def accepts(self, value: Value) -> bool:
        if self.choices:
            return str(value).upper() in self.choices
        number = float(value)
        return (math.isfinite(number)
                and (self.minimum is None or number >= self.minimum)
                and (self.maximum is None or number <= self.maximum))

    def check(self, value: Value, *, model: str) -> Value:
        """Return the value to send, or raise ConfigError naming the setting and its bounds."""
        if self.kind is str:
            text = str(value).upper()
            if not self.accepts(text):
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

    def set_command(self, value: Value, channel: int) -> str:
        text = f"{self.header} {self.format_value(value)}"
        return f"{text},(@{channel})" if self.channel_list else text

    def query_command(self, channel: int) -> str:
        return f"{self.header}? (@{channel})" if self.channel_list else f"{self.header}?"

    def parse(self, text: str) -> Value:
        """Parse a value as sent or answered (raises ValueError on a malformed one)."""
        text = text.strip().strip('"')
        if self.kind is str:
            return text.upper()
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
            if setting.name in self._by_name or setting.header in self._by_header:
                raise ValueError(f"duplicate setting {setting.name} / {setting.header}")
            self._by_name[setting.name] = setting
            self._by_header[setting.header.upper()] = setting

    def __getitem__(self, name: str) -> Setting:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Setting]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def by_header(self, header: str) -> Setting | None:
        return self._by_header.get(header.upper().lstrip(":"))


# --- IEEE 488.2 definite-length arbitrary blocks -------------------------------------------------


def encode_block(payload: bytes) -> bytes:
    """`#<n><length><payload>`: the definite-length block instruments use for binary arrays."""
    length = str(len(payload))
    return f"#{len(length)}{length}".encode("ascii") + payload


def float32_payload(values: np.ndarray, *, big_endian: bool) -> bytes:
    return np.asarray(values, dtype=">f4" if big_endian else "<f4").tobytes()


def encode_float32_block(values: np.ndarray, *, big_endian: bool) -> bytes:
    return encode_block(float32_payload(values, big_endian=big_endian))


def decode_block(data: bytes) -> bytes:
    """Inverse of `encode_block` (trailing terminator ignored); ProtocolError-free: InstrumentError."""
    if len(data) < 2 or data[:1] != b"#" or not data[1:2].isdigit() or data[1:2] == b"0":
        raise InstrumentError(f"expected a definite-length block '#<n><len>...', got {data[:12]!r}")
    digits = int(data[1:2])
    length = int(data[2:2 + digits])
    payload = data[2 + digits:2 + digits + length]
    if len(payload) != length:
        raise InstrumentError(f"binary block announced {length} bytes but carried {len(payload)}")
    return payload


def format_ascii_floats(values: np.ndarray) -> bytes:
    """Comma-separated values, float32-exact (9 significant digits round-trip a float32)."""
    return ",".join(f"{v:.9g}" for v in np.asarray(values, dtype=np.float32).tolist()).encode("ascii")


# --- the logged VISA link --------------------------------------------------------------------------


class VisaLink:
    """A PyVISA message resource that logs every write and read and raises our typed errors."""

    def __init__(self, resource: Any, name: str) -> None:
        self.resource = resource
        self.name = name
        self.log = logging.getLogger(f"pytest_edgehil.visa.{name}")

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(
                    f"{self.name} did not answer {what!r} within {self.resource.timeout} ms; check that "
                    f"the instrument is on and reachable (pyvisa-info, ping its address) and that "
                    f"no other program holds the session") from exc
            raise InstrumentError(f"{self.name}: VISA error during {what!r}: {exc}; check the "
                                  f"connection (pyvisa-info, cabling, address)") from exc
        except (OSError, EOFError) as exc:
            raise InstrumentError(f"{self.name}: connection failed during {what!r}: {exc}; check the "
                                  f"address (pyvisa-info lists what VISA sees), that the instrument "
                                  f"is on, and the network/USB cabling") from exc

    def write(self, command: str) -> None:
        self.log.debug("write %s", command)
        self._call(command, lambda: self.resource.write(command))

    def query(self, command: str) -> str:
        self.log.debug("write %s", command)
        reply: str = self._call(command, lambda: self.resource.query(command)).strip()
        self.log.debug("read %s", reply if len(reply) < 200 else f"{reply[:200]}... ({len(reply)} chars)")
        return reply

    def query_float32_block(self, command: str, *, big_endian: bool) -> np.ndarray:
        self.log.debug("write %s", command)

        def read() -> np.ndarray:
            try:
                return self.resource.query_binary_values(
                    command, datatype="f", is_big_endian=big_endian, container=np.array)
            except (ValueError, TypeError) as exc:  # malformed header or length from pyvisa's parser
                raise InstrumentError(f"{self.name}: reply to {command!r} is not a binary block of "
                                      f"float32: {exc}; check FORM (REAL vs ASCII)") from exc

        values = self._call(command, read)
        self.log.debug("read block of %d float32 (%s-endian)", values.size, "big" if big_endian else "little")
        return values.astype(np.float64)

    def query_ascii_floats(self, command: str) -> np.ndarray:
        self.log.debug("write %s", command)

        def read() -> np.ndarray:
            try:
                return self.resource.query_ascii_values(command, container=np.array)
            except ValueError as exc:
                raise InstrumentError(f"{self.name}: reply to {command!r} is not comma-separated numbers: "
                                      f"{exc}; check FORM (ASCII vs REAL)") from exc

        values = self._call(command, read)
        self.log.debug("read %d ASCII values", values.size)
        return np.asarray(values, dtype=np.float64)

    def close(self) -> None:
        self.log.debug("close")
        self._call("close", self.resource.close)


def drain_errors(link: VisaLink, *, after: str, model: str, query: str = "SYST:ERR?") -> None:
    """Read the error queue until it reports no error; raise ScpiError with every entry found."""
    entries: list[str] = []
    for _ in range(_MAX_QUEUE_ENTRIES):
        reply = link.query(query)
        code, _text = parse_error(reply)
        if code == 0:
            break
        entries.append(reply)
    else:
        raise InstrumentError(f"{model} at {link.name}: {query} still reports errors after "
                              f"{_MAX_QUEUE_ENTRIES} reads; send *CLS and check the instrument")
    if entries:
        raise ScpiError(f"{model} at {link.name} reported {'; '.join(entries)} after `{after}`; check "
                        f"the value against the instrument's manual and the module/option installed")


def check_plausible(values: np.ndarray, *, full_scale: float, what: str, where: str,
                    hint: str, expected: float | None = None) -> None:
    """Raise InstrumentError if decoded samples cannot be real readings (wrong byte order, format).

    A byte-swapped float32 decodes without any error to values that are absurdly large, NaN, or
    absurdly small (subnormal-like); a real reading is finite, within its range, and not below a
    part in 10^12 of it. Where the level is known (`expected`, e.g. the programmed supply voltage)
    the median must also lie within 25 % of it: a swapped 3.3 V decodes to a tidy-looking 4e-8.
    """
    if values.size == 0:
        raise InstrumentError(f"{where}: {what} came back empty; the acquisition did not complete")
    magnitude = np.abs(values)
    bad = ~np.isfinite(values) | (magnitude > 1.1 * full_scale) | ((magnitude > 0)
                                                                   & (magnitude < full_scale * 1e-12))
    if bad.any():
        first = values[bad][0]
        raise InstrumentError(
            f"{where}: {int(bad.sum())} of {values.size} {what} samples are impossible for a "
            f"{full_scale:g} full scale (e.g. {first!r}); the data look mis-decoded: {hint}")
    if expected is not None and expected > 0:
        median = float(np.median(values))
        if abs(median - expected) > 0.25 * expected:
            raise InstrumentError(
                f"{where}: {what} samples have median {median!r} but {expected:g} was programmed; "
                f"the data look mis-decoded: {hint}")
