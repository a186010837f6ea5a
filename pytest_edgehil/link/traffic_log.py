"""A bounded log of serial frames, attached to a failing test's report.

When a hardware test fails the first question is "what went over the wire?". The client records every
frame it sends and receives here (and every corrupt frame, retransmission and skipped stale reply), and
the plugin prints `.text()` under the failed test. Each line also goes to the
`pytest_edgehil.serial.<device>` logger at DEBUG, so `--log-level=DEBUG` shows traffic live.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from pytest_edgehil.link.framing import Frame

PREVIEW_BYTES = 32


@dataclass(frozen=True)
class TrafficEntry:
    """One recorded event: a frame sent ("tx") or received ("rx"), or a note ("--")."""

    t_s: float  # time.monotonic() when recorded
    device: str
    direction: str
    seq: int | None = None
    type_name: str = ""
    payload_len: int = 0
    preview_hex: str = ""
    note: str = ""


class TrafficLog:
    """Thread-safe ring buffer of the last `maxlen` traffic events."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._entries: deque[TrafficEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._t0_s = time.monotonic()  # lines show seconds since the log was created (or cleared)

    def record_frame(self, direction: str, frame: Frame, *, device: str = "device") -> None:
        """Record a frame sent ("tx") or received ("rx")."""
        preview = bytes(frame.payload[:PREVIEW_BYTES]).hex(" ")
        if len(frame.payload) > PREVIEW_BYTES:
            preview += " …"
        self._add(TrafficEntry(time.monotonic(), device, direction, frame.seq, frame.type_name,
                               len(frame.payload), preview))

    def note(self, direction: str, text: str, *, device: str = "device", raw: bytes = b"") -> None:
        """Record an event that is not a good frame (a corrupt frame, a retransmission, a stale reply)."""
        preview = bytes(raw[:PREVIEW_BYTES]).hex(" ") + (" …" if len(raw) > PREVIEW_BYTES else "")
        self._add(TrafficEntry(time.monotonic(), device, direction, note=text, payload_len=len(raw),
                               preview_hex=preview))

    def _add(self, entry: TrafficEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            t0_s = self._t0_s
        logger = logging.getLogger(f"pytest_edgehil.serial.{entry.device}")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", self._format(entry, t0_s))

    @staticmethod
    def _format(entry: TrafficEntry, t0_s: float) -> str:
        stamp = f"{entry.t_s - t0_s:10.6f}s {entry.direction}"
        if entry.note:
            tail = f" [{entry.payload_len} bytes] {entry.preview_hex}" if entry.preview_hex else ""
            return f"{stamp} {entry.note}{tail}"
        return (f"{stamp} seq={entry.seq:<5} {entry.type_name:<12} len={entry.payload_len:<7} "
                f"{entry.preview_hex}").rstrip()

    @property
    def entries(self) -> list[TrafficEntry]:
        with self._lock:
            return list(self._entries)

    def lines(self) -> list[str]:
        with self._lock:
            entries, t0_s = list(self._entries), self._t0_s
        return [self._format(e, t0_s) for e in entries]

    def text(self) -> str:
        lines = self.lines()
        return "\n".join(lines) if lines else "(no serial traffic recorded)"

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._t0_s = time.monotonic()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
