"""Checks and steps of a real board's bring-up that the twins would hide: power before HELLO, and
HELLO identity against the lab.

A board on an analyzer's output is dark until the output is on, and an N6705C's external trigger fires
only from a digital pin configured as trigger input: both are done before the first byte goes to the
board (`power_board`). A HELLO is checked against the lab (`check_identity`): the kind the lab names,
and, for a device the lab declares as hardware, firmware that is not a twin: a twin served on a pty or a
TCP port (`edgehil sim device`) and declared as hardware would otherwise be recorded, summarised and gated
as HW, with or without `--backend hw`. A twin meant to stand in for a board says so with `--as-board`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_edgehil.errors import DeviceError, EdgeHILError, InstrumentError
from pytest_edgehil.link.messages import SIMULATED_CAPABILITY

if TYPE_CHECKING:
    from pytest_edgehil.bench import SupplySettings
    from pytest_edgehil.config.lab import DeviceConfig
    from pytest_edgehil.instruments.base import PowerAnalyzer
    from pytest_edgehil.link.messages import HelloReply

# How simulated firmware identifies itself: the twins' firmware string ("cm4-twin 1.0.0") and USB serial
# number ("SIM-1A2B3C4D"), and the capability a twin may declare.
TWIN_FIRMWARE_MARK = "-twin"
TWIN_SERIAL_PREFIX = "SIM-"


def simulated_firmware(hello: HelloReply) -> str | None:
    """Why this HELLO is simulated firmware ("firmware 'cm4-twin 1.0.0'"), or None for a real board."""
    words = hello.firmware.split()
    if words and words[0].endswith(TWIN_FIRMWARE_MARK):
        return f"firmware {hello.firmware!r}"
    if hello.serial_number.upper().startswith(TWIN_SERIAL_PREFIX):
        return f"serial number {hello.serial_number!r}"
    if SIMULATED_CAPABILITY in hello.capabilities:
        return f"capability {SIMULATED_CAPABILITY!r}"
    return None


def check_identity(config: DeviceConfig, port: str, hello: HelloReply) -> None:
    """Raise DeviceError when the HELLO is not the board the lab names: another kind, or simulated firmware
    on a device the lab declares as hardware (`simulated` false)."""
    if hello.device_kind != config.kind:
        raise DeviceError(f"device {config.name!r} on {port} identifies as kind {hello.device_kind!r}, "
                          f"the lab file says {config.kind!r}; fix the lab file or the cabling")
    why = None if config.simulated else simulated_firmware(hello)
    if why is not None:
        raise DeviceError(f"device {config.name!r} on {port}: declared as hardware in the lab file, but it answers "
                          f"HELLO as simulated firmware ({why}): a twin, not a board, so its numbers would be "
                          "recorded as HW. Point the lab file's `port`/`usb_serial` at the real board; for a twin, "
                          "set `simulated = true` (the plugin serves its own), or serve it with "
                          "`edgehil sim device KIND --as-board` if it is to stand in for a board")


def power_board(config: DeviceConfig, analyzer: PowerAnalyzer, supply: SupplySettings) -> None:
    """Switch the board's supply on with its trigger input ready, before HELLO. InstrumentError naming the
    device and the analyzer when it cannot."""
    try:
        analyzer.power_up(voltage_v=supply.supply_v, current_range_a=supply.current_range_a)
    except EdgeHILError as exc:
        raise InstrumentError(f"device {config.name!r}: its analyzer {supply.resource} (channel {supply.channel}) "
                              f"could not power it before bring-up: {exc}. The board stays dark; check the "
                              "analyzer and the lab file's `supply_v`/`current_range_a`") from exc
