"""Reading a FastLog stream as R&S documents it: poll the chunk flag, read each chunk in time.

R&S's NGM20x FastLog example (`Rohde-Schwarz/Examples`, `Powersupplies/Python/RsInstrument/
RSInstrument_NGM200_FastLog.py`, FW 03.034): FastLog data come in chunks every 250 ms whatever the
sample rate, each flagged by bit 12 of `STATus:OPERation:INSTrument:ISUMmary<n>`, read with
`FLOG:DATA?` (a definite-length block of little-endian float32 V, I pairs); a chunk not picked up
before the next one is ready is overwritten. A meter cannot wait in between (a RUN takes seconds on
hardware), so a `FastLogReader` thread owns the VISA link from `FLOG 1` until it holds enough samples.

A lost chunk is detected from the documented schedule, not guessed from the data: chunk j is offered
at S + (j+1)·P (S: FastLog's start, no earlier than the host's `FLOG 1`, P = 250 ms) and overwritten
at S + (j+2)·P. So if the m-th chunk we read (0-based) is seen at host time h ≥ t_flog1 + (m+2)·P, a
chunk before it may have been overwritten: the stream is refused (`StreamGap`). A lossless stream is
refused only when a read comes later than P minus FastLog's start latency after its chunk was
offered — a reader that late nearly lost it anyway.
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
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.status_query = status_query
        self.data_query = data_query
        self.points = points
        self.started_s = started_s
        self.where = where
        self.poll_s = poll_s
        self.chunk_period_s = chunk_period_s
        self.clock = clock
        self.chunks: list[np.ndarray] = []  # each: float64 V, I, V, I, ...
        self.pairs = 0
        self.error: BaseException | None = None
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
                else:
                    self._stop.wait(self.poll_s)
        except EdgeHILError as exc:  # raised to the caller by result()
            self.error = exc

    def _check_schedule(self, seen_s: float) -> None:
        m = len(self.chunks)
        due_s = self.started_s + (m + 2) * self.chunk_period_s
        if seen_s >= due_s:
            raise StreamGap(
                f"{self.where}: FastLog chunk {m + 1} was flagged {seen_s - self.started_s:.3f} s after FLOG 1, "
                f"when a chunk before it may have been overwritten (one is offered every "
                f"{self.chunk_period_s * 1e3:g} ms and kept until the next): the stream may have a gap, so "
                f"it is refused rather than returned shorter. Keep other traffic off this VISA session while "
                f"FastLog runs, use a faster link (LAN/USB-TMC, not USB-CDC or GPIB) or a lower FLOG:SRAT")

    def _read_chunk(self) -> None:
        values = self.link.query_float32_block(self.data_query, big_endian=False)
        if values.size % 2:
            raise StreamGap(f"{self.where}: a FastLog chunk of {values.size} float32 values is not whole (V, I) "
                            f"pairs; the record is refused. Check FLOG:TARGet SCPI and the VISA link")
        self.chunks.append(values)
        self.pairs += values.size // 2
