"""Reading a FastLog stream as R&S documents it: poll the chunk flag, read each chunk in time.

R&S's NGM20x FastLog example (`Rohde-Schwarz/Examples`, `Powersupplies/Python/RsInstrument/
RSInstrument_NGM200_FastLog.py`, FW 03.034): FastLog data come in chunks every 250 ms whatever the
sample rate, each flagged by bit 12 of `STATus:OPERation:INSTrument:ISUMmary<n>`, read with
`FLOG:DATA?` (a definite-length block of little-endian float32 V, I pairs); a chunk not picked up
before the next one is ready is overwritten. A meter cannot wait in between (a RUN takes seconds on
hardware), so a `FastLogReader` thread owns the VISA link from `FLOG 1` until it holds enough samples.

A lost chunk is detected from the documented schedule, not guessed from the data. Chunks are offered
P = 250 ms apart and each is kept until the next one is offered, so two chunks we read were offered
exactly P apart if none was lost between them and at least 2·P apart if one was. The reader brackets
each chunk's offer time by its own polls: after the last poll that saw the flag clear (q) and at or
before the poll that saw it set (h). If the m-th chunk's h minus the (m-1)-th chunk's q reaches 2·P,
a chunk between them may have been overwritten and the stream is refused (`StreamGap`). A lossless
stream is refused only when the reader's polls around two chunks are more than P late in all — a
reader that late nearly lost a chunk anyway. The first chunk has no predecessor: where FastLog
started is not known (a first chunk overwritten before any read looks like a late start), which is
why the trace's t = 0 is its first sample and the RUN is placed from the trace itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from pytest_edgehil.errors import EdgeHILError, StreamGap
from pytest_edgehil.instruments.replies import parse_status
from pytest_edgehil.instruments.visa_link import VisaLink

CHUNK_PERIOD_S = 0.25  # R&S: "chunks every 250 ms, independent of the sample rate"
CHUNK_READY_BIT = 4096  # bit 12 of STAT:OPER:INST:ISUM<n>: FastLog data available


class FastLogReader:
    """A thread polling `status_query` and reading `data_query` chunks until `points` pairs are held.

    `started_s` is the host's monotonic time just before `FLOG 1` was sent. Errors (a gap, a bad reply,
    a timeout) are kept and raised by `result()`; `stop()` ends the thread early.
    """

    def __init__(self, link: VisaLink, *, status_query: str, data_query: str, points: int, started_s: float,
                 where: str, poll_s: float = 0.005, chunk_period_s: float = CHUNK_PERIOD_S,
                 big_endian: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.status_query = status_query
        self.data_query = data_query
        self.points = points
        self.started_s = started_s
        self.where = where
        self.poll_s = poll_s
        self.chunk_period_s = chunk_period_s
        self.big_endian = big_endian  # R&S: little-endian; True only by a driver's (mistaken) override
        self.clock = clock
        self.chunks: list[np.ndarray] = []  # each: float64 V, I, V, I, ...
        self.pairs = 0
        self.error: BaseException | None = None
        self._clear_s = started_s  # the last poll that saw no chunk flagged (bounds an offer from below)
        self._previous_clear_s: float | None = None  # that bound for the chunk read before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"fastlog-reader {where}")

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s`; True if the reader has finished."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def result(self) -> np.ndarray:
        """The first `points` (V, I) pairs as float64 V, I, V, I, ...; the reader's error if it failed."""
        if self.error is not None:
            raise self.error
        values = np.concatenate(self.chunks) if self.chunks else np.zeros(0)
        return values[:2 * self.points]

    def _run(self) -> None:
        try:
            while self.pairs < self.points and not self._stop.is_set():
                seen_s = self.clock()
                bits = self.link.query_checked(self.status_query, lambda text: parse_status(
                    text, resource=self.link.name, command=self.status_query))
                if bits & CHUNK_READY_BIT:
                    self._check_schedule(seen_s)
                    self._read_chunk()
                    self._previous_clear_s = self._clear_s
                else:
                    self._clear_s = seen_s
                    self._stop.wait(self.poll_s)
        except EdgeHILError as exc:  # raised to the caller by result()
            self.error = exc

    def _check_schedule(self, seen_s: float) -> None:
        if self._previous_clear_s is None:
            return  # the first chunk: nothing before it to have lost
        spacing_s = seen_s - self._previous_clear_s
        if spacing_s >= 2 * self.chunk_period_s:
            m = len(self.chunks)
            raise StreamGap(
                f"{self.where}: FastLog chunk {m + 1} was offered up to {spacing_s:.3f} s after chunk {m} (one is "
                f"offered every {self.chunk_period_s * 1e3:g} ms and kept until the next): a chunk between them "
                f"may have been overwritten, so the stream is refused rather than returned with a gap. Keep other "
                f"traffic off this VISA session while FastLog runs, use a faster link (LAN/USB-TMC, not USB-CDC "
                f"or GPIB) or a lower FLOG:SRAT")

    def _read_chunk(self) -> None:
        values = self.link.query_float32_block(self.data_query, big_endian=self.big_endian)
        if values.size % 2:
            raise StreamGap(f"{self.where}: a FastLog chunk of {values.size} float32 values is not whole (V, I) "
                            f"pairs; the record is refused. Check FLOG:TARGet SCPI and the VISA link")
        self.chunks.append(values)
        self.pairs += values.size // 2
