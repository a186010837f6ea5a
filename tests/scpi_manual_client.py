"""A SCPI client written from the instruments' programming manuals alone, as a lab engineer's own pyvisa script
would be: raw writes and queries through pyvisa-py, its own IEEE 488.2 block reader, its own error-queue parser and
the manuals' numbers (status bits, limits, the interval rounding rule) restated here from the documents.

Nothing here imports pytest_edgehil: tests drive the analyzer twins with it, so a twin shaped to agree with our
drivers (the twins build their dialects from the drivers' declarations) shows up as a disagreement with the
manual instead of passing. Sources, by section:

- Keysight N6705C Operating and Service Guide (ch. 7 "SCPI Programming Reference"): "Status Tutorial →
  Operation Status Group" (p. 350), "Standard Event Status Group" / "Status Byte Register" (p. 351),
  "Command Separators and Terminators" (p. 227).
- Keysight N6700C-series Operating and Service Guide (N6701C), "Operation Status Group" (p. 309): the
  same register with bit 3 WTG-meas (the N6705C table lists bit 3 as not used).
- Keysight N6705C User's Guide ch. 6 "Advanced Source, Measurement, and Control", p. 213: the digitizer's
  interval table and rounding, pre-trigger offset.
- Keysight power-supply programming guides' `*OPC` text (e.g. 6811C Programming Guide p. 210, the family's
  template): pending operations are complete when "all triggered actions are completed and the trigger
  system returns to the Idle state"; `*OPC?` holds off later commands until then.
- IEEE 488.2 7.7.6 (definite-length arbitrary block: `#`, one digit n, n digits of length, the bytes) and
  SCPI-99 vol. 2 ch. 21 (error numbers and texts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyvisa

# --- SCPI-99 ch. 21: the standard error numbers and texts --------------------------------------------
NO_ERROR = (0, "No error")
UNDEFINED_HEADER = (-113, "Undefined header")
MISSING_PARAMETER = (-109, "Missing parameter")
TRIGGER_IGNORED = (-211, "Trigger ignored")
SETTINGS_CONFLICT = (-221, "Settings conflict")
DATA_OUT_OF_RANGE = (-222, "Data out of range")
ILLEGAL_PARAMETER_VALUE = (-224, "Illegal parameter value")
DATA_CORRUPT_OR_STALE = (-230, "Data corrupt or stale")

# --- N6705C Operating and Service Guide p. 350, Operation Status Group (STAT:OPER:COND?) -----------------
N6705C_CV = 1  # output is in constant voltage
N6705C_CC = 2  # output is in constant current
N6705C_OFF = 4  # output is programmed off
N6705C_WTG_MEAS = 8  # N6700C-series guide p. 309: measurement system waiting for a trigger (N6705C: "not used")
N6705C_WTG_TRAN = 16  # transient system is waiting for a trigger
N6705C_MEAS_ACTIVE = 32  # measurement system is initiated
N6705C_TRAN_ACTIVE = 64  # transient system is initiated

# --- N6705C User's Guide p. 213: the digitizer ---------------------------------------------------------
N6705C_TINT_ONE_PARAMETER_S = 5.12e-6  # shortest interval, 1 parameter, N678xA SMU only
N6705C_TINT_TWO_PARAMETERS_S = 10.24e-6  # 1 or 2 parameters, all models


def n6705c_rounded_interval_s(requested_s: float, resolution: str = "RES20") -> float:
    """What the N6705C runs for `SENS:SWE:TINT requested_s`, worked from the User's Guide p. 213 sentence by
    sentence: 10.24 up to 20.48 us to the nearest 10.24 us increment; above 20.48 us to the nearest 20.48 us
    increment at RES20; above 40.96 us to the nearest 40.96 us increment at RES40 (RES40 between 20.48 and
    40.96 us: as RES20, the guide says nothing else)."""
    us = requested_s * 1e6
    if us <= 20.48 + 1e-9:
        step = 10.24 if us >= 10.24 - 1e-9 else 5.12
    elif resolution == "RES40" and us > 40.96 + 1e-9:
        step = 40.96
    else:
        step = 20.48
    return max(1, math.floor(us / step + 0.5)) * step * 1e-6


@dataclass
class ManualSession:
    """One raw pyvisa session to an instrument, LF-terminated, as a user's script opens it."""

    handle: pyvisa.resources.MessageBasedResource

    @classmethod
    def open(cls, manager: pyvisa.ResourceManager, resource: str, *, timeout_ms: int = 5000) -> ManualSession:
        handle = manager.open_resource(resource, read_termination="\n", write_termination="\n", timeout=timeout_ms)
        return cls(handle)  # type: ignore[arg-type]

    def close(self) -> None:
        self.handle.close()

    def write(self, command: str) -> None:
        self.handle.write(command)

    def query(self, command: str) -> str:
        return self.handle.query(command).strip()

    def error(self) -> tuple[int, str]:
        """One entry of the error queue: `<code>,"<text>"` (SCPI-99 21.8)."""
        code, _, text = self.query("SYST:ERR?").partition(",")
        return int(code), text.strip().strip('"')

    def errors(self, limit: int = 40) -> list[tuple[int, str]]:
        """Every queued entry, read until `0,"No error"` (that one not included)."""
        found: list[tuple[int, str]] = []
        for _ in range(limit):
            entry = self.error()
            if entry[0] == 0:
                return found
            found.append(entry)
        raise AssertionError(f"the error queue did not empty after {limit} reads: {found[-3:]}")

    def status(self, channel: int = 1) -> int:
        return int(self.query(f"STAT:OPER:COND? (@{channel})"))

    def read_block(self) -> bytes:
        """Read one IEEE 488.2 definite-length block reply and its LF terminator; the payload bytes.

        AssertionError for anything else (an indefinite block, a length that is not digits, no LF after)."""
        head = self.handle.read_bytes(2)
        assert head[:1] == b"#", f"a block starts with '#', got {head!r}"
        digits = int(head[1:2])
        assert 1 <= digits <= 9, f"a definite-length block gives 1-9 length digits, got {head!r}"
        length_text = self.handle.read_bytes(digits)
        assert length_text.isdigit(), f"the block length is decimal digits, got {length_text!r}"
        length = int(length_text)
        payload = self.handle.read_bytes(length) if length else b""
        assert self.handle.read_bytes(1) == b"\n", "a response message ends in LF after the block"
        return payload

    def query_float32_block(self, command: str, *, big_endian: bool) -> np.ndarray:
        """`command`'s block as float32 in the byte order stated (`FORM:BORD NORM` = big-endian)."""
        self.write(command)
        payload = self.read_block()
        assert len(payload) % 4 == 0, f"{len(payload)} bytes is no whole number of float32 values"
        return np.frombuffer(payload, dtype=">f4" if big_endian else "<f4").astype(np.float64)
