"""The device side's receive buffer: a thread that reads a pty's master while the device computes.

Why: Linux moves pty bytes to the reader about 4 KB at a time (the line discipline's buffer), each 4 KB
after a kernel worker's turn, so reading one 49 KB image takes a dozen wake-ups. A twin that read its
next request only after answering the last one waited for every one of them between two inferences;
with this reader the next request is read while the model runs (LiteRT releases the GIL), as a
board's UART DMA fills a buffer while its CPU computes.

`take()` hands the serving thread everything read so far, once it holds a frame delimiter (or the
buffer is full, or reading ended): one wake-up per request, not one per 4 KB. The reader holds at most
`limit` bytes not yet taken; past that it stops reading, so the host meets flow control as before.
Faults, decoding and replies stay with the serving thread (`sim/pty_link.py`): the bytes and their
order are the same, only read sooner.
"""

from __future__ import annotations

import logging
import os
import select
import threading

log = logging.getLogger("pytest_edgehil.sim.pty_link")

READ_CHUNK = 65536
# What a device buffers ahead (bytes not yet taken): a few of the largest requests the suites pipeline
# (a 49 KB image, `pipeline=3` in flight); the pty's own ~64 KB comes on top.
READ_AHEAD = 4 * READ_CHUNK


class PtyReader:
    """Reads `fd` (a pty master, non-blocking) on its own thread until `stop()`; `name` is for logs."""

    def __init__(self, fd: int, *, name: str, limit: int = READ_AHEAD) -> None:
        self.name = name
        self._fd = fd
        self._limit = limit
        self._cond = threading.Condition()
        self._chunks: list[bytes] = []
        self._queued = 0  # bytes in _chunks
        self._whole = False  # a frame delimiter (0x00) is among _chunks
        self._ended = False  # reading stopped (stop(), or the pty failed)
        self._stopped = False
        self._park = False  # swap() asks the thread to stay off the fd
        self._parked = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"pty-reader-{self.name}", daemon=True)
        thread.start()
        return thread

    # -- the serving thread's side --------------------------------------------------------------------------
    def take(self) -> bytes | None:
        """Every byte read and not yet taken, once they hold a frame delimiter (or fill the buffer);
        None once reading has ended and nothing is left. Blocks until then."""
        with self._cond:
            self._cond.wait_for(lambda: self._whole or self._queued >= self._limit or self._ended)
            if not self._chunks:
                return None
            data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
            self._chunks.clear()
            self._queued, self._whole = 0, False
            self._cond.notify_all()  # room again, if the reader was waiting for it
            return data

    def swap(self, fd: int) -> None:
        """Read `fd` from now on (a reboot's new pty); bytes read from the old one and not taken are lost
        with it. Returns once the thread no longer touches the old fd, so the caller may close it."""
        with self._cond:
            if self._stopped:
                return
            self._park = True
            os.write(self._wake_w, b"s")
            # The thread parks at the head of its loop, or has ended (the old pty failed under it).
            self._cond.wait_for(lambda: self._parked or self._ended)
            self._fd = fd
            self._chunks.clear()
            self._queued, self._whole = 0, False
            self._park = False
            if self._ended:  # the new pty is read afresh
                self._thread.join()
                self._ended = False
                self._thread = self._start()
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the thread (idempotent); `take()` then returns what is left, then None."""
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._ended = True
            self._cond.notify_all()
        os.write(self._wake_w, b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the reading thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while (self._park or self._queued >= self._limit) and not self._stopped:
                    self._parked = self._park
                    self._cond.notify_all()
                    self._cond.wait()
                self._parked = False
                if self._stopped:
                    return
                fd = self._fd
            readable, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in readable:
                os.read(self._wake_r, 64)  # a swap or stop: the loop's head says which
                continue
            failure: OSError | None = None
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:  # the pty went away under us
                data, failure = b"", exc
            with self._cond:
                if data:
                    self._chunks.append(data)
                    self._queued += len(data)
                    if 0 in data:
                        self._whole = True
                        self._cond.notify_all()
                    elif self._queued >= self._limit:
                        self._cond.notify_all()
                    continue
                if self._park or self._stopped:
                    continue  # the fd is being swapped or closed: not a failure of the line
                log.warning("%s: pty read failed (%s); stopping the link", self.name, failure or "end of file")
                self._ended = True
                self._cond.notify_all()
                return
