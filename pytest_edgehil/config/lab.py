"""The lab file: which boards exist, how to reach them, and whether they are simulated.

TOML, chosen with `--lab PATH` or the ini value `edgehil_lab`. Without one the simulated bench is used:
one twin of every registered kind that can be simulated. A device the lab names as hardware is never
silently replaced by a twin: if it cannot be reached the run fails, naming the port and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_edgehil.config.kinds import device_kinds, get_device_kind
from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError


@dataclass(frozen=True)
class DeviceConfig:
    """One board on the bench (a resource, in labgrid's words: a record, no behaviour)."""

    name: str
    kind: str
    simulated: bool
    port: str | None = None  # pyserial URL or device path: /dev/ttyACM0, socket://host:port, rfc2217://…
    usb_serial: str | None = None  # preferred over `port`: USB-CDC boards re-enumerate on reset
    baud: int = 115200
    analyzer: str | None = None  # VISA resource string of the power analyzer on this board's supply
    analyzer_channel: int = 1
    supply_v: float | None = None  # the analyzer's output voltage feeding the board
    current_range_a: float | None = None  # the largest current the board draws (picks the range)


@dataclass(frozen=True)
class LabConfig:
    name: str
    path: Path | None
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    dataset_root: Path | None = None

    @property
    def all_simulated(self) -> bool:
        return all(d.simulated for d in self.devices.values())


def has_twin(kind: str) -> bool:
    """Whether the simulation has a twin of `kind`. Asked only about devices that are to be simulated, so a
    hardware lab never loads `pytest_edgehil.sim`."""
    from pytest_edgehil.sim import has_twin as sim_has_twin

    return sim_has_twin(kind)


def simulated_lab() -> LabConfig:
    """The default bench: one twin per kind the simulation has a twin of, named after its kind."""
    from pytest_edgehil.sim import twin_kinds

    twins = set(twin_kinds())
    devices = {
        kind.name: DeviceConfig(name=kind.name, kind=kind.name, simulated=True, baud=kind.default_baud)
        for kind in device_kinds().values() if kind.name in twins
    }
    return LabConfig(name="simulated bench", path=None, devices=devices)


def _device_from_table(name: str, table: dict[str, Any], where: str) -> DeviceConfig:
    allowed = {"kind", "simulated", "port", "usb_serial", "baud", "analyzer", "analyzer_channel", "supply_v",
               "current_range_a"}
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: device {name!r} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    kind = get_device_kind(str(table.get("kind", name)))
    simulated = bool(table.get("simulated", False))
    if simulated and not has_twin(kind.name):
        raise ConfigError(f"{where}: device {name!r} is marked simulated but kind {kind.name!r} has no twin")
    if not simulated and not (table.get("port") or table.get("usb_serial")):
        raise ConfigError(
            f"{where}: hardware device {name!r} needs `port` (e.g. \"/dev/ttyACM0\" or \"socket://host:4000\") "
            "or `usb_serial`; or set `simulated = true` to use its twin"
        )
    return DeviceConfig(
        name=name, kind=kind.name, simulated=simulated, port=table.get("port"),
        usb_serial=table.get("usb_serial"), baud=int(table.get("baud", kind.default_baud)),
        analyzer=table.get("analyzer"), analyzer_channel=int(table.get("analyzer_channel", 1)),
        supply_v=_optional_float(table, "supply_v"), current_range_a=_optional_float(table, "current_range_a"),
    )


def _optional_float(table: dict[str, Any], key: str) -> float | None:
    return float(table[key]) if key in table else None


def load_lab(path: Path) -> LabConfig:
    data = read_toml(path, "lab file", "pass --lab PATH to an existing file")
    lab = data.get("lab", {})
    tables = data.get("devices", {})
    if not tables:
        raise ConfigError(f"lab file {path} names no devices; add a [devices.NAME] table per board")
    devices = {name: _device_from_table(name, table, str(path)) for name, table in tables.items()}
    root = lab.get("dataset_root")
    return LabConfig(name=str(lab.get("name", Path(path).stem)), path=Path(path), devices=devices,
                     dataset_root=(Path(path).parent / root) if root else None)


def apply_backend(lab: LabConfig, backend: str | None) -> LabConfig:
    """`--backend sim` simulates every device explicitly; `--backend hw` refuses any simulated one."""
    if backend in (None, ""):
        return lab
    if backend == "sim":
        devices = {}
        for name, dev in lab.devices.items():
            if not has_twin(dev.kind):
                raise ConfigError(f"--backend sim: device {name!r} (kind {dev.kind!r}) has no twin to simulate it")
            devices[name] = DeviceConfig(**{**dev.__dict__, "simulated": True})
        return LabConfig(lab.name, lab.path, devices, lab.dataset_root)
    if backend == "hw":
        simulated = [name for name, dev in lab.devices.items() if dev.simulated]
        if simulated:
            raise ConfigError(
                f"--backend hw, but lab {lab.name!r} marks {', '.join(simulated)} as simulated; "
                "pass --lab with a hardware lab file (see fixtures/lab.example-hw.toml)"
            )
        return lab
    raise ConfigError(f"--backend must be 'sim' or 'hw', got {backend!r}")


def select_devices(lab: LabConfig, selection: str | None) -> list[str]:
    """Names chosen by `--device NAME[,NAME…]|all`; unknown names are an error listing the known ones."""
    if not selection or selection == "all":
        return list(lab.devices)
    names = [s.strip() for s in selection.split(",") if s.strip()]
    unknown = [n for n in names if n not in lab.devices]
    if unknown:
        raise ConfigError(f"--device {','.join(unknown)}: not in lab {lab.name!r}; "
                          f"known devices: {', '.join(lab.devices)} (or 'all')")
    return names
