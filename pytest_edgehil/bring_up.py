"""Checks and steps of a real board's bring-up that the twins would hide: power before HELLO, and
HELLO identity against the lab.

A board on an analyzer's output is dark until the output is on, and an N6705C's external trigger fires
only from a digital pin configured as trigger input: both are done before the first byte goes to the
board (`power_board`). A HELLO is checked against the lab (`check_identity`): the kind the lab names,
and, for a device the lab declares as hardware, firmware that is not a twin: a twin served on a pty or a
TCP port (`edgehil sim device`) and declared as hardware would otherwise be recorded, summarised and gated
as HW, with or without `--backend hw`. A twin meant to stand in for a board says so with `--as-board`.
Where the lab states a board's `device_serial`, the serial number in HELLO must be it: two boards of one
kind swapped between their ports would otherwise be measured, recorded and gated under each other's names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pytest_edgehil.errors import DeviceError, EdgeHILError, InstrumentError, WrongBoard
from pytest_edgehil.link.messages import SIMULATED_CAPABILITY

if TYPE_CHECKING:
    from pytest_edgehil.bench import SupplySettings
    from pytest_edgehil.config.lab import DeviceConfig, LabConfig
    from pytest_edgehil.instruments.base import PowerAnalyzer
    from pytest_edgehil.link.messages import HelloReply
    from pytest_edgehil.results.records import MetricRecord

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


def check_identity(config: DeviceConfig, port: str, hello: HelloReply, lab: LabConfig | None = None) -> None:
    """Raise when the HELLO is not the board the lab names: WrongBoard for another kind or, where the lab
    states `device_serial`, another serial number; DeviceError for simulated firmware on a device the lab
    declares as hardware (`simulated` false). `lab` (optional) names the lab file in the messages and
    which of its other entries a stray serial number belongs to."""
    if hello.device_kind != config.kind:
        raise WrongBoard(f"device {config.name!r} on {port} identifies as kind {hello.device_kind!r}, "
                         f"the lab file says {config.kind!r}; fix the lab file or the cabling",
                         device=config.name, port=port, expected=config.kind, found=hello.device_kind)
    why = None if config.simulated else simulated_firmware(hello)
    if why is not None:
        raise DeviceError(f"device {config.name!r} on {port}: declared as hardware in the lab file, but it answers "
                          f"HELLO as simulated firmware ({why}): a twin, not a board, so its numbers would be "
                          "recorded as HW. Point the lab file's `port`/`usb_serial` at the real board; for a twin, "
                          "set `simulated = true` (the plugin serves its own), or serve it with "
                          "`edgehil sim device KIND --as-board` if it is to stand in for a board")
    if config.device_serial is not None and not same_serial(config.device_serial, hello.serial_number):
        raise WrongBoard(wrong_serial_message(config, port, hello.serial_number, lab), device=config.name,
                         port=port, expected=config.device_serial, found=hello.serial_number)


def same_serial(stated: str, reported: str) -> bool:
    """Whether a lab file's `device_serial` is the serial number a board reported. Case and surrounding
    blanks are not compared: the lab's is typed by a person, and boards of one kind differ in their digits,
    so a hex serial typed in lower case is the same board, not a reason to refuse it."""
    return stated.strip().casefold() == reported.strip().casefold()


def wrong_serial_message(config: DeviceConfig, port: str, seen: str, lab: LabConfig | None) -> str:
    """Why the board on `port` is not `config`'s: the entry, the port, the serial numbers expected and seen,
    whose entry the seen one is (two boards swapped between ports), and what to do."""
    entry = f"[devices.{config.name}]" + (f" of lab file {lab.path}" if lab is not None and lab.path else "")
    if not seen.strip():
        return (f"device {config.name!r} on {port}: {entry} states device_serial = {config.device_serial!r}, but "
                "the board's firmware reports no serial number in HELLO, so which board this is cannot be "
                f"checked; drop `device_serial` from {entry}, or flash firmware that reports the board's serial")
    owners = [name for name, dev in (lab.devices.items() if lab is not None else ())
              if name != config.name and dev.device_serial is not None and same_serial(dev.device_serial, seen)]
    whose = (f" ({seen!r} is the device_serial of [devices.{owners[0]}]: the boards are swapped between their "
             "ports)") if owners else ""
    return (f"device {config.name!r} on {port} is another board: it reports serial number {seen!r} in HELLO, "
            f"and {entry} states device_serial = {config.device_serial!r}{whose}. Its numbers would be recorded "
            f"and gated under {config.name!r}, so nothing is measured on it. Put the cables back (the board with "
            f"serial {config.device_serial!r} on {port}), or, if this board now is {config.name!r}, set "
            f"device_serial = {seen!r} in [devices.{config.name}]")


def unchecked_serial_lines(records: Iterable[MetricRecord], lab: LabConfig) -> list[str]:
    """For the run summary: one line per hardware device whose records carry the serial number its board
    reported (`context.device_serial`, from HELLO) while its lab entry states no `device_serial`, giving the
    line to add. Read from the records, so it works under xdist, where the controller has no bench."""
    seen: dict[str, str] = {}
    for record in records:
        serial = str((record.context or {}).get("device_serial") or "")
        dev = lab.devices.get(record.device)
        if serial and dev is not None and not dev.simulated and dev.device_serial is None:
            seen.setdefault(record.device, serial)
    return [f"edgehil: [devices.{name}] states no device_serial; its board reported {serial!r}: add "
            f"device_serial = \"{serial}\" to it so that another board on its port is refused (docs/lab.md)"
            for name, serial in seen.items()]


def power_board(config: DeviceConfig, analyzer: PowerAnalyzer, supply: SupplySettings) -> None:
    """Switch the board's supply on with its trigger input ready, before HELLO. InstrumentError naming the
    device and the analyzer when it cannot."""
    try:
        analyzer.power_up(voltage_v=supply.supply_v, current_range_a=supply.current_range_a)
    except EdgeHILError as exc:
        raise InstrumentError(f"device {config.name!r}: its analyzer {supply.resource} (channel {supply.channel}) "
                              f"could not power it before bring-up: {exc}. The board stays dark; check the "
                              "analyzer and the lab file's `supply_v`/`current_range_a`") from exc
