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

from pytest_edgehil.link.framing import Frame, type_name

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


# What the ring holds per event: (t_s, device, direction, seq, type, payload length, first bytes, note).
# Plain tuples, the preview still raw bytes: the hex text and the TrafficEntry are made only when someone
# reads the log (a failed test), so a passing test pays one tuple per frame.
_Raw = tuple[float, str, str, "int | None", int, int, bytes, str]


class TrafficLog:
    """Thread-safe ring buffer of the last `maxlen` traffic events."""

    def __init__(self, maxlen: int = 2000) -> None:
        self._entries: deque[_Raw] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._t0_s = time.monotonic()  # lines show seconds since the log was created (or cleared)

    def record_frame(self, direction: str, frame: Frame, *, device: str = "device") -> None:
        """Record a frame sent ("tx") or received ("rx")."""
        self._add((time.monotonic(), device, direction, frame.seq, frame.msg_type, len(frame.payload),
                   bytes(frame.payload[:PREVIEW_BYTES + 1]), ""))

    def note(self, direction: str, text: str, *, device: str = "device", raw: bytes = b"") -> None:
        """Record an event that is not a good frame (a corrupt frame, a retransmission, a stale reply)."""
        self._add((time.monotonic(), device, direction, None, -1, len(raw), bytes(raw[:PREVIEW_BYTES + 1]), text))

    def _add(self, raw: _Raw) -> None:
        with self._lock:
            self._entries.append(raw)
            t0_s = self._t0_s
        logger = logging.getLogger(f"pytest_edgehil.serial.{raw[1]}")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", self._format(_entry(raw), t0_s))

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
            return [_entry(raw) for raw in self._entries]

    def lines(self) -> list[str]:
        with self._lock:
            raws, t0_s = list(self._entries), self._t0_s
        return [self._format(_entry(raw), t0_s) for raw in raws]

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


def _entry(raw: _Raw) -> TrafficEntry:
    """A recorded event as the TrafficEntry readers see, preview as hex ("…" when the payload is longer)."""
    t_s, device, direction, seq, msg_type, payload_len, head, note = raw
    preview = head[:PREVIEW_BYTES].hex(" ") + (" …" if len(head) > PREVIEW_BYTES else "")
    if note:
        return TrafficEntry(t_s, device, direction, note=note, payload_len=payload_len, preview_hex=preview)
    return TrafficEntry(t_s, device, direction, seq, type_name(msg_type), payload_len, preview)
