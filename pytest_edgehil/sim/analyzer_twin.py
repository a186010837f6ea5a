"""The analyzer twin: a power analyzer that digitizes the device twin's `ActivityTimeline`.

It is a real SCPI server on loopback TCP that speaks the dialect of one of our drivers, built from
that driver's declarations (`twin_dialect`), keeps its settings as state, has a real error queue, and
captures a window around the device's trigger edge. What a capture holds (mean power per sample,
noise, quantization) is `trace_synthesis`. Faults (a reply late, short or garbled, a queued error, a
lost trigger, a clipped capture) are armed with `inject` or the `faults` argument: `analyzer_faults`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments import scpi
from pytest_edgehil.instruments.dialect import BYTE_ORDER_SETTING, FORMAT_SETTING, FetchQuery
from pytest_edgehil.instruments.scpi import Setting, Value
from pytest_edgehil.sim.analyzer_faults import (
    ACQUISITION,
    ANY_COMMAND,
    BLOCK_FAULTS,
    FETCH,
    REPLY_FAULTS,
    STATUS,
    AnalyzerFault,
    FaultPlan,
    reshape_reply,
)
from pytest_edgehil.sim.bench_physics import BenchPhysics, analog_samples, trigger_delay_s
from pytest_edgehil.sim.scpi_server import Reply, ScpiCommand, ScpiServer
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.trace_synthesis import (
    CaptureWindow,
    digitize,
    mean_power_per_sample,
    overload_and_pin,
)
from pytest_edgehil.sim.twin_dialect import (
    DIALECTS,
    CapturePlan,
    ScpiFault,
    TwinDialect,
    normalized_args,
    without_channel_list,
)

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

__all__ = ["DIALECTS", "AnalyzerFault", "AnalyzerTwin", "CapturePlan", "CaptureWindow", "TwinDialect",
           "mean_power_per_sample"]

GRACE_S = 0.05  # real seconds to wait for the device to record activity up to the window's end


@dataclass
class _Acquisition:
    plan: CapturePlan
    armed_at_s: float
    index: int
    status: str = "waiting for trigger"
    cancelled: threading.Event = field(default_factory=threading.Event)
    bus_trigger: threading.Event = field(default_factory=threading.Event)
    bus_trigger_s: float = 0.0
    trigger_lost: bool = False  # fault: armed, but the trigger never fires
    clip_overload: float | None = None  # fault: the device draws this multiple of the range; pinned there


@dataclass(frozen=True)
class _Capture:
    current_a: np.ndarray  # float32
    voltage_v: np.ndarray  # float32
    plan: CapturePlan
    window: CaptureWindow


class AnalyzerTwin:
    """A simulated power analyzer on loopback TCP, digitizing `timeline` in the chosen dialect."""

    def __init__(self, timeline: ActivityTimeline, *, dialect: str = "keysight-n6705c", seed: int = 0,
                 noise_rel: float = 0.002, adc_bits: int = 18, grace_s: float = GRACE_S,
                 faults: Iterable[AnalyzerFault] = (), physics: BenchPhysics | None = None) -> None:
        if dialect not in DIALECTS:
            raise ConfigError(f"analyzer twin dialect {dialect!r} is unknown; "
                              f"use one of {', '.join(DIALECTS)}")
        self.timeline = timeline
        self.dialect_name = dialect
        self.dialect = DIALECTS[dialect]
        self.seed = seed
        self.noise_rel = noise_rel
        self.adc_bits = adc_bits
        self.grace_s = grace_s
        self.faults = FaultPlan(tuple(faults))
        # Bench effects on the analyzer's side (trigger latency, front end, decoupling, sampling model).
        self.physics = physics or BenchPhysics.ideal()
        self.commands: list[str] = []
        self.last_capture: CaptureWindow | None = None
        self.resource = ""
        self._state: dict[str, Value] = dict(self.dialect.defaults)
        self._errors: deque[tuple[int, str]] = deque(maxlen=32)
        self._lock = threading.RLock()
        self._acquisition: _Acquisition | None = None
        self._captures = 0
        self._data: _Capture | None = None
        self._server = ScpiServer(self._handle, name=f"analyzer-twin-{dialect}")
        self._handlers: dict[str, Callable[[ScpiCommand], bytes | None]] = {
            "*IDN": lambda c: self.dialect.idn.encode(), "*OPC": lambda c: b"1",
            "*RST": self._reset, "*CLS": self._clear, "*TRG": self._bus_trigger,
            "SYST:ERR": self._next_error, self.dialect.status_header.rstrip("?"): self._status,
        }
        for header in self.dialect.programs:
            self._handlers[header] = self._program
        for header in self.dialect.fetches:
            self._handlers[header] = self._fetch

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        port = self._server.start()
        self.resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
        return self.resource

    def close(self) -> None:
        with self._lock:
            if self._acquisition is not None:
                self._acquisition.cancelled.set()
        self._server.close()

    def __enter__(self) -> Self:
        if not self.resource:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def true_energy_j(self, t0_s: float, t1_s: float) -> float:
        """The energy the device really drew in [t0, t1] (the function the samples average)."""
        return self.timeline.energy_between(t0_s, t1_s)

    def last_readings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(current_a, voltage_v) float32 of the last completed capture, exactly as served; None if none."""
        with self._lock:
            return None if self._data is None else (self._data.current_a.copy(), self._data.voltage_v.copy())

    @property
    def settings(self) -> dict[str, Value]:
        with self._lock:
            return dict(self._state)

    def inject(self, kind: str, count: int = 1, **options: object) -> AnalyzerFault:
        """Arm a fault for the next `count` commands it applies to (see `analyzer_faults`); returns it.

        Options: `on` (a header), `delay_s`, `text`, `error`, `overload`."""
        return self.faults.inject(AnalyzerFault(kind, count, **options))  # type: ignore[arg-type]

    def accepted_headers(self) -> set[str]:
        """Every header this twin answers, read off its dispatch table (upper case, no '?')."""
        return set(self._handlers) | {setting.header for setting in self.dialect.settings}

    # --- command dispatch ----------------------------------------------------------------------------

    def _handle(self, command: ScpiCommand) -> Reply:
        with self._lock:
            self.commands.append(command.text)
            reply = self._dispatch(command)
            targets = {command.header}
            if command.header in self.dialect.fetches:
                targets.add(FETCH)
            if command.header == self.dialect.status_header:
                targets.add(STATUS)
            if not command.is_query and not command.header.startswith("*"):
                targets.add(ANY_COMMAND)
            queued = self.faults.take(("scpi-error",), targets)
            if queued is not None:
                self._errors.append(queued.error)
            if reply is None:
                return None
            # Block faults apply to block replies only (the Keithley's buffer comes back as text).
            kinds = REPLY_FAULTS if reply[:1] == b"#" else tuple(k for k in REPLY_FAULTS if k not in BLOCK_FAULTS)
            fault = self.faults.take(kinds, targets)
            return reply if fault is None else reshape_reply(fault, reply)

    def _dispatch(self, command: ScpiCommand) -> bytes | None:
        try:
            handler = self._handlers.get(command.header)
            if handler is not None:
                return handler(command)
            setting = self.dialect.settings.by_header(command.header)
            if setting is None:
                raise ScpiFault(scpi.UNDEFINED_HEADER)
            return self._setting(setting, command)
        except ScpiFault as fault:
            self._errors.append(fault.error)
            return None

    def _check_channels(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """Strip a trailing `(@n)` channel list after checking the channel exists."""
        if args and args[-1].startswith("(@"):
            for part in args[-1][2:-1].replace(":", ",").split(","):
                if not part.strip().isdigit() or not 1 <= int(part) <= self.dialect.driver.max_channel:
                    raise ScpiFault(scpi.HARDWARE_MISSING)
        return without_channel_list(args)

    def _program(self, command: ScpiCommand) -> None:
        """A start/stop command the driver declares: start, clear the buffer, or abort."""
        args = normalized_args(self._check_channels(command.args))
        action = self.dialect.programs[command.header].get(args)
        if action is None:
            raise ScpiFault(scpi.ILLEGAL_PARAMETER)
        {"init": self._init, "clear": self._clear_buffer, "abort": self._abort}[action]()

    def _setting(self, setting: Setting, command: ScpiCommand) -> bytes | None:
        args = self._check_channels(command.args)
        if command.is_query:
            value = self._state[setting.name]
            return (f"{value:+.8E}" if isinstance(value, float) else str(value)).encode()
        if not args:
            raise ScpiFault(scpi.MISSING_PARAMETER)
        try:
            value = setting.parse(args[0])
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not setting.accepts(value):
            raise ScpiFault(scpi.ILLEGAL_PARAMETER if setting.choices else scpi.DATA_OUT_OF_RANGE)
        self._state[setting.name] = self.dialect.normalize(setting, value)
        return None

    def _reset(self, command: ScpiCommand) -> None:
        self._abort()
        self._state = dict(self.dialect.defaults)
        self._data = None

    def _clear(self, command: ScpiCommand) -> None:
        self._errors.clear()

    def _next_error(self, command: ScpiCommand) -> bytes:
        return scpi.format_error(*(self._errors.popleft() if self._errors else (0, "No error"))).encode()

    # --- acquisition ---------------------------------------------------------------------------------

    def _status(self, command: ScpiCommand) -> bytes:
        self._check_channels(command.args)
        status = self._acquisition.status if self._acquisition else "complete"
        bits = {"waiting for trigger": self.dialect.driver.waiting_bit,
                "measuring": self.dialect.driver.measuring_bit}.get(status, 0)
        return str(bits).encode()

    def _init(self) -> None:
        plan = self.dialect.plan(self._state)
        self._abort()
        self._captures += 1
        self._data = None
        acquisition = _Acquisition(plan, armed_at_s=self.timeline.end_s, index=self._captures)
        acquisition.trigger_lost = self.faults.take(("lost-trigger",), {ACQUISITION}) is not None
        clip = self.faults.take(("clip",), {ACQUISITION})
        acquisition.clip_overload = clip.overload if clip is not None else None
        self._acquisition = acquisition
        threading.Thread(target=self._run, args=(acquisition,), daemon=True,
                         name=f"analyzer-twin-capture-{acquisition.index}").start()

    def _abort(self) -> None:
        if self._acquisition is not None and self._acquisition.status != "complete":
            self._acquisition.cancelled.set()
            self._acquisition.status = "aborted"

    def _clear_buffer(self) -> None:
        self._data = None

    def _bus_trigger(self, command: ScpiCommand) -> None:
        acquisition = self._acquisition
        if (acquisition and acquisition.status == "waiting for trigger"
                and acquisition.plan.trigger_source == "BUS"):
            acquisition.bus_trigger_s = self.timeline.end_s
            acquisition.bus_trigger.set()
        else:
            raise ScpiFault(scpi.TRIGGER_IGNORED)

    def _run(self, acquisition: _Acquisition) -> None:
        plan = acquisition.plan
        trigger_s: float | None = None
        while trigger_s is None and not acquisition.cancelled.is_set():
            if acquisition.trigger_lost:  # the trigger pulse never reaches the input
                acquisition.cancelled.wait(0.05)
            elif plan.trigger_source == "EXT":
                trigger_s = self.timeline.wait_for_trigger(acquisition.armed_at_s, 0.05)
            elif acquisition.bus_trigger.wait(0.05):
                trigger_s = acquisition.bus_trigger_s
        if trigger_s is None:
            return
        with self._lock:
            if acquisition.cancelled.is_set():
                return
            acquisition.status = "measuring"
        rng = np.random.default_rng([self.seed, acquisition.index])
        trigger_s += trigger_delay_s(self.physics, np.random.default_rng([self.seed, 11, acquisition.index]))
        dt = plan.sample_interval_s
        t0_s = trigger_s + plan.trigger_offset_points * dt
        window = CaptureWindow(trigger_s, t0_s, t0_s + plan.points * dt, dt, plan.points,
                               max(0, -plan.trigger_offset_points))
        self.timeline.wait_until_covered(window.t1_s, self.grace_s)
        power_w = analog_samples(self.timeline.snapshot(), self.timeline.idle_power_w, window.t0_s,
                                 window.sample_interval_s, window.points, self.physics)
        current_a, voltage_v = digitize(
            power_w, voltage_v=plan.voltage_v, current_full_scale_a=plan.current_full_scale_a,
            voltage_full_scale_v=plan.voltage_full_scale_v, rng=rng,
            noise_rel=self.noise_rel, adc_bits=self.adc_bits)
        if acquisition.clip_overload is not None:
            current_a = overload_and_pin(current_a, full_scale_a=plan.current_full_scale_a,
                                         overload=acquisition.clip_overload)
        data = _Capture(current_a, voltage_v, plan, window)
        with self._lock:
            if not acquisition.cancelled.is_set():
                self._data = data
                self.last_capture = window
                acquisition.status = "complete"

    # --- data transfer -------------------------------------------------------------------------------

    def _fetch(self, command: ScpiCommand) -> bytes:
        """Answer one of the driver's declared fetch queries with the columns it declares."""
        args, fetch = self.dialect.fetches[command.header]
        binary = fetch.binary if fetch.binary is not None else self._state[FORMAT_SETTING] == "REAL"
        try:
            if normalized_args(self._check_channels(command.args)) != args:
                raise ScpiFault(scpi.ILLEGAL_PARAMETER)
            if self._data is None:
                raise ScpiFault(scpi.DATA_STALE)
            if "voltage" in fetch.columns and not self._data.plan.digitize_voltage:
                raise ScpiFault(scpi.SETTINGS_CONFLICT)
        except ScpiFault as fault:  # answer (empty) so the client is not left waiting for a reply
            self._errors.append(fault.error)
            return scpi.encode_block(b"") if binary else b""
        values = _interleave(self._data, fetch)
        if not binary:
            return scpi.format_ascii_floats(values)
        big_endian = (fetch.big_endian if fetch.big_endian is not None
                      else self._state[BYTE_ORDER_SETTING] == "NORM")
        return scpi.encode_block(scpi.float32_payload(values, big_endian=big_endian))


def _interleave(capture: _Capture, fetch: FetchQuery) -> np.ndarray:
    columns = {"current": capture.current_a, "voltage": capture.voltage_v,
               "time": np.arange(capture.current_a.size) * capture.window.sample_interval_s}
    return np.stack([columns[name] for name in fetch.columns], axis=1).reshape(-1)
