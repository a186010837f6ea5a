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
def raw_pty_firmware(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """Yields the port path; each chunk the host writes is answered with `answer(chunk)` (b"": silence)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                reply = answer(os.read(master, 65536))
                if reply:
                    os.write(master, reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave)
    finally:
        stop.set()
        thread.join(timeout=2)
        os.close(master)
        os.close(slave)
