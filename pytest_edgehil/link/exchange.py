"""One request's life on the line: send, wait for the reply with its seq, retransmit on corruption or
silence, skip stale replies, and say precisely what came back when nothing valid did.

The retry rule itself is documented in `link/client.py` and docs/protocol.md ("Retry rule"); this is its
implementation, kept apart from the client's commands. It works on the client's port and decoder, which
it reaches through the client (one exchange at a time holds the client's lock). Pipelined evaluation
(`link.pipeline`) waits for each of its requests through the same loop (`Exchange.await_reply`), with
hooks for the replies and corrupt frames that concern its other requests in flight.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_edgehil.errors import DeviceTimeout, FrameCorrupt, SequenceMismatch
from pytest_edgehil.link.messages import Frame
from pytest_edgehil.link.run_wait import PROGRESS_S

if TYPE_CHECKING:
    from pytest_edgehil.link.client import DeviceClient

from pytest_edgehil.link.traffic_log import PREVIEW_BYTES  # the same preview as the traffic log

log = logging.getLogger("pytest_edgehil.link")


class Exchange:
    """One request's life: send, wait for the reply with its seq, retransmit on corruption or silence."""

    def __init__(self, client: DeviceClient, command: str, frame: Frame, wait_s: float,
                 expected: str | Callable[[], str] = "", write: Callable[[Exchange], None] | None = None) -> None:
        self.client, self.command, self.frame, self.wait_s = client, command, frame, wait_s
        # What the wait was derived from ("expected ≈ 12 s (…)"), for messages only: a callable is formatted
        # when a message needs it, not on every request.
        self._expected = expected
        # How the request goes on the wire: the client's write, or the pipeline's full-duplex one.
        self.write = write
        self.wire = frame.encode()
        self.attempts = client.retries + 1
        self.slice_s = wait_s / self.attempts
        self.sent = 0
        # Seconds spent writing this request (all transmissions): on a slow line a retransmission takes as
        # long as the request, and the wait for its reply starts once it is on the wire, as the first's does.
        self.writing_s = 0.0
        self.started_s = time.monotonic()  # when the wait for the reply starts (pipelining moves it)
        self.bytes_received = 0
        self.preview = bytearray()
        self.tail = bytearray()  # the last TAIL_BYTES received: a boot banner after half a reply ends here
        self.corrupt = 0
        self.stale = 0
        self.stale_seqs: list[int] = []  # the first few, for the error message
        # Replies carrying this request's seq that say they answer another request (`accept`, e.g. an
        # EVAL_BATCH reply echoing another CRC-32), each with why: set by the pipeline, named at the timeout.
        self.refused: list[str] = []
        # Replies to other requests in flight that arrived while this one waited (pipelining): the line and
        # the device work, only this request went unanswered.
        self.kept = 0

    def run(self) -> Frame:
        self.send("")
        # The wait starts once the request is on the wire: on a slow line writing it takes longer than
        # `timeout_s` may allow the device to answer (64 KiB at 115200 baud: 5.7 s).
        return self.await_reply(self.started_s)

    def await_reply(self, start: float, *, on_corrupt: Callable[[FrameCorrupt], None] | None = None,
                    keep: Callable[[Frame], bool] | None = None, waiting_for: Callable[[], str] | None = None,
                    progress: bool = True, accept: Callable[[Frame], bool] | None = None,
                    stream_s: float = 0.0) -> Frame:
        """Read until the reply carrying this request's seq arrives (sent already; its wait began at
        `start`, monotonic s); return it, keeping whatever arrived behind it for the next wait.

        The retry rule: at the end of each silent wait slice this request is sent again (`attempts` in
        all); a corrupt frame is counted and logged, then handed to `on_corrupt` (default: send this
        request again, FrameCorrupt once its attempts are spent); a frame with another seq is offered to
        `keep` (True: the pipeline holds it for a younger request) and otherwise counted and skipped as
        stale, its note naming `waiting_for()`. A frame with this seq that `accept` rejects (a reply that
        says it answers another request) is treated like one with another seq. With `progress`, a long
        wait is reported every PROGRESS_S. `stream_s` (s): while a frame is arriving (bytes read, its
        delimiter not yet), the next retransmission and the deadline stay at least `slice_s` after the last
        bytes, up to `start + wait_s + stream_s`: a long reply on a slow line is not sent for again (each
        replay holds the line as long) nor given up on halfway.
        Raises DeviceTimeout (SequenceMismatch when only stale replies came) at that deadline.
        """
        c = self.client
        deadline = start + self.wait_s
        latest = deadline + stream_s
        written_s = self.writing_s  # writing retransmissions pauses the wait (below)
        resend_at = start + self.slice_s
        progress_at = start + PROGRESS_S if progress else math.inf
        while True:
            if self.writing_s > written_s:  # a retransmission was written: that time was no wait for a reply
                paused_s, written_s = self.writing_s - written_s, self.writing_s
                deadline, latest, resend_at = deadline + paused_s, latest + paused_s, resend_at + paused_s
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout()
            if now >= progress_at:  # a long run (a slow board, a 10 s energy window): say it is alive
                self._progress(now - start)
                progress_at = now + PROGRESS_S
            if now >= resend_at and self.sent < self.attempts:
                self.send(f"no reply within {self.slice_s:.3g} s")
                resend_at = now + self.slice_s  # moved on by the time writing took, at the loop's top
            items, c._backlog = c._backlog, []
            if not items:
                data = c._read_some(min(deadline, resend_at) if self.sent < self.attempts else deadline)
                self.bytes_received += len(data)
                self.preview += data[:PREVIEW_BYTES - len(self.preview)]
                self.tail = (self.tail + data)[-TAIL_BYTES:]
                items = c._decoder.feed(data) if data else []
                if data and stream_s and c._decoder.pending_bytes:  # a frame still arriving
                    later = min(time.monotonic() + self.slice_s, latest)
                    deadline, resend_at = max(deadline, later), max(resend_at, later)
            for i, item in enumerate(items):
                if isinstance(item, FrameCorrupt):
                    c.stats.corrupt_frames += 1
                    c.traffic_log.note("rx", f"corrupt frame: {item}", device=c.name)
                    resend_at = time.monotonic() + self.slice_s  # plus any writing, at the loop's top
                    (on_corrupt or self.resend_after_corrupt)(item)
                    continue
                c.traffic_log.record_frame("rx", item, device=c.name)
                if item.seq == self.frame.seq and (accept is None or accept(item)):
                    c._backlog = items[i + 1:]  # keep anything that arrived behind the reply
                    return item
                if keep is not None and keep(item):
                    self.kept += 1
                    continue
                self.stale += 1
                c.stats.stale_replies += 1
                if len(self.stale_seqs) < 8:
                    self.stale_seqs.append(item.seq)
                waiting = waiting_for() if waiting_for is not None else f"waiting for seq={self.frame.seq}"
                c.traffic_log.note("rx", f"skipped stale reply seq={item.seq} ({waiting})", device=c.name)

    def resend_after_corrupt(self, last: FrameCorrupt) -> None:
        """A corrupt frame that may have been this request's reply: send it again, or raise FrameCorrupt
        once every attempt was sent."""
        self.corrupt += 1
        if self.sent >= self.attempts:
            raise self._corrupt_error(last)
        self.send(f"corrupt reply ({self.corrupt} so far)")

    def send(self, reason: str) -> None:
        """Put the request on the wire (`reason` given: a retransmission, counted and logged with it)."""
        c = self.client
        if reason:
            c.stats.retransmissions += 1
            c.traffic_log.note("tx", f"retransmit seq={self.frame.seq} ({reason})", device=c.name)
        c.traffic_log.record_frame("tx", self.frame, device=c.name)
        began = time.monotonic()
        try:
            if self.write is None:
                c._write(self.command, self.wire)
            else:
                self.write(self)
        finally:
            # On the wire once written, and not before its line time at the baud rate: a network port
            # (socket://, rfc2217://) takes the request into a TCP buffer at once, and the UART behind it
            # carries it for that long (64 KiB at 115200 baud: 5.7 s) before the device can answer.
            on_wire = max(time.monotonic(), began + c.line_time_s(len(self.wire)))
            self.writing_s += on_wire - began
        if not reason:  # the first transmission: the reply's wait starts once it is on the wire
            self.started_s = on_wire
        self.sent += 1

    @property
    def expected(self) -> str:
        return self._expected() if callable(self._expected) else self._expected

    def _progress(self, waited_s: float) -> None:
        c = self.client
        text = (f"still waiting for {self.command} (seq {self.frame.seq}): {waited_s:.0f} s of at most "
                f"{self.wait_s:.3g} s" + (f"; {self.expected}" if self.expected else ""))
        c.traffic_log.note("--", text, device=c.name)
        log.info("device %r: %s", c.name, text)

    def _corrupt_error(self, last: FrameCorrupt) -> FrameCorrupt:
        c = self.client
        return FrameCorrupt(
            f"device {c.name!r} on {c.port} at {c.baudrate} baud: {self.corrupt} corrupt reply frames to "
            f"{self.command} (seq {self.frame.seq}) after {self.sent - 1} retransmissions; last: {last}. The line "
            "drops or flips bytes: check the cable and grounding, the baud rate, or lower the baud rate.")

    def _timeout(self) -> DeviceTimeout:
        c = self.client
        if self.refused and not self.corrupt:
            # Replies did carry this seq, but each said it answers another request: name what they said.
            return SequenceMismatch(
                f"device {c.name!r} on {c.port}: waited {self.wait_s:.3g} s for the reply to {self.command} "
                f"(seq {self.frame.seq}, {self.sent} transmissions); {len(self.refused)} replies carried its seq "
                f"but not this request's identity: {self.refused[0]}. The firmware answers under this seq with "
                "something it computed wrongly or for another request; nothing from them was recorded. Check "
                "its reply against docs/protocol.md, update the firmware, then rerun.")
        if self.stale and not self.corrupt:
            # Frames did arrive, well formed, but never for this request: say so with the numbers.
            return SequenceMismatch(
                f"device {c.name!r} on {c.port}: waited {self.wait_s:.3g} s for the reply to {self.command} "
                f"(seq {self.frame.seq}, {self.sent} transmissions) but received only {self.stale} replies "
                f"carrying other sequence numbers ({', '.join(str(s) for s in self.stale_seqs)}). The device "
                "answers late, replays old replies, or another program shares the port: check that nothing "
                "else holds the port, reset the device, or raise timeout_s.")
        got = f"received {self.bytes_received} bytes"
        if self.preview:
            got += f" (first {len(self.preview)}: {self.preview.hex(' ')})"
        if self.bytes_received == 0:
            fix = ("Nothing came back: check the cable and that this is the right port, the baud rate, and that "
                   "the firmware/agent is running on the device.")
        elif self.kept:
            fix = (f"The device answered {self.kept} later requests in flight but not this one: it hung in this "
                   "request, or lost it and every retransmission; reset the device.")
        elif (text := line_text(self.preview, self.tail)) is not None and not self.stale:
            # Readable lines are printed at the right rate: a wrong one garbles them (bench-facts).
            fix = (f"The line carries text ({text!r}), printed at the right baud rate: a boot banner (the board "
                   f"reset during {self.command}; what it held in RAM, its active model and inputs, is gone) or a "
                   "console or log on the protocol UART. Reset the board and rerun; if it persists, move the "
                   "firmware's console off this port.")
        elif self.corrupt and not self.stale:
            fix = (f"Bytes arrived but never a valid frame: suspect a baud rate mismatch (host uses "
                   f"{c.baudrate}) or firmware that does not speak this protocol.")
        elif self.stale:
            fix = ("Only replies to earlier requests arrived: the device answers late; raise timeout_s or reset "
                   "the device.")
        else:
            fix = ("Bytes arrived but never a complete frame: suspect a baud rate mismatch (host uses "
                   f"{c.baudrate}) or firmware that does not speak this protocol.")
        waited = f"{self.wait_s:.3g} s" + (f", {self.expected}" if self.expected else "")
        if self.writing_s >= 0.1:  # a slow line: the wait did not count the time writing took
            waited += f"; not counting {self.writing_s:.3g} s writing the request"
        return DeviceTimeout(
            f"device {c.name!r} on {c.port} at {c.baudrate} baud did not answer {self.command} (seq "
            f"{self.frame.seq}) within {waited} ({self.sent} transmissions); {got}. {fix}")


# Fewer readable bytes than this can be garbage by chance (each byte printable with p = 0.38).
TEXT_MIN_BYTES = 8
TAIL_BYTES = 64
TAIL_TEXT_MIN_BYTES = 16  # a printable run ending the bytes received: 0.38^16 ≈ 2e-7 for garbage
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def line_text(received: bytes | bytearray, tail: bytes | bytearray = b"") -> str | None:
    """The text on the line, frame delimiters aside: `received` (the first bytes) when it is all printable
    ASCII and CR/LF/tab, at least TEXT_MIN_BYTES of it (eight random bytes pass with p = 0.38^8 ≈ 4e-4), else
    the printable run that ends `tail` (the last bytes) when it is at least TAIL_TEXT_MIN_BYTES long (a board
    that reset while writing a reply: half a frame, then its banner); else None."""
    data = bytes(received).replace(b"\x00", b"")
    if len(data) >= TEXT_MIN_BYTES and set(data) <= _TEXT_BYTES:
        return data.decode("ascii")
    last = bytes(tail).replace(b"\x00", b"")
    start = len(last)
    while start > 0 and last[start - 1] in _TEXT_BYTES:
        start -= 1
    return last[start:].decode("ascii") if len(last) - start >= TAIL_TEXT_MIN_BYTES else None
