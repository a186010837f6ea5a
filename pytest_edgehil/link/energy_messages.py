"""ENERGY_READ → ENERGY_COUNTERS: an agent's on-board energy counters bracketing its last RUN.

Optional, behind the HELLO capability `energy_read` (docs/protocol.md, "On-board energy"): a host sends
ENERGY_READ only to a device that advertises it, so a version 2 board without it never sees the type and
the protocol version stays 2. Codec only, no I/O; registered in `messages.MESSAGE_TYPES` like the rest.

The agent reads every counter just before the first inference of a RUN and just after the last, on its
own monotonic clock, and unwraps wrapping counters (RAPL) itself by reading them often enough during the
RUN; values are therefore monotonic µJ and a host never sees a wrap. ENERGY_COUNTERS carries, per counter,
those two readings and what bounds the counter's error (resolution, update period).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pytest_edgehil.link.framing import MsgType
from pytest_edgehil.link.message_base import Message, register
from pytest_edgehil.link.payload import PayloadReader, string_field

CAPABILITY = "energy_read"
METHOD_COUNTER, METHOD_INTEGRATED = 0, 1  # read from a counter | trapezoid over a power-only rail's samples
_NUMBERS = struct.Struct("<BddQQQQ")


@register(MsgType.ENERGY_READ)
@dataclass(frozen=True)
class EnergyRead(Message):
    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> EnergyRead:
        PayloadReader(payload, "ENERGY_READ").done()
        return cls()


@dataclass(frozen=True)
class CounterWindow:
    """One counter over the last RUN: `counter_id` (e.g. `intel-rapl:0:package-0`), `label` for records
    ("RAPL package-0"), `method` (METHOD_*), `resolution_uj`, `update_us` (how often its value changes;
    integrated rails: their update interval plus the largest gap between the agent's samples), the
    readings at the RUN's start and end (µJ, board monotonic µs) and `note` (empty, or why this window
    is unusable: a read failed, a wrap could not be told apart)."""

    counter_id: str
    label: str
    method: int
    resolution_uj: float
    update_us: float
    start_uj: int
    start_us: int
    end_uj: int
    end_us: int
    note: str = ""


@register(MsgType.ENERGY_COUNTERS)
@dataclass(frozen=True)
class EnergyCounters(Message):
    """`run_count` inferences in the RUN the windows bracket (0: no RUN yet, and no windows)."""

    run_count: int
    windows: tuple[CounterWindow, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", tuple(self.windows))

    def encode_payload(self) -> bytes:
        out = struct.pack("<IB", self.run_count, len(self.windows))
        for w in self.windows:
            out += string_field(w.counter_id, "counter id") + string_field(w.label, "counter label")
            out += _NUMBERS.pack(w.method, w.resolution_uj, w.update_us, w.start_uj, w.start_us, w.end_uj, w.end_us)
            out += string_field(w.note, "counter note")
        return out

    @classmethod
    def decode_payload(cls, payload: bytes) -> EnergyCounters:
        r = PayloadReader(payload, "ENERGY_COUNTERS")
        run_count, n = r.unpack("IB", "run count/counter count")
        windows = []
        for _ in range(n):
            counter_id, label = r.string("counter id"), r.string("counter label")
            method, resolution_uj, update_us, start_uj, start_us, end_uj, end_us = r.unpack(
                _NUMBERS.format.lstrip("<"), "counter readings")
            windows.append(CounterWindow(counter_id, label, method, resolution_uj, update_us, start_uj, start_us,
                                         end_uj, end_us, r.string("counter note")))
        r.done()
        return cls(run_count, tuple(windows))
