"""The lab file: which boards exist, how to reach them, and whether they are simulated.

TOML, chosen with `--lab PATH` or the ini value `edgehil_lab`. Without one the simulated bench is used:
one twin of every registered kind that can be simulated. A device the lab names as hardware is never
silently replaced by a twin: if it cannot be reached the run fails, naming the port and the fix.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Which devices a run selects lives in its own module; re-exported here for callers of `config.lab`.
from pytest_edgehil.config.device_selection import select_devices
from pytest_edgehil.config.kinds import ENTRY_POINT_GROUP, device_kinds, get_device_kind, register_lab_kinds
from pytest_edgehil.config.suggest import closest
from pytest_edgehil.config.tomlfile import read_toml
from pytest_edgehil.errors import ConfigError

if TYPE_CHECKING:
    from pytest_edgehil.config.schema import EntryNamer
    from pytest_edgehil.config.schemas import DeviceTable

__all__ = ["DeviceConfig", "LabConfig", "apply_backend", "lab_from_data", "load_lab", "select_devices",
           "selected_names", "simulated_lab", "unusable_warnings"]


@dataclass(frozen=True)
class DeviceConfig:
    """One board on the bench (a resource, in labgrid's words: a record, no behaviour)."""

    name: str
    kind: str
    simulated: bool
    port: str | None = None  # pyserial URL or device path: /dev/ttyACM0, socket://host:port, rfc2217://…
    usb_serial: str | None = None  # preferred over `port`: USB-CDC boards re-enumerate on reset
    # The board's own serial number, as its firmware reports it in HELLO; None: not checked (bring_up).
    device_serial: str | None = None
    baud: int = 115200
    analyzer: str | None = None  # VISA resource string of the power analyzer on this board's supply
    analyzer_channel: int = 1
    supply_v: float | None = None  # the analyzer's output voltage feeding the board
    current_range_a: float | None = None  # the largest current the board draws (picks the range)
    # Faults the twin injects on its link, as the lab file's table (validated there; the twin builds
    # its plan from it): a simulated device only. Not part of equality: a record, not a behaviour.
    faults: Mapping[str, Any] | None = field(default=None, compare=False)
    twin_analyzer: str | None = None  # simulated only: the analyzer twin's dialect (driver name)
    monitor: str | None = None  # a USB power monitor on this board's supply, "KIND:ADDRESS" (instead of `analyzer`)
    twin_monitor: str | None = None  # simulated only: measure through this monitor's twin ("ppk2", "lpm01a")
    token_file: Path | None = None  # an on-board agent's shared token (link.auth); None: no handshake
    models: tuple[str, ...] = ()  # catalog models run here without a budget (config.pairs)
    protocol: str = "edgehil"  # "eembc": MLPerf Tiny reference firmware (link.eembc_client)
    firmware_model: str | None = None  # eembc: the catalog model compiled into the firmware
    eembc_mode: str = "performance"  # eembc: "energy" = windows from the timestamp GPIO (link/eembc_client.py)
    timestamp_hold_us: float | None = None  # eembc energy mode: th_timestamp's low pulse (None: the reference 1 µs)
    eembc_results_print: str | None = None  # eembc: "rounded"/"truncated" m-results (None: the reference port's)
    eembc_io_manager: bool = False  # eembc: the port is EEMBC's IO manager relaying `dut CMD%` to the board
    # A board in a labgrid farm (pytest_edgehil.farm): this named place, or any free place with these tags.
    # The bench reserves it through the coordinator and fills in `port` (and the analyzer, from the place).
    place: str | None = None
    place_tags: tuple[tuple[str, str], ...] = ()

    @property
    def in_farm(self) -> bool:
        """Whether the board is reached through a labgrid coordinator (`place` or `tags` in the lab file)."""
        return self.place is not None or bool(self.place_tags)


@dataclass(frozen=True)
class LabConfig:
    name: str
    path: Path | None
    devices: dict[str, DeviceConfig] = field(default_factory=dict)
    dataset_root: Path | None = None
    physics: dict[str, Any] = field(default_factory=dict)  # `[physics]`: the simulated bench's effects
    coordinator: str | None = None  # `[lab] coordinator`: the labgrid coordinator of `place`/`tags` devices
    # Entries left out because they are wrong and this run does not select them: name -> the error a run
    # selecting them stops with (`lab_from_data(selected=...)`). Not in `devices`: nothing can reach them.
    unusable: dict[str, str] = field(default_factory=dict)

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


LAB_FIX = "fix the lab file (its keys are listed in docs/lab.md, the rules for every file in docs/config-files.md)"


def _device_from_table(name: str, table: DeviceTable, where: str, base: Path) -> DeviceConfig:
    """A validated `[devices.NAME]` table checked against the kind registry and the twins."""
    kinds = device_kinds()
    if table.kind is None and name not in kinds:
        raise ConfigError(f"{where}: [devices.{name}]: missing kind (required: the device name is not a kind); "
                          f"write kind = \"...\", one of {', '.join(sorted(kinds))}")
    kind_name = table.kind or name
    if kind_name not in kinds:
        hint = closest(kind_name, kinds)
        raise ConfigError(f"{where}: [devices.{name}]: `kind` = {kind_name!r} is not a known device kind"
                          + (f"; did you mean {hint!r}?" if hint else "") + f". Known kinds: {', '.join(sorted(kinds))}; "
                          "a new kind is declared in a kinds file named by the lab's `[lab] kinds` (docs/extending.md) "
                          f"or registered through the {ENTRY_POINT_GROUP!r} entry-point group")
    kind = get_device_kind(kind_name)
    if table.simulated and not has_twin(kind.name):
        raise ConfigError(f"{where}: [devices.{name}]: device {name!r} is marked simulated but kind {kind.name!r} "
                          "has no twin; give its `port` or `usb_serial` and drop `simulated`")
    if not table.simulated and not (table.port or table.usb_serial or table.place or table.tags):
        raise ConfigError(
            f"{where}: [devices.{name}]: hardware device {name!r} needs `port` (e.g. \"/dev/ttyACM0\" or "
            "\"socket://host:4000\"), `usb_serial`, or a labgrid `place`/`tags` (docs/lab-farm.md); or set "
            "`simulated = true` to use its twin"
        )
    if table.token_file is not None and (table.simulated or not (table.port or "").startswith("socket://")):
        raise ConfigError(f"{where}: [devices.{name}]: `token_file` is for an on-board agent reached at "
                          "port = \"socket://HOST:PORT\" (docs/hardware.md); drop it or fix `port`")
    if (table.protocol == "eembc") != (table.firmware_model is not None):
        raise ConfigError(f"{where}: [devices.{name}]: `protocol = \"eembc\"` and `firmware_model` go together: the "
                          "MLPerf Tiny reference firmware has its model compiled in; name it (a catalog model)")
    if table.firmware_model is not None:
        from pytest_edgehil.link.eembc import UNSUPPORTED_FIRMWARE  # text constants only: no I/O imported

        if table.firmware_model in UNSUPPORTED_FIRMWARE:
            raise ConfigError(f"{where}: [devices.{name}]: firmware_model = {table.firmware_model!r}: "
                              f"{UNSUPPORTED_FIRMWARE[table.firmware_model]}")
    if table.tags and table.place is None and table.device_serial is not None:
        raise ConfigError(f"{where}: [devices.{name}]: `device_serial` pins one board, and `tags` let the farm hand "
                          "out any place that matches them, so the run would be refused whenever it handed out "
                          "another. Name the board's `place` instead of `tags`, or drop `device_serial` (each "
                          "record keeps the serial its board reported)")
    if table.protocol == "eembc" and table.device_serial is not None:
        raise ConfigError(f"{where}: [devices.{name}]: `device_serial` is checked against the serial number the "
                          "board reports in HELLO, and MLPerf Tiny reference firmware reports none; drop it (the "
                          "port's `usb_serial` still finds this board)")
    if table.protocol != "eembc" and (table.eembc_mode != "performance" or table.timestamp_hold_us is not None
                                      or table.eembc_results_print is not None or table.eembc_io_manager):
        raise ConfigError(f"{where}: [devices.{name}]: `eembc_mode`, `timestamp_hold_us`, `eembc_results_print` and "
                          "`eembc_io_manager` describe MLPerf Tiny reference firmware: add `protocol = \"eembc\"` "
                          "and `firmware_model`, or drop them")
    if table.faults is not None and not table.simulated:
        raise ConfigError(f"{where}: [devices.{name}]: `faults` are injected by a device twin; a real board's "
                          "faults come by themselves. Set `simulated = true`, or remove the faults table")
    if table.monitor is not None:
        from pytest_edgehil.instruments.monitor import parse_monitor

        try:
            parse_monitor(table.monitor)
        except ConfigError as exc:
            raise ConfigError(f"{where}: [devices.{name}]: {exc}") from None
        if table.analyzer is not None:
            raise ConfigError(f"{where}: [devices.{name}]: give `analyzer` (a SCPI analyzer) or `monitor` (a USB "
                              "power monitor) for this board's supply, not both")
    if table.monitor is not None or table.twin_monitor is not None:
        # A monitor that cannot power the board fails here, at start-up, not as a skip in every energy test.
        from pytest_edgehil.instruments.monitor import MONITOR_KINDS, monitor_class, parse_monitor

        mkind = parse_monitor(table.monitor)[0] if table.monitor else str(table.twin_monitor).lower()
        supply_v = table.supply_v if table.supply_v is not None else kind.supply_v
        if mkind in MONITOR_KINDS and supply_v is not None:
            problem = monitor_class(mkind).supply_problem(supply_v, table.current_range_a)
            if problem is not None:
                field = "monitor" if table.monitor else "twin_monitor"
                raise ConfigError(f"{where}: [devices.{name}]: device {name!r} cannot be measured through its "
                                  f"{field} {table.monitor or table.twin_monitor!r}: {problem}")
    faults = None
    if table.faults is not None:
        faults = table.faults.model_dump(exclude={"armed"}, exclude_none=True)
        faults["faults"] = [f.model_dump() for f in table.faults.armed]
        # A simulated device loads the simulation anyway (its twin); the fault kinds are the twin's own.
        from pytest_edgehil.sim.device_faults import DeviceFaultPlan

        try:
            DeviceFaultPlan.from_table(faults)
        except ConfigError as exc:
            raise ConfigError(f"{where}: [devices.{name}.faults]: {exc}") from None
    return DeviceConfig(
        name=name, kind=kind.name, simulated=table.simulated, port=table.port, usb_serial=table.usb_serial,
        device_serial=table.device_serial,
        baud=table.baud if table.baud is not None else kind.default_baud, analyzer=table.analyzer,
        analyzer_channel=table.analyzer_channel, supply_v=table.supply_v, current_range_a=table.current_range_a,
        faults=faults,
        twin_analyzer=table.twin_analyzer, monitor=table.monitor, twin_monitor=table.twin_monitor,
        token_file=_token_path(table.token_file, base) if table.token_file else None,
        models=tuple(table.models) or ((table.firmware_model,) if table.firmware_model else ()),
        protocol=table.protocol, firmware_model=table.firmware_model, eembc_mode=table.eembc_mode,
        timestamp_hold_us=table.timestamp_hold_us, eembc_results_print=table.eembc_results_print,
        eembc_io_manager=table.eembc_io_manager,
        place=table.place, place_tags=tuple(sorted((table.tags or {}).items())),
    )


def _token_path(value: str, base: Path) -> Path:
    """`~` expanded; a relative path is taken from the lab file's directory `base`."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def selected_names(selection: str | None) -> set[str] | None:
    """The device names `--device` selects, None for every device (`all`, the option not given, or empty:
    `select_devices` then says what is wrong with it)."""
    names = {s.strip() for s in (selection or "").split(",") if s.strip()}
    return None if not names or "all" in names else names


def _entry_namer(name: str) -> EntryNamer:
    """Errors of one `[devices.NAME]` table validated on its own, labelled as inside the file."""
    def namer(loc: tuple[int | str, ...], data: Any) -> tuple[str, tuple[int | str, ...]]:
        return f"[devices.{name}]", loc
    return namer


def lab_from_data(data: Any, path: Path, *, selected: Collection[str] | None = None) -> LabConfig:
    """A `LabConfig` from a parsed lab file; every problem is a ConfigError naming the entry and key.

    `selected`: the device names this run selects (None: all). A `[devices.NAME]` entry outside it that is
    wrong (a misspelt key, a monitor that cannot power the board) does not stop the run: it is left out of
    `devices` and its error kept in `unusable`, for the caller to warn about. Labs gate merges per board;
    one board's broken entry must not refuse the others' sound runs. File-level problems still raise."""
    from pytest_edgehil.config.schema import named_tables, validate  # pydantic: loaded on use only
    from pytest_edgehil.config.schemas import DeviceTable, LabFile

    unusable: dict[str, str] = {}
    raw_devices = data.get("devices") if isinstance(data, Mapping) else None
    if selected is not None and isinstance(raw_devices, Mapping):
        for name, raw in raw_devices.items():
            if name in selected:
                continue
            try:  # the entry alone: its schema errors are then its own, not the file's
                validate(DeviceTable, raw, what="lab file", source=str(path), fix=LAB_FIX,
                         entry=_entry_namer(str(name)))
            except ConfigError as exc:
                unusable[str(name)] = str(exc)
        if unusable:
            data = {**data, "devices": {k: v for k, v in raw_devices.items() if k not in unusable}}
    lab_file = validate(LabFile, data, what="lab file", source=str(path), fix=LAB_FIX,
                        entry=named_tables("devices", lambda name, _: f"[devices.{name}]"))
    # The lab's own kinds and twins first: its devices may be of them (docs/extending.md).
    if lab_file.lab.kinds:
        register_lab_kinds(Path(path).parent / lab_file.lab.kinds, f"lab file {path}: [lab] kinds")
    if lab_file.lab.profiles:
        from pytest_edgehil.sim.profile import register_profiles_file  # a lab with twins loads the simulation

        register_profiles_file(Path(path).parent / lab_file.lab.profiles, f"lab file {path}: [lab] profiles")
    devices = {}
    for name, table in lab_file.devices.items():
        try:
            devices[name] = _device_from_table(name, table, f"lab file {path}", Path(path).parent)
        except ConfigError as exc:
            if selected is None or name in selected:
                raise
            unusable[name] = str(exc)
    _check_serials_distinct(devices, f"lab file {path}", selected, unusable)
    root = lab_file.lab.dataset_root
    physics = lab_file.physics.model_dump(exclude_none=True)
    lab = LabConfig(name=lab_file.lab.name or Path(path).stem, path=Path(path), devices=devices,
                    dataset_root=(Path(path).parent / root) if root else None, physics=physics,
                    coordinator=lab_file.lab.coordinator, unusable=unusable)
    farm_devices = [name for name, dev in devices.items() if dev.in_farm]
    if farm_devices:  # labgrid is an optional extra: a lab that needs it says so at start-up, with the fix
        from pytest_edgehil.farm_places import check_farm_lab

        check_farm_lab(lab, farm_devices, f"lab file {path}")
    return lab


def _check_serials_distinct(devices: dict[str, DeviceConfig], where: str, selected: Collection[str] | None,
                            unusable: dict[str, str]) -> None:
    """ConfigError when two entries state one `device_serial` (compared as bring-up compares it): either board
    would then pass as either entry, and two boards swapped between their ports would go unnoticed. Where
    neither entry is selected, both are left out of `devices` into `unusable` instead (`lab_from_data`)."""
    from pytest_edgehil.bring_up import same_serial  # the bring-up's comparison, so the two never disagree

    stated = [(name, dev.device_serial) for name, dev in devices.items() if dev.device_serial is not None]
    for i, (name, serial) in enumerate(stated):
        for other, other_serial in stated[i + 1:]:
            if not same_serial(serial, other_serial):
                continue
            error = (f"{where}: [devices.{name}] and [devices.{other}] both state device_serial = {serial!r}: a "
                     "board's serial number names one board, so neither entry could tell its board from the "
                     "other's; set each entry's to the serial its own board reports in HELLO (the run summary "
                     "prints it)")
            if selected is None or name in selected or other in selected:
                raise ConfigError(error)
            for entry in (name, other):
                unusable[entry] = error
                devices.pop(entry, None)


def load_lab(path: Path, *, selected: Collection[str] | None = None) -> LabConfig:
    """Read and validate a lab file. Raises ConfigError naming the file, the `[devices.NAME]` entry and key;
    an entry outside `selected` that is wrong is left out instead (`lab_from_data`)."""
    return lab_from_data(read_toml(path, "lab file", "pass --lab PATH to an existing file"), Path(path),
                         selected=selected)


def unusable_warnings(lab: LabConfig) -> list[str]:
    """One line per entry left out of this run because it is wrong: its error, and what a run selecting it does."""
    return [f"{error.rstrip('.')}. [devices.{name}] is not selected by --device, so this run goes on without it; "
            f"a run that selects {name!r} (or every device) stops with this error" for name, error in lab.unusable.items()]


def apply_backend(lab: LabConfig, backend: str | None) -> LabConfig:
    """`--backend sim` simulates every device explicitly; `--backend hw` refuses any simulated one."""
    if backend in (None, ""):
        return lab
    if backend == "sim":
        devices = {}
        for name, dev in lab.devices.items():
            if not has_twin(dev.kind):
                raise ConfigError(f"--backend sim: device {name!r} (kind {dev.kind!r}) has no twin to simulate it")
            # A twin is never reserved through a farm: --backend sim drops the place as it drops the port,
            # and the board's serial number (the twin standing in for it reports its own).
            devices[name] = replace(dev, simulated=True, place=None, place_tags=(), device_serial=None)
        return replace(lab, devices=devices)
    if backend == "hw":
        simulated = [name for name, dev in lab.devices.items() if dev.simulated]
        if simulated:
            raise ConfigError(
                f"--backend hw, but lab {lab.name!r} marks {', '.join(simulated)} as simulated; "
                "pass --lab with a hardware lab file (see fixtures/lab.example-hw.toml)"
            )
        return lab  # each device's HELLO is then checked for twin firmware (bring_up.check_identity)
    raise ConfigError(f"--backend must be 'sim' or 'hw', got {backend!r}")
