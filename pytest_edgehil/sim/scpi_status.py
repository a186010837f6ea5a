"""IEEE 488.2 status reporting as an instrument keeps it: the error queue, the Standard Event Status
Register (ESR) with its enable mask (ESE), and the Status Byte (STB) with its enable mask (SRE).

An error queued here also sets its ESR bit (SCPI-99 21.8: -1xx command error, bit 5; -2xx execution
error, bit 4; -3xx and positive device-specific errors, bit 3; -4xx query error, bit 2). `*ESR?`
reads and clears the ESR; `*STB?` reads without clearing: bit 2 = error queue not empty, bit 5 = an
enabled ESR bit is set, bit 6 = master summary (an enabled STB bit is set). `*CLS` clears the queue
and the ESR, not the masks. Thread-safe.

Where a twin has one (the NGM202's FastLog), `StatusTree` adds SCPI-99's OPERation register hierarchy
(section 20): each register has a condition, transition filters (PTRansition/NTRansition) that latch
condition changes into its EVENt register (cleared by reading), and an ENABle mask; an enabled event
summarises into one bit of the parent's condition: `ISUMmary<n>` into bit n of `:INSTrument`, that
into bit 13 of `STATus:OPERation`, that into bit 7 of the status byte (`*STB?`). The chain is the one
R&S's NGM20x FastLog example walks (docs/instruments.md).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from pytest_edgehil.instruments.scpi_header import parse_header, split_header

NO_ERROR = (0, "No error")
QUEUE_OVERFLOW = (-350, "Queue overflow")

OPC_BIT, QUERY_ERROR_BIT, DEVICE_ERROR_BIT, EXECUTION_ERROR_BIT, COMMAND_ERROR_BIT = 1, 4, 8, 16, 32
ERROR_QUEUE_BIT, ESB_BIT, MSS_BIT, OPERATION_BIT = 4, 32, 64, 128
#: Bit 13 of STATus:OPERation: the INSTrument summary (R&S NGL/NGM "Status Reporting System").
INSTRUMENT_SUMMARY_BIT = 1 << 13
ALL_ONES = 0x7FFF  # a 16-bit SCPI register's usable bits (bit 15 is never used)


def esr_bit(code: int) -> int:
    """The ESR bit an error code sets."""
    if -199 <= code <= -100:
        return COMMAND_ERROR_BIT
    if -299 <= code <= -200:
        return EXECUTION_ERROR_BIT
    if -499 <= code <= -400:
        return QUERY_ERROR_BIT
    return DEVICE_ERROR_BIT


class StatusRegisters:
    """One instrument's error queue and IEEE 488.2 status registers."""

    def __init__(self, queue_size: int = 32, *, tree: StatusTree | None = None) -> None:
        self._lock = threading.Lock()
        self.tree = tree  # the OPERation hierarchy, where the instrument has one (its own lock)
        self._queue: deque[tuple[int, str]] = deque()
        self._size = queue_size
        self.esr = 0
        self.ese = 0
        self.sre = 0

    def queue(self, error: tuple[int, str]) -> None:
        """Queue an error (the last entry becomes -350 when the queue is full) and set its ESR bit."""
        with self._lock:
            self.esr |= esr_bit(error[0])
            if len(self._queue) < self._size - 1:
                self._queue.append(error)
            elif len(self._queue) == self._size - 1:
                self._queue.append(QUEUE_OVERFLOW)

    def next_error(self) -> tuple[int, str]:
        with self._lock:
            return self._queue.popleft() if self._queue else NO_ERROR

    def pending_errors(self) -> int:
        with self._lock:
            return len(self._queue)

    def set_event(self, bit: int) -> None:
        with self._lock:
            self.esr |= bit

    def read_esr(self) -> int:
        """`*ESR?`: the register's value; reading clears it."""
        with self._lock:
            value, self.esr = self.esr, 0
            return value

    def stb(self) -> int:
        """`*STB?`: the status byte (not cleared by reading)."""
        with self._lock:
            value = (ERROR_QUEUE_BIT if self._queue else 0) | (ESB_BIT if self.esr & self.ese else 0)
            if self.tree is not None and self.tree.summary():
                value |= OPERATION_BIT
            return value | (MSS_BIT if value & self.sre & ~MSS_BIT else 0)

    def clear(self) -> None:
        """`*CLS`: empty the error queue and clear every event register (the masks stay)."""
        with self._lock:
            self._queue.clear()
            self.esr = 0
        if self.tree is not None:
            self.tree.clear_events()


@dataclass
class Register:
    """One SCPI-99 status register: condition, transition filters, latched event, enable mask."""

    condition: int = 0
    event: int = 0
    enable: int = 0
    ptransition: int = ALL_ONES  # a 0 -> 1 condition change of these bits latches its event bit
    ntransition: int = 0  # a 1 -> 0 change of these bits latches its event bit

    def set_condition(self, value: int) -> None:
        rising, falling = value & ~self.condition, self.condition & ~value
        self.event |= (rising & self.ptransition) | (falling & self.ntransition)
        self.condition = value

    def read_event(self) -> int:
        value, self.event = self.event, 0
        return value

    @property
    def summary(self) -> bool:
        """The bit this register sets in its parent: an enabled event is latched."""
        return bool(self.event & self.enable)


#: Fields of a register a client can address, as SCPI-99 writes them ([:EVENt] is the default).
FIELDS = {"EVENt": "event", "CONDition": "condition", "ENABle": "enable", "PTRansition": "ptransition",
          "NTRansition": "ntransition"}
_PATHS = {"OPER": "STATus:OPERation", "INST": "STATus:OPERation:INSTrument",
          "ISUM": "STATus:OPERation:INSTrument:ISUMmary<n>"}
_HEADERS = [(parse_header(f"{path}:{name}" if name != "EVENt" else f"{path}[:EVENt]"), register, field)
            for register, path in _PATHS.items() for name, field in FIELDS.items()]


class StatusTree:
    """`STATus:OPERation` → `:INSTrument` → `:ISUMmary<n>` (n = 1..channels), kept consistent on every
    change: a channel's condition bit (`set_channel_bit`) latches through the filters and summarises
    upwards. Thread-safe (the FastLog thread offers chunks while the client reads registers)."""

    def __init__(self, channels: int) -> None:
        self._lock = threading.RLock()
        self.channels = channels
        self.operation = Register()
        self.instrument = Register(enable=ALL_ONES)  # device-dependent: enabled after STAT:PRES
        self.isummary = {n: Register(enable=ALL_ONES) for n in range(1, channels + 1)}

    def lookup(self, header: str) -> tuple[Register, str] | None:
        """(register, field) a received header names (any SCPI form); None if none or no such channel."""
        tokens = split_header(header)
        for parsed, name, field in _HEADERS:
            suffixes = parsed.match(tokens)
            if suffixes is None:
                continue
            if name == "ISUM":
                channel = suffixes[0] if suffixes else 1
                return (self.isummary[channel], field) if channel in self.isummary else None
            return (self.operation if name == "OPER" else self.instrument), field
        return None

    def read(self, register: Register, field: str) -> int:
        """A query: the field's value (reading EVENt clears it, and the summaries follow)."""
        with self._lock:
            value = register.read_event() if field == "event" else int(getattr(register, field))
            self._propagate()
            return value

    def write(self, register: Register, field: str, value: int) -> None:
        """ENABle/PTRansition/NTRansition (ValueError for CONDition or EVENt, which are read-only)."""
        if field in ("event", "condition"):
            raise ValueError(f"{field} is read-only")
        with self._lock:
            setattr(register, field, value & ALL_ONES)
            self._propagate()

    def set_channel_bit(self, channel: int, bit: int, on: bool) -> None:
        """A device condition of one channel changed (FastLog: bit 12, a chunk is ready)."""
        with self._lock:
            register = self.isummary[channel]
            register.set_condition(register.condition | bit if on else register.condition & ~bit)
            self._propagate()

    def condition(self, channel: int) -> int:
        with self._lock:
            return self.isummary[channel].condition

    def summary(self) -> bool:
        """Bit 7 of the status byte: an enabled OPERation event is latched."""
        with self._lock:
            return self.operation.summary

    def clear_events(self) -> None:
        """`*CLS`: every event register cleared (conditions and masks stay)."""
        with self._lock:
            for register in (self.operation, self.instrument, *self.isummary.values()):
                register.event = 0
            self._propagate()

    def preset(self) -> None:
        """`STATus:PRESet` (SCPI-99 20.7): OPERation enable 0, device-dependent enables all ones,
        positive transitions on, negative ones off."""
        with self._lock:
            for register in (self.operation, self.instrument, *self.isummary.values()):
                register.enable = 0 if register is self.operation else ALL_ONES
                register.ptransition, register.ntransition = ALL_ONES, 0
            self._propagate()

    def _propagate(self) -> None:
        """Each enabled event summarised into its parent's condition (lock held), bottom up."""
        bits = sum(1 << n for n, register in self.isummary.items() if register.summary)
        self.instrument.set_condition(bits)
        operation = self.operation.condition & ~INSTRUMENT_SUMMARY_BIT
        self.operation.set_condition(operation | (INSTRUMENT_SUMMARY_BIT if self.instrument.summary else 0))
