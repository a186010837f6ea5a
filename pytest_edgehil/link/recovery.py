"""Finding a board again after it reset, hung or vanished: poll for its port, reopen, re-HELLO, check identity.

A USB-CDC board that resets comes back under another port name, some time later; a hung board may answer
again on the same port once its command is abandoned. Either way the host must (1) find the port again
by something stable (the USB serial number; `find_port` says how), (2) reopen it, (3) say HELLO, and
(4) make sure the board that answers is the same board (kind and serial number): reconnecting to the
neighbour's board would measure the wrong device. The model is the caller's business (the bench's
`DeviceUnderTest.recover()` re-selects it by hash and reloads it if the board lost it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pytest_edgehil.errors import DeviceError, WrongBoard
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.device_port import POLL_S
from pytest_edgehil.link.messages import HelloReply

__all__ = ["reconnect"]


def reconnect(client: DeviceClient, find_port: Callable[[], str], *, wait_s: float,
              expect: HelloReply | None = None) -> HelloReply:
    """Reopen `client` on the port `find_port()` names, once it names one, and return the board's HELLO.

    `find_port` raises DeviceError while the board is absent (e.g. `device_under_test.resolve_port` before
    the port re-enumerates); it is polled until `wait_s` seconds have passed. With `expect`, the board must report
    the same device kind and serial number. Raises DeviceError when the board does not reappear in time or
    another board answers (the client is then left closed); the client's own errors (DeviceTimeout,
    ProtocolError, ...) when the HELLO exchange fails.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            port = find_port()
            client.reopen(port)
            break
        except DeviceError as exc:
            if time.monotonic() >= deadline:
                raise DeviceError(f"device {client.name!r} did not come back within {wait_s:.3g} s: {exc}") from exc
            time.sleep(POLL_S)
    hello = client.hello()
    if expect is not None and (hello.device_kind, hello.serial_number) != (expect.device_kind, expect.serial_number):
        client.close()
        raise WrongBoard(
            f"device {client.name!r}: the board now on {port} is a {hello.device_kind!r} with serial number "
            f"{hello.serial_number!r}, not the {expect.device_kind!r} {expect.serial_number!r} this session was "
            "measuring; refusing to continue on another board. Check the cabling and the lab file's "
            "`usb_serial`.", device=client.name, port=port, expected=expect.serial_number,
            found=hello.serial_number)
    return hello

