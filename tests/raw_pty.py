"""A bare pty 'firmware' for tests that need bytes no twin would send: whatever `answer` returns for
the bytes the host wrote goes back on the line (the twin's side in raw mode, as bench-facts asks)."""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def serving_pty(serve: Callable[[int, threading.Event], None]) -> Iterator[str]:
    """A raw pty whose device side runs `serve(master_fd, stop)` on a thread until the block ends; yields
    the port path the host opens."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(master, stop), daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join(timeout=5)
        os.close(master)
        os.close(slave)


@contextmanager
def raw_pty_firmware(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """Yields the port path; each chunk the host writes is answered with `answer(chunk)` (b"": silence)."""

    def serve(master: int, stop: threading.Event) -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                reply = answer(os.read(master, 65536))
                if reply:
                    os.write(master, reply)

    with serving_pty(serve) as port:
        yield port
