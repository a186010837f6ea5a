"""The pty a twin of the EEMBC text protocol serves: its host side, a serving thread, and a clean stop.

The EEMBC firmware and its IO manager (MLPerf Tiny's interface board) both read `%`-terminated commands
from a serial line and print CRLF lines back. `EembcPty` owns what they share: a pty put in raw mode at
once (bytes written before the host opens the port are kept, not echoed back), the thread that splits what
the host writes into commands and hands each to `on_command`, a read that gives up once the twin closes
(`read`, also for another descriptor such as the IO manager's line to the board), and close/`with`. A
subclass implements `on_command` and writes its replies with `write`. (The framed protocol's twins use
`sim.pty_link.serve_pty` instead.)
"""

from __future__ import annotations

import os
import select
import threading
import tty
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

TERMINATOR = b"%"  # the EEMBC protocol's end of a command (Menu::Run reads up to it)
READ_BYTES = 65536


class EembcPty:
    """A served pty: `port` is the path the host opens. Subclasses call `start` once their state is set up
    and implement `on_command`; `owned_fds` are closed with the pty."""

    def __init__(self, name: str, owned_fds: tuple[int, ...] = ()) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)  # raw at once: bytes written before the host opens the port are kept
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._owned = owned_fds
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name=f"{name}:{self.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def on_command(self, text: str) -> bool:  # pragma: no cover - every twin overrides it
        """Answer one host command (the bytes before `%`, decoded); False stops serving."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        """Send `data` to the host."""
        os.write(self._master, data)

    def read(self, fd: int) -> bytes | None:
        """What `fd` has, waiting for it; None once closing (or the fd is gone)."""
        ready, _, _ = select.select([fd, self._stop_r], [], [])
        if self._stop_r in ready:
            return None
        try:
            return os.read(fd, READ_BYTES)
        except OSError:
            return None

    def _serve(self) -> None:
        pending = bytearray()
        while (chunk := self.read(self._master)) is not None:
            pending += chunk
            while TERMINATOR in pending:
                cmd, _, rest = bytes(pending).partition(TERMINATOR)
                pending[:] = rest
                if not self.on_command(cmd.decode("ascii", "replace")):
                    return

    def close(self) -> None:
        """Stop serving and close the pty (and `owned_fds`)."""
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, *self._owned, self._stop_r, self._stop_w):
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
