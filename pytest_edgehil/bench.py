"""The bench session: brings up each selected device (its twin, or the real board) on first use.

One `Bench` per pytest session. It owns the twins and the serial clients, caches which model each
device holds so a suite of many tests uploads each model once, and closes everything at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import serial
from serial.tools import list_ports

from pytest_edgehil.config.kinds import get_device_kind
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import CloseError, ConfigError, DeviceError
from pytest_edgehil.instruments.base import PowerAnalyzer, open_analyzer
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import HelloReply
from pytest_edgehil.link.traffic_log import TrafficLog

if TYPE_CHECKING:  # the hardware path never imports the simulation; twins come from pytest_edgehil.sim lazily
    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.timeline import ActivityTimeline


@dataclass(frozen=True)
class SupplySettings:
    """How the analyzer powers and measures one board."""

    resource: str
    channel: int
    supply_v: float
    current_range_a: float


@dataclass
class DeviceUnderTest:
    """A connected board (or twin) with its identity, traffic log and currently loaded model."""

    config: DeviceConfig
    port: str
    client: DeviceClient
    hello: HelloReply
    traffic: TrafficLog
    twin: DeviceTwin | None = None
    loaded_sha256: str | None = None
    _flashed: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def backend(self) -> str:
        return "SIMULATED" if self.config.simulated else "HW"

    @property
    def timeline(self) -> ActivityTimeline | None:
        return self.twin.timeline if self.twin is not None else None

    def ensure_model(self, model_bytes: bytes, name: str) -> str:
        """Make `model_bytes` the active model: select it if the device already holds it, else upload."""
        sha = hashlib.sha256(model_bytes).hexdigest()
        if self.loaded_sha256 == sha:
            return sha
        if sha in self._flashed:
            self.client.select_model(sha)
        else:
            self.client.load_model(model_bytes, name)
            self._flashed.add(sha)
        self.loaded_sha256 = sha
        return sha


def resolve_port(config: DeviceConfig) -> str:
    """The port to open: found by USB serial number when given (boards re-enumerate on reset)."""
    if config.usb_serial:
        for info in list_ports.comports():
            if info.serial_number == config.usb_serial:
                return info.device
        present = ", ".join(f"{p.device} (serial {p.serial_number})" for p in list_ports.comports()) or "none"
        raise DeviceError(f"device {config.name!r}: no USB serial port with serial number {config.usb_serial!r}; "
                          f"ports present: {present}. Check the USB cable and that the board enumerated.")
    assert config.port is not None  # the lab loader guarantees port or usb_serial for hardware
    return config.port


class Bench:
    """The devices and analyzers of one session, brought up on first use and closed together.

    Raises DeviceError from `device()` when a board cannot be reached or identifies as another kind,
    ConfigError from `analyzer()` when the lab lacks what energy needs, and CloseError from `close()`.
    """

    def __init__(self, lab: LabConfig, *, seed: int = 0, timeout_s: float = 10.0,
                 analyzer_override: str | None = None) -> None:
        self.lab = lab
        self.seed = seed
        self.timeout_s = timeout_s
        self.analyzer_override = analyzer_override
        self._devices: dict[str, DeviceUnderTest] = {}
        self._analyzers: dict[str, tuple[PowerAnalyzer, SupplySettings]] = {}
        self._analyzer_twins: dict[str, AnalyzerTwin] = {}

    def analyzer(self, name: str) -> tuple[PowerAnalyzer, SupplySettings]:
        """The power analyzer on device `name`'s supply: the analyzer twin for a simulated device."""
        if name not in self._analyzers:
            self._analyzers[name] = self._bring_up_analyzer(self.device(name))
        return self._analyzers[name]

    def analyzer_twin(self, name: str) -> AnalyzerTwin | None:
        return self._analyzer_twins.get(name)

    def _bring_up_analyzer(self, dut: DeviceUnderTest) -> tuple[PowerAnalyzer, SupplySettings]:
        config = dut.config
        if dut.twin is not None and not self.analyzer_override:
            from pytest_edgehil.sim import start_analyzer_twin

            twin, twin_resource, twin_supply_v, twin_range_a = start_analyzer_twin(
                dut.twin, seed=self.seed, dialect=config.twin_analyzer or "keysight-n6705c")
            self._analyzer_twins[config.name] = twin  # owned from here on: close() stops it
            settings = SupplySettings(twin_resource, 1, twin_supply_v, twin_range_a)
        else:
            resource = self.analyzer_override or config.analyzer
            # The lab's supply voltage wins; the kind's nominal supply is the default.
            supply_v = config.supply_v if config.supply_v is not None else get_device_kind(config.kind).supply_v
            if not resource or supply_v is None or config.current_range_a is None:
                raise ConfigError(
                    f"device {config.name!r}: energy needs `analyzer` (VISA resource), `supply_v` and "
                    "`current_range_a` in its lab-file table (or --analyzer RESOURCE)")
            settings = SupplySettings(resource, config.analyzer_channel, supply_v, config.current_range_a)
        return open_analyzer(settings.resource, channel=settings.channel), settings

    def device(self, name: str) -> DeviceUnderTest:
        if name not in self._devices:
            self._devices[name] = self._bring_up(self.lab.devices[name])
        return self._devices[name]

    @property
    def active(self) -> list[DeviceUnderTest]:
        return list(self._devices.values())

    def _bring_up(self, config: DeviceConfig) -> DeviceUnderTest:
        twin: DeviceTwin | None = None
        client: DeviceClient | None = None
        try:
            if config.simulated:
                from pytest_edgehil.sim import start_device_twin

                twin, port = start_device_twin(config.kind, config.name, seed=self.seed, physics=self.lab.physics)
            else:
                port = resolve_port(config)
            traffic = TrafficLog()
            client = DeviceClient(port, baudrate=config.baud, timeout_s=self.timeout_s, name=config.name,
                                  traffic_log=traffic)
            try:
                client.open()
                hello = client.hello()
            except serial.SerialException as exc:
                raise DeviceError(f"device {config.name!r}: cannot open port {port} at {config.baud} baud: {exc}. "
                                  "Check the cable, that no other program holds the port, and the lab file's "
                                  "`port`/`usb_serial`.") from exc
            if hello.device_kind != config.kind:
                raise DeviceError(f"device {config.name!r} on {port} identifies as kind {hello.device_kind!r}, "
                                  f"the lab file says {config.kind!r}; fix the lab file or the cabling")
            return DeviceUnderTest(config, port, client, hello, traffic, twin)
        except BaseException:
            # A failed bring-up owns nothing afterwards: close its port and stop its twin, then re-raise the
            # bring-up error (a close error here would only hide it).
            _close_quietly(client, twin)
            raise

    def close(self) -> None:
        """Close every analyzer, analyzer twin, device client and device twin, even when some close fails.

        Raises CloseError naming each part whose close raised, after all of them were tried.
        """
        steps: list[tuple[str, Callable[[], None]]] = []
        for name, (analyzer, settings) in self._analyzers.items():
            steps.append((f"analyzer of {name!r} ({settings.resource})", analyzer.close))
        for name, analyzer_twin in self._analyzer_twins.items():
            steps.append((f"analyzer twin of {name!r}", analyzer_twin.close))
        for name, dut in self._devices.items():
            steps.append((f"device {name!r} port {dut.port}", dut.client.close))
            if dut.twin is not None:
                steps.append((f"device twin {name!r}", dut.twin.close))
        self._analyzers.clear()
        self._analyzer_twins.clear()
        self._devices.clear()
        failures: list[tuple[str, BaseException]] = []
        for part, close in steps:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - collected and raised together below
                failures.append((part, exc))
        if failures:
            raise CloseError(failures)


def _close_quietly(client: DeviceClient | None, twin: DeviceTwin | None) -> None:
    for close in (client.close if client is not None else None, twin.close if twin is not None else None):
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - the bring-up error being raised is the one to report
                pass
