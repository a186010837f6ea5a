"""The bench session: brings up each selected device (its twin, or the real board) on first use.

One `Bench` per pytest session. It owns the twins and the serial clients, caches which model each
device holds so a suite of many tests uploads each model once, and closes everything at the end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import serial
from serial.tools import list_ports

from pytest_edgehil.config.kinds import get_device_kind
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import ConfigError, DeviceError
from pytest_edgehil.instruments.base import PowerAnalyzer, open_analyzer
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import HelloReply
from pytest_edgehil.link.traffic_log import TrafficLog
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
            profile = dut.twin.profile
            twin = AnalyzerTwin(dut.twin.timeline, seed=self.seed)
            self._analyzer_twins[config.name] = twin
            resource = twin.start()
            peak_w = max(profile.power.readout_w, profile.power.inference_w, profile.power.retrieval_w)
            settings = SupplySettings(resource, 1, profile.supply_v, 1.25 * peak_w / profile.supply_v)
        else:
            resource = self.analyzer_override or config.analyzer
            if not resource or config.supply_v is None or config.current_range_a is None:
                raise ConfigError(
                    f"device {config.name!r}: energy needs `analyzer` (VISA resource), `supply_v` and "
                    "`current_range_a` in its lab-file table (or --analyzer RESOURCE)")
            settings = SupplySettings(resource, config.analyzer_channel, config.supply_v, config.current_range_a)
        return open_analyzer(settings.resource, channel=settings.channel), settings

    def device(self, name: str) -> DeviceUnderTest:
        if name not in self._devices:
            self._devices[name] = self._bring_up(self.lab.devices[name])
        return self._devices[name]

    @property
    def active(self) -> list[DeviceUnderTest]:
        return list(self._devices.values())

    def _bring_up(self, config: DeviceConfig) -> DeviceUnderTest:
        twin = None
        if config.simulated:
            profile = get_device_kind(config.kind).profile
            assert profile is not None  # the lab loader refuses simulated kinds without a twin
            twin = DeviceTwin(profile, config.name, seed=self.seed)
            port = twin.start()
        else:
            port = resolve_port(config)
        traffic = TrafficLog()
        try:
            client = DeviceClient(port, baudrate=config.baud, timeout_s=self.timeout_s, name=config.name,
                                  traffic_log=traffic)
            client.open()
            hello = client.hello()
        except serial.SerialException as exc:
            if twin is not None:
                twin.close()
            raise DeviceError(f"device {config.name!r}: cannot open port {port} at {config.baud} baud: {exc}. "
                              "Check the cable, that no other program holds the port, and the lab file's "
                              "`port`/`usb_serial`.") from exc
        except BaseException:
            if twin is not None:
                twin.close()
            raise
        if hello.device_kind != config.kind:
            client.close()
            raise DeviceError(f"device {config.name!r} on {port} identifies as kind {hello.device_kind!r}, "
                              f"the lab file says {config.kind!r}; fix the lab file or the cabling")
        return DeviceUnderTest(config, port, client, hello, traffic, twin)

    def close(self) -> None:
        for analyzer, _ in self._analyzers.values():
            analyzer.close()
        for twin in self._analyzer_twins.values():
            twin.close()
        self._analyzers.clear()
        self._analyzer_twins.clear()
        for dut in self._devices.values():
            try:
                dut.client.close()
            finally:
                if dut.twin is not None:
                    dut.twin.close()
        self._devices.clear()
