"""Which devices of a lab one run uses (`--device NAME[,NAME…]|all`), and that no board is two of them.

Split from `config.lab` (the lab file itself): the selection is checked against the loaded lab, never
changes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_edgehil.config.port_identity import port_identity
from pytest_edgehil.config.suggest import closest
from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from pytest_edgehil.config.lab import DeviceConfig, LabConfig


def select_devices(lab: LabConfig, selection: str | None) -> list[str]:
    """Names chosen by `--device NAME[,NAME…]|all` (None, the option not given: all); unknown names are an
    error listing the known ones, and so is a given but empty selection (`--device=$BOARD` with BOARD unset
    in a CI job would otherwise run every board of the lab)."""
    if selection is not None and not selection.replace(",", "").strip():
        raise ConfigError(f"--device is empty ({selection!r}: a CI variable left unset?); give device names from "
                          f"lab {lab.name!r} ({', '.join(lab.devices)}) or 'all'")
    if selection is None or selection == "all":
        names = list(lab.devices)
        _check_one_board_each(lab, names)
        return names
    names = [s.strip() for s in selection.split(",") if s.strip()]
    broken = [n for n in names if n in lab.unusable]
    if broken:  # loaded for another selection: the entry's own error, not "not in lab"
        raise ConfigError(lab.unusable[broken[0]])
    if "all" in names and "all" not in lab.devices:
        raise ConfigError(f"--device {selection}: 'all' selects every device of lab {lab.name!r} and stands "
                          f"alone; give --device=all, or device names ({', '.join(lab.devices)})")
    unknown = [n for n in names if n not in lab.devices]
    if unknown:
        raise ConfigError(f"--device {','.join(unknown)}: not in lab {lab.name!r}{_close_names(unknown, lab)}; "
                          f"known devices: {', '.join(lab.devices)} (or 'all')")
    _check_one_board_each(lab, names)
    return names


def _close_names(unknown: list[str], lab: LabConfig) -> str:
    """` (did you mean 'coral'?)` for a name that differs from a lab device's only in case or a typo."""
    by_lower = {name.lower(): name for name in lab.devices}
    guesses = []
    for name in unknown:
        close = by_lower.get(name.lower()) or closest(name, lab.devices)
        if close:
            guesses.append(repr(close))
    return f" (did you mean {', '.join(guesses)}?)" if guesses else ""


def _board_keys(dev: DeviceConfig) -> list[tuple[str, str]]:
    """What identifies the board a hardware device opens: its port (`port_identity`: a local path with its
    links resolved, so a /dev/serial/by-id name equals its device node; a network port's TCP endpoint, so
    `localhost` equals `127.0.0.1`), its USB serial number, or its labgrid place (one process holds a place
    for its whole session: a second device of the run would wait for the first)."""
    keys = [("usb_serial", repr(dev.usb_serial))] if dev.usb_serial else []
    if dev.place:
        keys.append(("place", repr(dev.place)))
    if dev.port:
        keys.append(("port", port_identity(dev.port)))
    return keys


def _check_one_board_each(lab: LabConfig, names: list[str]) -> None:
    """ConfigError when two selected hardware devices name one board. Checked on the selection only: a lab
    may describe one board two ways (e.g. two firmwares) as long as a run uses one of them. Without this
    the second device's bring-up fails "busy: held by PID ..." naming this very run."""
    seen: dict[tuple[str, str], str] = {}
    for name in names:
        dev = lab.devices[name]
        if dev.simulated:
            continue  # each simulated device gets a twin of its own
        for key in _board_keys(dev):
            if key in seen:
                raise ConfigError(f"devices {seen[key]!r} and {name!r} of lab {lab.name!r} both name {key[0]} "
                                  f"{key[1]}: one board cannot be two devices in one run; select one of them "
                                  f"(--device), or fix the `{key[0]}` of one in the lab file")
            seen[key] = name
