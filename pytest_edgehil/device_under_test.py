"""A device under test: one connected board (or twin), the model it holds, and finding it again.

`DeviceUnderTest` is what the bench hands to tests and meters: the board's lab entry, its port and client,
what its HELLO said, its traffic log, and the model this session put on it (`ensure_model` re-selects it
by hash before each test rather than trusting memory). When the board resets, hangs or its port vanishes,
`recover()` finds it again by USB serial number (`resolve_port`; a farm board through its labgrid place), re-HELLOs, checks it is the same board
and re-selects its model. The bench (`pytest_edgehil.bench`) brings devices up and closes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from serial.tools import list_ports

from pytest_edgehil.config.lab import DeviceConfig
from pytest_edgehil.errors import DeviceError, DeviceRejected
from pytest_edgehil.farm import PlaceLease
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import ErrorCode, HelloReply
from pytest_edgehil.link.recovery import reconnect
from pytest_edgehil.link.traffic_log import TrafficLog
from pytest_edgehil.locks import ResourceLock

if TYPE_CHECKING:  # the hardware path never imports the simulation; twins come from pytest_edgehil.sim lazily
    from serial.tools.list_ports_common import ListPortInfo

    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.timeline import ActivityTimeline


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
    lock: ResourceLock | None = None  # held from bring-up to close (real boards; twins are private)
    place: PlaceLease | None = None  # the labgrid place this board was acquired as (a farm device)
    # Where to look for the board after it was lost, when not at `port` or by USB serial number: a farm
    # board at the URL its place publishes now (`Farm.current_url`; the exporter may serve it on a new port).
    find_port: Callable[[], str] | None = None
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
        """Make `model_bytes` the active model: select it by hash if the device holds it, else upload.

        Called before each test's RUNs. A model this session already put on the device is re-selected by
        its SHA-256 every time, not trusted from memory: a board that rebooted (or was driven by something
        that ignores the lock) may hold another one. A device that no longer holds it (NO_MODEL) gets it
        uploaded again. Between this and the next call, every RUN's RESULT must name this model (protocol
        version 2), else the client raises ModelMismatch and nothing from that RUN is recorded.
        Raises DeviceError (DeviceRejected, DeviceTimeout, …) when the device refuses or does not answer.
        """
        sha = hashlib.sha256(model_bytes).hexdigest()
        if sha in self._flashed:
            try:
                self.client.select_model(sha)
                self.loaded_sha256 = sha
                return sha
            except DeviceRejected as exc:
                if exc.code != ErrorCode.NO_MODEL:
                    raise
                self._flashed.discard(sha)  # its flash was wiped (reset, reflash): upload again below
        self.loaded_sha256 = None
        self.client.load_model(model_bytes, name)
        self._flashed.add(sha)
        self.loaded_sha256 = sha
        return sha

    def recover(self, wait_s: float | None = None) -> HelloReply:
        """Reconnect after the board reset, hung or its port vanished; returns its new HELLO.

        Finds the port again by USB serial number (`resolve_port`; a twin through the simulated USB
        registry, by the serial number it reported), polling up to `wait_s` (default: the client's
        timeout) while it re-enumerates; reopens it; re-HELLOs and checks it is the same board (kind and
        serial number); re-selects the active model by hash. If the board lost it (NO_MODEL: flash wiped),
        nothing is active afterwards and the next `ensure_model` uploads it again. Raises DeviceError
        (board absent or another board), or the link's typed errors if the board misbehaves again.
        """
        hello = reconnect(self.client, self._find_port, wait_s=self.client.timeout_s if wait_s is None else wait_s,
                          expect=self.hello)
        self.port, self.hello = self.client.port, hello
        sha, self.loaded_sha256 = self.loaded_sha256, None
        if sha is not None:
            try:
                self.client.select_model(sha)
                self.loaded_sha256 = sha
            except DeviceRejected as exc:
                if exc.code != ErrorCode.NO_MODEL:
                    raise
                self._flashed.clear()  # the board lost its flash: every model is uploaded again when asked for
        return hello

    def looked_for(self) -> str:
        """Where `recover()` looks for the board: "USB serial number 'X'", "labgrid place 'P' …" or "port P"
        (for error messages)."""
        if self.place is not None:
            return f"labgrid place {self.place.place!r} (the serial port its exporter publishes now)"
        usb_serial = self.twin.usb_serial if self.twin is not None else self.config.usb_serial
        return f"USB serial number {usb_serial!r}" if usb_serial else f"port {self.port}"

    def _find_port(self) -> str:
        if self.find_port is not None:
            return self.find_port()
        if self.twin is not None:
            from pytest_edgehil.sim import sim_comports

            return resolve_port(replace(self.config, usb_serial=self.twin.usb_serial), comports=sim_comports)
        if self.config.usb_serial:
            return resolve_port(self.config)
        return self.port  # a fixed port (socket://, /dev/ttyS0): reopen it as it is


def resolve_port(config: DeviceConfig, comports: Callable[[], Iterable[ListPortInfo]] | None = None) -> str:
    """The port to open: found by USB serial number when given (boards re-enumerate on reset).

    `comports` lists the ports present (default: `serial.tools.list_ports.comports`; the simulation passes
    its twins' registry). Raises DeviceError naming the serial number and the ports present.
    """
    if config.usb_serial:
        ports = list((comports or list_ports.comports)())
        for info in ports:
            if info.serial_number == config.usb_serial:
                return info.device
        present = ", ".join(f"{p.device} (serial {p.serial_number})" for p in ports) or "none"
        raise DeviceError(f"device {config.name!r}: no USB serial port with serial number {config.usb_serial!r}; "
                          f"ports present: {present}. Check the USB cable and that the board enumerated.")
    assert config.port is not None  # the lab loader guarantees port or usb_serial for hardware
    return config.port
