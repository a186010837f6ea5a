"""IEEE 488.2 status reporting as an instrument keeps it: the error queue, the Standard Event Status
Register (ESR) with its enable mask (ESE), and the Status Byte (STB) with its enable mask (SRE).

An error queued here also sets its ESR bit (SCPI-99 21.8: -1xx command error, bit 5; -2xx execution
error, bit 4; -3xx and positive device-specific errors, bit 3; -4xx query error, bit 2). `*ESR?`
reads and clears the ESR; `*STB?` reads without clearing: bit 2 = error queue not empty, bit 5 = an
enabled ESR bit is set, bit 6 = master summary (an enabled STB bit is set). `*CLS` clears the queue
and the ESR, not the masks. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import deque

NO_ERROR = (0, "No error")
QUEUE_OVERFLOW = (-350, "Queue overflow")

OPC_BIT, QUERY_ERROR_BIT, DEVICE_ERROR_BIT, EXECUTION_ERROR_BIT, COMMAND_ERROR_BIT = 1, 4, 8, 16, 32
ERROR_QUEUE_BIT, ESB_BIT, MSS_BIT = 4, 32, 64


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

    def __init__(self, queue_size: int = 32) -> None:
        self._lock = threading.Lock()
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
            return value | (MSS_BIT if value & self.sre & ~MSS_BIT else 0)

    def clear(self) -> None:
        """`*CLS`: empty the error queue and clear the event register (the masks stay)."""
        with self._lock:
            self._queue.clear()
            self.esr = 0
