"""The device side's receive buffer: the pty is read while the device computes, not only between requests.

Why: Linux moves pty bytes to the reader about 4 KB at a time (the line discipline's buffer), each 4 KB
after a kernel worker's turn, so reading one 49 KB image takes a dozen wake-ups. A twin that read its
next request only after answering the last one waited for every one of them between two inferences.
Here a reader thread reads while the request handler runs (LiteRT releases the GIL), as a board's UART
DMA fills a buffer while its CPU computes. When the serving thread has to wait for a request it reads
the line itself (the reader thread stands aside), so a request that finds the device idle costs no
hand-over between threads.

`take()` hands the serving thread everything read so far, once it holds a frame delimiter (or the
buffer is full, or reading ended): one wake-up per request, not one per 4 KB. At most `limit` bytes are
held untaken; past that nothing more is read, so the host meets flow control as before. Faults, decoding
and replies stay with the serving thread (`sim/pty_link.py`): the bytes and their order are the same
(each read and its queuing happen under one lock), only read sooner.
"""

from __future__ import annotations

import logging
import os
import select
import threading

log = logging.getLogger("pytest_edgehil.sim.pty_link")

READ_CHUNK = 65536
# What a device buffers ahead (bytes not yet taken): a few of the largest requests the suites pipeline
# (a 49 KB image, `pipeline=3` in flight); the pty itself holds about 18 KB more.
READ_AHEAD = 4 * READ_CHUNK


class PtyReader:
    """Reads `fd` (a pty master, non-blocking) for one serving thread until `stop()`; `name` is for logs."""

    def __init__(self, fd: int, *, name: str, limit: int = READ_AHEAD) -> None:
        self.name = name
        self._fd = fd
        self._limit = limit
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # what the serving thread waits on (take, swap)
        self._reader_cond = threading.Condition(lock)  # what the reader thread waits on: the same state
        self._io = threading.Lock()  # held across a read and its queuing: bytes queue in the order read
        self._chunks: list[bytes] = []
        self._queued = 0  # bytes in _chunks
        self._whole = False  # a frame delimiter (0x00) is among _chunks
        self._ahead = True  # the reader thread reads (not while the serving thread waits in take())
        self._ended = False  # reading stopped (stop(), or the pty failed)
        self._stopped = False
        self._park = False  # swap() asks the reader thread to stay off the fd
        self._parked = False
        self._stop_r, self._stop_w = os.pipe()  # written once by stop(), never drained: every select sees it
        self._park_r, self._park_w = os.pipe()  # wakes the reader thread for a swap
        self._pipes: tuple[int, ...] = (self._stop_r, self._stop_w, self._park_r, self._park_w)
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name=f"pty-reader-{self.name}", daemon=True)
        thread.start()
        return thread

    # -- the serving thread's side --------------------------------------------------------------------------
    def take(self) -> bytes | None:
        """Every byte read and not yet taken, once they hold a frame delimiter (or fill the buffer);
        None once reading has ended and nothing is left. Blocks until then, reading the line meanwhile."""
        with self._io, self._cond:  # a read the reader thread has begun is queued before we look
            if self._whole or self._queued >= self._limit or self._ended:
                return self._pop()  # the host is ahead of the device: the reader thread reads on
            self._ahead = False  # the device waits for the host: this thread reads the line
        try:
            while True:
                with self._cond:
                    if self._whole or self._queued >= self._limit or self._ended:
                        return self._pop()
                    fd = self._fd
                readable, _, _ = select.select([fd, self._stop_r], [], [])
                if fd in readable:
                    self._read(fd, ahead=False)
        finally:
            with self._cond:
                self._ahead = True  # the reader thread reads while the request is handled
                self._reader_cond.notify()

    def swap(self, fd: int) -> None:
        """Read `fd` from now on (a reboot's new pty); bytes read from the old one and not taken are lost
        with it. Returns once the reader thread no longer touches the old fd, so the caller may close it."""
        with self._cond:
            if self._stopped:
                return
            self._park = True
            self._reader_cond.notify()
            os.write(self._park_w, b"s")
            # The thread parks at the head of its loop, or has ended (the old pty failed under it).
            while not self._parked and self._thread.is_alive():
                self._cond.wait(0.05)
            self._fd = fd
            self._chunks.clear()
            self._queued, self._whole, self._ahead, self._ended = 0, False, False, False  # a fresh line
            self._park = False
            if not self._thread.is_alive():
                self._thread = self._start()
            self._reader_cond.notify()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End reading (idempotent): the reader thread ends, and `take()` returns what is left, then None.
        Call `close()` once the serving thread is done with `take()`."""
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._ended = True
            self._cond.notify_all()
            self._reader_cond.notify()
        os.write(self._stop_w, b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)

    def close(self) -> None:
        """Release the wake-up pipes (after `stop()`, once no thread waits in `take()`); idempotent."""
        self.stop()
        fds, self._pipes = self._pipes, ()
        for fd in fds:
            os.close(fd)

    def _pop(self) -> bytes | None:
        """What is queued, emptied (the condition held); None when nothing is."""
        if not self._chunks:
            return None
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if self._queued >= self._limit:
            self._reader_cond.notify()  # room again: the reader thread may read on
        self._chunks.clear()
        self._queued, self._whole = 0, False
        return data

    def _read(self, fd: int, *, ahead: bool) -> bool:
        """One read of `fd` into the queue (`ahead`: by the reader thread, which reads only while asked
        to); False once the line has failed (reading then ends)."""
        with self._io:
            if ahead and not self._ahead:
                return True  # the serving thread reads the line now
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:  # nothing (left) to read
                return True
            except OSError as exc:  # the pty went away under us
                data, failure = b"", str(exc)
            else:
                failure = "end of file"
            with self._cond:
                if data:
                    self._chunks.append(data)
                    self._queued += len(data)
                    self._whole = self._whole or 0 in data
                    return True
                if self._park or self._stopped:
                    return True  # the fd is being swapped or closed: not a failure of the line
                log.warning("%s: pty read failed (%s); stopping the link", self.name, failure)
                self._ended = True
                self._cond.notify_all()
                return False

    # -- the reader thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                # Off the line unless asked to read ahead, while the queue is full, and for a swap.
                while (self._park or not self._ahead or self._queued >= self._limit) and not self._stopped:
                    if self._park and not self._parked:
                        self._parked = True
                        self._cond.notify_all()
                    self._reader_cond.wait()
                self._parked = False
                if self._stopped:
                    return
                fd = self._fd
            readable, _, _ = select.select([fd, self._stop_r, self._park_r], [], [])
            if self._park_r in readable:
                os.read(self._park_r, 64)  # a swap: the loop's head parks
                continue
            if fd in readable and not self._read(fd, ahead=True):
                return
