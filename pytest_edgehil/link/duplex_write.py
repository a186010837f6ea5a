"""A request written full duplex: while the device's input is full, the host reads its replies.

A device busy writing a reply does not read; a host blocked writing the next request does not read either:
each would wait for the other. With several requests in flight (`link.pipeline`) the host therefore never
blocks in a write without reading (on a POSIX port; on other transports the device offers no more
requests in flight than it can buffer). What it reads goes to the client's backlog, for the waits.
"""

from __future__ import annotations

import os
import select
import time
from typing import TYPE_CHECKING

from pytest_edgehil.link.device_port import POLL_S, _posix_fd

if TYPE_CHECKING:
    from pytest_edgehil.link.client import DeviceClient
    from pytest_edgehil.link.exchange import Exchange

__all__ = ["write_reading"]


def write_reading(client: DeviceClient, exchange: Exchange) -> None:
    """`exchange`'s request on the wire, replies read meanwhile while the port does not take it. Raises
    DeviceTimeout when the port takes no byte for `timeout_s`, DeviceError when the port fails."""
    fd = None if client._serial is None else _posix_fd(client._serial)
    if fd is None:
        client._write(exchange.command, exchange.wire)
        return
    view = memoryview(exchange.wire)
    now = time.monotonic()
    # A stall, not the whole write, is a timeout (a slow line keeps taking bytes), within a limit.
    deadline, limit = now + client.timeout_s, now + client.write_limit_s(len(exchange.wire))
    while view:
        try:
            view = view[os.write(fd, view):]
            deadline = time.monotonic() + client.timeout_s
            if time.monotonic() < limit:
                continue
        except BlockingIOError:
            pass
        except OSError as exc:
            raise client._port_failed(exchange.command, exc) from exc
        now = time.monotonic()
        if view and (now >= deadline or now >= limit):
            raise client.write_stalled(exchange.command, len(exchange.wire), len(exchange.wire) - len(view),
                                       trickled=now < deadline)
        readable, _, _ = select.select([fd], [fd], [], POLL_S)
        if readable:
            data = client._read_fd(fd, time.monotonic())
            client._backlog += client._decoder.feed(data) if data else []
