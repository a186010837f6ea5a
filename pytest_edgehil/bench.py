"""The bench session: brings up each selected device (its twin, or the real board) on first use.

One `Bench` per pytest session. It owns the twins and the serial clients, hands each board out as a
`DeviceUnderTest` (`pytest_edgehil.device_under_test`: it caches which model the board holds, so a suite of
many tests uploads each model once, and finds the board again after a reset), and closes everything at the end.

A real board is held for the whole session: its cross-process lock (`pytest_edgehil.locks`) is taken
before its port is opened (exclusively), and released after the port is closed, so a second pytest
process (another xdist worker, another person) fails with "busy: held by PID …" — or waits, with
`lock_timeout_s` — and never talks to a board this session measures. A hardware analyzer channel is
locked the same way. Twins are private to the process that starts them and take no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import serial

from pytest_edgehil.bring_up import check_identity, power_board
from pytest_edgehil.config.kinds import get_device_kind
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.config.port_identity import port_identity
from pytest_edgehil.device_under_test import DeviceUnderTest, resolve_port
from pytest_edgehil.eembc_device import bring_up_eembc
from pytest_edgehil.errors import (
    CloseError,
    ConfigError,
    DeviceBusy,
    DeviceError,
    EdgeHILError,
    InstrumentBusy,
    InstrumentError,
)
from pytest_edgehil.farm import Farm, PlaceLease, apply_place, coordinator_address
from pytest_edgehil.instruments.base import PowerAnalyzer, open_analyzer
from pytest_edgehil.link.agent_port import agent_handshake
from pytest_edgehil.link.auth import read_token
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.traffic_log import TrafficLog
from pytest_edgehil.locks import ResourceLock, default_owner, lock_name

if TYPE_CHECKING:  # the hardware path never imports the simulation; twins come from pytest_edgehil.sim lazily
    from pytest_edgehil.config.catalog import ModelCatalog
    from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
    from pytest_edgehil.sim.device_twin import DeviceTwin
    from pytest_edgehil.sim.monitor_pty import SerialTwin

# DeviceUnderTest and resolve_port live in pytest_edgehil.device_under_test; importable from here as before.
__all__ = ["Bench", "DeviceUnderTest", "SupplySettings", "device_lock", "resolve_port"]


@dataclass(frozen=True)
class SupplySettings:
    """How the analyzer powers and measures one board."""

    resource: str
    channel: int
    supply_v: float
    current_range_a: float


class Bench:
    """The devices and analyzers of one session, brought up on first use and closed together.

    Raises DeviceError from `device()` when a board cannot be reached or identifies as another kind,
    ConfigError from `analyzer()` when the lab lacks what energy needs, and CloseError from `close()`.
    """

    def __init__(self, lab: LabConfig, *, seed: int = 0, timeout_s: float = 10.0,
                 analyzer_override: str | None = None, lock_timeout_s: float = 0.0,
                 on_lock_wait: Callable[[str], None] | None = None, owner: str | None = None,
                 twin_realtime: float = 0.0, catalog: ModelCatalog | None = None) -> None:
        self.lab = lab
        self.seed = seed
        self.timeout_s = timeout_s
        self.analyzer_override = analyzer_override
        self.lock_timeout_s = lock_timeout_s  # 0: a busy board fails at once; > 0: wait that long for it
        self.on_lock_wait = on_lock_wait  # told what a waiting bring-up waits for
        self.owner = owner or default_owner()  # what the lock files say holds them (the pytest command line)
        self.twin_realtime = twin_realtime  # twins sleep their simulated stage times × this (0: virtual time)
        self.catalog = catalog  # the models a firmware may have compiled in (eembc devices)
        self._firmware_twins: dict[str, Any] = {}  # eembc devices' firmware twins, closed with the bench
        self._devices: dict[str, DeviceUnderTest] = {}
        self._failed: dict[str, EdgeHILError] = {}  # bring-ups that failed: not retried in this run
        self._not_found_again: dict[str, DeviceError] = {}  # recover_lost() failed: not retried either
        self._analyzers: dict[str, tuple[PowerAnalyzer, SupplySettings]] = {}
        self._analyzer_twins: dict[str, AnalyzerTwin] = {}
        self.monitor_twins: dict[str, SerialTwin] = {}  # a simulated device's power-monitor twin (PPK2, LPM01A)
        self.analyzer_locks: dict[str, ResourceLock] = {}
        self._farm: Farm | None = None  # the labgrid coordinator, connected when a farm device comes up

    def analyzer(self, name: str) -> tuple[PowerAnalyzer, SupplySettings]:
        """The power analyzer on device `name`'s supply: the analyzer twin for a simulated device."""
        dut = self.device(name)  # first: a real board's bring-up opens its analyzer to power it
        if name not in self._analyzers:
            self._analyzers[name] = self._bring_up_analyzer(dut)
        return self._analyzers[name]

    def analyzer_twin(self, name: str) -> AnalyzerTwin | None:
        return self._analyzer_twins.get(name)

    def analyzer_missing(self, name: str) -> str | None:
        """Why device `name` has no analyzer to measure energy with, or None when one is wired (a twin's
        analyzer twin, --analyzer, or the lab's `analyzer` with `supply_v` and `current_range_a`).

        A farm device's wiring may come from its labgrid place's tags (`farm.apply_place`), known only once
        the place is acquired: such a device is brought up first (DeviceError, DeviceBusy as `device`)."""
        config = self.lab.devices[name]
        if name in self._devices or (config.in_farm and not config.simulated and not self.analyzer_override):
            config = self.device(name).config  # the wiring the bring-up used, the place's tags applied
        return self._wiring_missing(config)

    def _wiring_missing(self, config: DeviceConfig) -> str | None:
        name = config.name
        if config.simulated and not self.analyzer_override:
            if config.protocol == "eembc" and not config.twin_monitor:
                # The firmware twin has no SCPI analyzer twin: MLPerf Tiny's energy is energy-mode firmware's
                # timestamp GPIO sampled by a monitor's digital input.
                return (f"device {name!r} is a simulated board running MLPerf Tiny reference firmware with no "
                        "monitor twin: its energy comes from energy-mode firmware's timestamp GPIO on a monitor; "
                        'set eembc_mode = "energy" and twin_monitor = "ppk2" in its lab-file table')
            return None
        supply_v = config.supply_v if config.supply_v is not None else get_device_kind(config.kind).supply_v
        # --analyzer stands in for the lab's `analyzer`, not for the supply settings the board needs.
        missing = [key for key, value in (("analyzer", self.analyzer_override or config.analyzer),
                                          ("supply_v", supply_v), ("current_range_a", config.current_range_a))
                   if value in (None, "")]
        if not missing:
            return None
        where = "its lab-file table" + (" and its labgrid place's tags lack" if config.in_farm else " lacks")
        return (f"device {name!r} has no power analyzer wired: {where} {', '.join(missing)} "
                "(energy needs `analyzer` (VISA resource), `supply_v` and `current_range_a`, or --analyzer)")

    def _bring_up_analyzer(self, dut: DeviceUnderTest) -> tuple[PowerAnalyzer, SupplySettings]:
        config = dut.config
        firmware_twin = self._firmware_twins.get(config.name)  # an eembc twin: a monitor twin reads its timeline
        if not self.analyzer_override and (config.monitor or ((dut.twin is not None or firmware_twin is not None) and config.twin_monitor)):
            from pytest_edgehil.monitors import bring_up_monitor  # a USB power monitor instead of SCPI

            return bring_up_monitor(self, dut, firmware_twin)
        if dut.twin is not None and not self.analyzer_override:
            from pytest_edgehil.sim import start_analyzer_twin

            twin, twin_resource, twin_supply_v, twin_range_a = start_analyzer_twin(
                dut.twin, seed=self.seed, dialect=config.twin_analyzer or "keysight-n6705c")
            self._analyzer_twins[config.name] = twin  # owned from here on: close() stops it
            # A lab file's `current_range_a` is the range the twin runs on too (the range it would pick else).
            range_a = config.current_range_a if config.current_range_a is not None else twin_range_a
            settings = SupplySettings(twin_resource, 1, twin_supply_v, range_a)
            return open_analyzer(settings.resource, channel=settings.channel), settings
        return self._open_hw_analyzer(config)

    def _open_hw_analyzer(self, config: DeviceConfig) -> tuple[PowerAnalyzer, SupplySettings]:
        missing = self._wiring_missing(config)
        if missing is not None:
            raise ConfigError(f"{missing}")
        resource = self.analyzer_override or config.analyzer
        # The lab's supply voltage wins; the kind's nominal supply is the default.
        supply_v = config.supply_v if config.supply_v is not None else get_device_kind(config.kind).supply_v
        if not resource or supply_v is None or config.current_range_a is None:  # _wiring_missing said so
            raise ConfigError(f"device {config.name!r}: energy needs `analyzer`, `supply_v` and `current_range_a`")
        settings = SupplySettings(resource, config.analyzer_channel, supply_v, config.current_range_a)
        lock = ResourceLock(f"analyzer {resource} channel {settings.channel} (device {config.name!r})",
                            lock_name("analyzer", f"{resource}#ch{settings.channel}"),
                            busy_error=InstrumentBusy, owner=self.owner)
        lock.acquire(self.lock_timeout_s, self.on_lock_wait)
        try:
            analyzer = open_analyzer(settings.resource, channel=settings.channel)
        except InstrumentError as exc:
            lock.release()
            source = "--analyzer" if self.analyzer_override else f"the lab file's `analyzer` of {config.name!r}"
            raise InstrumentError(f"device {config.name!r}: its power analyzer {resource} (channel "
                                  f"{settings.channel}, from {source}) cannot be used: {exc}") from exc
        except BaseException:
            lock.release()
            raise
        self.analyzer_locks[config.name] = lock
        return analyzer, settings

    def _power_before_hello(self, config: DeviceConfig) -> None:
        """A real board on an analyzer is powered (trigger input ready) before its first byte: the analyzer
        comes up with the device, not at the first energy test. Boards without one are powered otherwise."""
        if config.simulated or self._wiring_missing(config) is not None or config.name in self._analyzers:
            return
        analyzer, settings = self._analyzers[config.name] = self._open_hw_analyzer(config)
        power_board(config, analyzer, settings)

    def reconnect(self, name: str, wait_s: float | None = None) -> DeviceUnderTest:
        """Find device `name` again after a reset, hang or vanished port (`DeviceUnderTest.recover`)."""
        dut = self.device(name)
        dut.recover(wait_s)
        return dut

    def device(self, name: str) -> DeviceUnderTest:
        """Device `name`, brought up on first use. A bring-up that failed is not retried in this run: a
        silent board would otherwise cost its HELLO timeout again in every one of its tests."""
        if name in self._failed:
            raise DeviceError(f"device {name!r}: not retried, its bring-up failed earlier in this run: "
                              f"{self._failed[name]}") from self._failed[name]
        if name not in self._devices:
            try:
                self._devices[name] = self._bring_up(self.lab.devices[name])
            except EdgeHILError as exc:
                self._failed[name] = exc
                raise
        return self._devices[name]

    def recover_lost(self, name: str, *, wait_s: float | None = None, after: str = "") -> str | None:
        """Find device `name` again if its client lost its port (a reset, a reboot, a pulled cable).

        Returns None when the port was not lost; else reconnects (`DeviceUnderTest.recover`, polling up to
        `wait_s`, default the bench's `timeout_s`), notes it in the device's traffic log and returns that
        note: "device 'X' was lost {after} (why) and found again on port P". `after` says when it was lost
        ("after test T"). A recovery that fails is not retried in this run, like a failed bring-up: raises
        DeviceError naming the device, the port lost, what it looked for and what to check, and every later
        `recover_lost(name)` raises at once instead of waiting again. (`device(name)` still returns the
        device, for what its HELLO said; its client refuses commands.)
        """
        dut = self.device(name)
        if name in self._not_found_again:
            earlier = self._not_found_again[name]
            raise DeviceError(f"device {name!r}: not retried, finding it again after its port was lost failed "
                              f"earlier in this run: {earlier}") from earlier
        why = dut.client.lost
        if why is None:
            return None
        wait_s = self.timeout_s if wait_s is None else wait_s
        lost_port, when = dut.port, f" {after}" if after else ""
        try:
            dut.recover(wait_s)
        except EdgeHILError as exc:
            error = DeviceError(
                f"device {name!r}: its port {lost_port} was lost{when} ({why}) and the board was not found "
                f"again within {wait_s:.3g} s by {dut.looked_for()}: {str(exc).rstrip('.')}. "
                f"{self._where_to_check(dut)}; the rest of this run's tests of {name!r} are not retried")
            self._not_found_again[name] = error
            dut.traffic.note("--", f"not found again: {exc}", device=name)
            raise error from exc
        note = f"device {name!r} was lost{when} ({why}) and found again on port {dut.port}"
        dut.traffic.note("--", note, device=name)
        return note

    def _where_to_check(self, dut: DeviceUnderTest) -> str:
        """What to check when a lost board was not found again: a farm board's place and exporter, else its
        cable and the lab file's `usb_serial` (a farm device cannot give one: its place finds the board)."""
        if dut.place is not None and self._farm is not None:
            return (f"Check the board of labgrid place {dut.place.place!r} on exporter host {dut.place.host}: its "
                    "cable and power, the exporter's log, and that the place still lists it (`labgrid-client -x "
                    f"{self._farm.address} -p {dut.place.place} show`)")
        if dut.port.startswith(("socket://", "rfc2217://")):
            return ("Check that the board is up and its agent (or ser2net) is listening at that host and port "
                    "again (a rebooted board restarts it), and the network to it")
        return ("Check its cable and power, and the lab file's `usb_serial` (a board that resets comes back under "
                "another port name, found only by its serial number)")

    @property
    def active(self) -> list[DeviceUnderTest]:
        return list(self._devices.values())

    def _bring_up(self, config: DeviceConfig) -> DeviceUnderTest:
        if config.protocol == "eembc":  # the MLPerf Tiny reference firmware: its own text protocol
            dut, firmware_twin = bring_up_eembc(self, config)
            if firmware_twin is not None:
                self._firmware_twins[config.name] = firmware_twin
            return dut
        twin: DeviceTwin | None = None
        client: DeviceClient | None = None
        lock: ResourceLock | None = None
        lease: PlaceLease | None = None
        try:
            if config.simulated:
                from pytest_edgehil.sim import start_device_twin

                twin, port = start_device_twin(config.kind, config.name, seed=self.seed, faults=config.faults,
                                               realtime=self.twin_realtime, physics=self.lab.physics)
            else:
                if config.in_farm:  # a labgrid place: reserve and acquire it, then open its ser2net port
                    if self._farm is None:
                        self._farm = Farm(coordinator_address(self.lab))
                    lease = self._farm.acquire(config, self.lock_timeout_s, self.on_lock_wait)
                    config = apply_place(config, lease)
                port = resolve_port(config)
                lock = device_lock(config, port, owner=self.owner)
                lock.acquire(self.lock_timeout_s, self.on_lock_wait)  # before the port: never talk to a held board
                self._power_before_hello(config)
            traffic = TrafficLog()
            handshake = None
            if config.token_file is not None and not config.simulated:  # an on-board agent: prove the token
                token = read_token(config.token_file, what=f"device {config.name!r}")
                handshake = agent_handshake(token, timeout_s=self.timeout_s, name=config.name)
            client = DeviceClient(port, baudrate=config.baud, timeout_s=self.timeout_s, name=config.name,
                                  traffic_log=traffic, handshake=handshake)
            try:
                client.open()
            except DeviceError as exc:
                if lock is not None and "exclusively lock" in str(exc.__cause__ or ""):
                    raise DeviceBusy(f"device {config.name!r}: port {port} is busy: another program holds it open "
                                     f"exclusively (a run of another user, or a terminal program); find it with "
                                     f"`lsof {port}` or `fuser {port}`. {exc}") from exc
                raise
            try:
                hello = client.hello()
            except serial.SerialException as exc:
                raise DeviceError(f"device {config.name!r}: cannot open port {port} at {config.baud} baud: {exc}. "
                                  "Check the cable, that no other program holds the port, and the lab file's "
                                  "`port`/`usb_serial`.") from exc
            check_identity(config, port, hello, self.lab)
            find_port = partial(self._farm.current_url, lease) if lease is not None and self._farm else None
            return DeviceUnderTest(config, port, client, hello, traffic, twin, lock=lock, place=lease,
                                   find_port=find_port)
        except BaseException:
            # A failed bring-up owns nothing afterwards: close its port, stop its twin and give its lock back,
            # then re-raise the bring-up error (a close error here would only hide it).
            _close_quietly(client, twin, lock)
            if lease is not None and self._farm is not None:
                self._farm.release(lease)
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
        for name, monitor_twin in self.monitor_twins.items():
            steps.append((f"monitor twin of {name!r}", monitor_twin.close))
        for name, lock in self.analyzer_locks.items():
            steps.append((f"lock of the analyzer of {name!r} ({lock.path})", lock.release))
        for name, dut in self._devices.items():
            steps.append((f"device {name!r} port {dut.port}", dut.client.close))
            if dut.twin is not None:
                steps.append((f"device twin {name!r}", dut.twin.close))
            if dut.lock is not None:  # after its port: the next holder must find the port closed
                steps.append((f"lock of device {name!r} ({dut.lock.path})", dut.lock.release))
            if dut.place is not None and self._farm is not None:  # after the port and lock: the board is free
                steps.append((f"labgrid place {dut.place.place!r} of device {name!r}",
                              partial(self._farm.release, dut.place)))
        for name, firmware_twin in self._firmware_twins.items():
            steps.append((f"firmware twin {name!r}", firmware_twin.close))
        self._firmware_twins.clear()
        if self._farm is not None:
            steps.append((f"labgrid coordinator {self._farm.address}", self._farm.close))
            self._farm = None
        self._analyzers.clear()
        self._analyzer_twins.clear()
        self.monitor_twins.clear()
        self.analyzer_locks.clear()
        self._devices.clear()
        failures: list[tuple[str, BaseException]] = []
        for part, close in steps:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - collected and raised together below
                failures.append((part, exc))
        if failures:
            raise CloseError(failures)


def device_lock(config: DeviceConfig, port: str, *, owner: str | None = None) -> ResourceLock:
    """The cross-process lock of a real board: named by its USB serial number when the lab gives one
    (stable across re-enumeration), else by the resolved port path, so two lab files naming one board
    under different names still share one lock (`port_identity`: a by-id link and its node, `localhost` and
    `127.0.0.1`)."""
    identity = f"usb-{config.usb_serial}" if config.usb_serial else port_identity(port)
    return ResourceLock(f"device {config.name!r} on {port}", lock_name("device", identity), busy_error=DeviceBusy,
                        owner=owner or default_owner())


def _close_quietly(client: DeviceClient | None, twin: DeviceTwin | None, lock: ResourceLock | None = None) -> None:
    for close in (client.close if client is not None else None, twin.close if twin is not None else None,
                  lock.release if lock is not None else None):
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001, S110 - the bring-up error being raised is the one to report
                pass
