"""The host's side of an on-board agent's port: the auth handshake run on a freshly opened pyserial port
(`socket://host:port`) before the framed protocol, each time the client opens or reopens it."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

import serial

from pytest_edgehil.errors import AuthRefused, DeviceTimeout
from pytest_edgehil.link.auth import MAX_LINE, host_handshake

Handshake = Callable[[serial.SerialBase], None]


def agent_handshake(token: bytes, *, timeout_s: float, name: str) -> Handshake:
    """A `DeviceClient(handshake=…)` that proves `token` to the agent and checks the agent's proof.

    Raises AuthRefused (wrong token, not an agent) or DeviceTimeout (no greeting within `timeout_s`)."""

    def run(port: serial.SerialBase) -> None:
        where = f"device {name!r} on {port.port}"
        deadline = time.monotonic() + timeout_s
        pending = bytearray()

        def read_line() -> str:
            while b"\n" not in pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceTimeout(f"{where}: no handshake line from the agent within {timeout_s:.3g} s "
                                        f"(received {bytes(pending)[:40]!r}). Is `edgehil agent` running there?")
                if len(pending) > MAX_LINE:
                    raise AuthRefused(f"{where}: {len(pending)} bytes without a line end where the agent's "
                                      "handshake was expected: not an edgehil agent")
                select.select([port.fileno()], [], [], min(left, 0.05))
                pending.extend(port.read(4096))
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            return line.decode("ascii", "replace")

        host_handshake(token, read_line, port.write, where=where)
        if pending:
            raise AuthRefused(f"{where}: the agent sent {len(pending)} bytes after accepting the handshake, before "
                              "any request: not an edgehil agent of this protocol")

    return run
