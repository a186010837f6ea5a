"""Simulated USB enumeration: which pty each device twin is served on now, found by its USB serial number.

A real USB-CDC board comes back from a reset under another name (/dev/ttyACM0 → /dev/ttyACM1); the host
finds it again by its USB serial number in `serial.tools.list_ports.comports()`. A twin does the same: its
pty link publishes its port here under the twin's fixed serial number, withdraws it when the pty goes
away, and publishes the new path when the rebooted twin serves again. `comports()` answers with pyserial's
own `ListPortInfo` records, so the bench's `resolve_port` looks a twin up exactly as it looks up a board.
"""

from __future__ import annotations

import threading

from serial.tools.list_ports_common import ListPortInfo

# pid.codes' test VID/PID: never a real product, so a simulated port cannot be taken for a board.
SIM_VID = 0x1209
SIM_PID = 0x0001

_lock = threading.Lock()
_ports: dict[str, str] = {}  # USB serial number -> pty path


def publish(usb_serial: str, port: str) -> None:
    """The twin with serial number `usb_serial` is now reachable on `port`."""
    with _lock:
        _ports[usb_serial] = port


def withdraw(usb_serial: str, port: str) -> None:
    """`port` went away; a later publication under the same serial number (another port) is kept."""
    with _lock:
        if _ports.get(usb_serial) == port:
            del _ports[usb_serial]


def comports() -> list[ListPortInfo]:
    """The simulated ports present now, shaped like `serial.tools.list_ports.comports()`."""
    with _lock:
        present = sorted(_ports.items())
    infos = []
    for usb_serial, port in present:
        info = ListPortInfo(port, skip_link_detection=True)
        info.serial_number, info.vid, info.pid = usb_serial, SIM_VID, SIM_PID
        info.description = info.product = "pytest-edgehil device twin"
        infos.append(info)
    return infos
