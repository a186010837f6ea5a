"""A farm device of a lab file and the labgrid place it gets: what it asks the coordinator for, and what an
acquired place gives it.

A lab file's device names `place = "coral-1"` (labgrid's `name=` filter) or `tags = { board = "coral" }`
(docs/lab-farm.md); `place_filter` is the reservation filter either way, and the start-up checks
(`check_farm_lab`) ask for labgrid and a coordinator before any test runs. The place acquired comes back as
a `PlaceLease`: its `NetworkSerialPort` as the pyserial URL labgrid itself opens (`serial_url`), and its tags,
from which `apply_place` takes the power wiring a lab file leaves out. No labgrid import here but the check
that it is installed: `farm.Farm` talks to the coordinator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import ConfigError, DeviceError

INSTALL = "pip install 'pytest-edgehil[labgrid]'"
COORDINATOR_ENV = "LG_COORDINATOR"  # labgrid's own variable for the coordinator address
DEFAULT_PORT = 20408  # labgrid's default coordinator port

T = TypeVar("T")


def require_labgrid(what: str) -> None:
    """Raise ConfigError with the install command when labgrid's client cannot be imported."""
    try:
        import labgrid.remote.client  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{what} names labgrid places, but labgrid is not installed ({exc}); install it with "
                          f"{INSTALL} (docs/lab-farm.md)") from None


def coordinator_address(lab: LabConfig) -> str:
    """`[lab] coordinator`, else $LG_COORDINATOR, as "HOST:PORT" (default port 20408). Raises ConfigError."""
    address = lab.coordinator or os.environ.get(COORDINATOR_ENV, "").strip()
    if not address:
        raise ConfigError(f"lab {lab.name!r} names labgrid places but no coordinator: set `coordinator = "
                          f"\"HOST:PORT\"` in its [lab] table or the {COORDINATOR_ENV} environment variable")
    return address if ":" in address.rsplit("]", 1)[-1] else f"{address}:{DEFAULT_PORT}"


def check_farm_lab(lab: LabConfig, farm_devices: list[str], where: str) -> None:
    """Start-up checks of a lab naming places: labgrid importable, a coordinator given. Raises ConfigError."""
    require_labgrid(f"{where}: [devices.{farm_devices[0]}]" if len(farm_devices) == 1
                    else f"{where}: devices {', '.join(farm_devices)}")
    try:
        coordinator_address(lab)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def place_filter(config: DeviceConfig) -> dict[str, str]:
    """The reservation filter of a farm device: its tags, or labgrid's `name` filter for a named place."""
    return {"name": config.place} if config.place is not None else dict(config.place_tags)


def describe_filter(config: DeviceConfig) -> str:
    return f"place {config.place!r}" if config.place is not None else \
        "a place tagged " + ", ".join(f"{k}={v}" for k, v in config.place_tags)


def serial_url(params: Mapping[str, Any], place: str) -> str:
    """A pyserial URL for a NetworkSerialPort's parameters (host, port, protocol: rfc2217 or raw)."""
    host, port, protocol = params.get("host"), params.get("port"), params.get("protocol") or "rfc2217"
    if not host or not port:
        raise DeviceError(f"place {place!r}: its NetworkSerialPort has no TCP port yet (host {host!r}, port "
                          f"{port!r}); the exporter starts ser2net when the place is acquired: check the exporter's "
                          "log and that ser2net is installed on its host")
    if protocol == "rfc2217":
        # As labgrid's own SerialDriver opens it: ser2net on a port without modem lines (a pty, many USB-CDC
        # boards) never acknowledges DTR/RTS changes, and pyserial would refuse the open waiting for that.
        return f"rfc2217://{host}:{port}?ign_set_control"
    if protocol == "raw":
        return f"socket://{host}:{port}"
    raise ConfigError(f"place {place!r}: NetworkSerialPort protocol {protocol!r} is neither 'rfc2217' nor 'raw'")


@dataclass(frozen=True)
class PlaceLease:
    """A place this session acquired: what to open, who we are to the coordinator, and the place's tags."""

    place: str
    host: str  # the exporter host serving the board's serial port
    url: str  # pyserial URL of the place's NetworkSerialPort
    token: str  # the reservation, cancelled at release
    owner: str  # our labgrid identity, HOST/USER
    tags: tuple[tuple[str, str], ...]


def _number(tags: Mapping[str, str], key: str, place: str, convert: Callable[[str], T]) -> T | None:
    if key not in tags:
        return None
    try:
        return convert(tags[key])
    except ValueError:
        raise ConfigError(f"place {place!r}: tag {key}={tags[key]!r} is not a number; fix it with "
                          f"`labgrid-client -p {place} set-tags {key}=VALUE`") from None


def apply_place(config: DeviceConfig, lease: PlaceLease) -> DeviceConfig:
    """The device config with the place's port, and its power wiring from the place's tags where the lab
    file gives none (`analyzer`, `analyzer_channel`, `supply_v`, `current_range_a`; the lab file wins)."""
    tags = dict(lease.tags)
    analyzer, channel = config.analyzer, config.analyzer_channel
    if analyzer is None and tags.get("analyzer"):
        analyzer = tags["analyzer"]
        channel = _number(tags, "analyzer_channel", lease.place, int) or 1
    supply_v = config.supply_v if config.supply_v is not None else _number(tags, "supply_v", lease.place, float)
    current = config.current_range_a if config.current_range_a is not None else \
        _number(tags, "current_range_a", lease.place, float)
    return replace(config, port=lease.url, analyzer=analyzer, analyzer_channel=channel, supply_v=supply_v,
                   current_range_a=current)
