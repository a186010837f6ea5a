"""The analyzer twin: a power analyzer that digitizes the device twin's `ActivityTimeline`.

It is a real SCPI server on loopback TCP that speaks the dialect of one of our drivers, built from
that driver's declarations (`twin_dialect`), keeps its settings as state, has a real error queue, and
captures a window around the device's trigger edge. What a capture holds (mean power per sample,
noise, quantization) is `trace_synthesis`. Faults (a reply late, short or garbled, a queued error, a
lost trigger, a clipped capture) are armed with `inject` or the `faults` argument: `analyzer_faults`.
"""

from __future__ import annotations

import threading
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
from pytest_edgehil.sim.scpi_status import OPC_BIT, StatusRegisters
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.trace_synthesis import (
    CaptureWindow,
    digitize,
    mean_power_per_sample,
    overload_and_pin,
)
from pytest_edgehil.sim.twin_dialect import (
    DIALECTS,
    ERROR_QUEUE,
    CapturePlan,
    Route,
    ScpiFault,
    TwinDialect,
    normalized_args,
    split_header,
    state_key,
    without_channel_list,
)

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

__all__ = ["DIALECTS", "AnalyzerFault", "AnalyzerTwin", "CapturePlan", "CaptureWindow", "TwinDialect",
           "mean_power_per_sample"]

GRACE_S = 0.05  # real seconds to wait for the device to record activity up to the window's end
SCALAR_WINDOW_S = 1e-3  # MEASure queries average the supply over the last millisecond of the timeline


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
    done: threading.Event = field(default_factory=threading.Event)  # complete, aborted or cancelled

    @property
    def pending(self) -> bool:
        return self.status in ("waiting for trigger", "measuring")


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
        self.status = StatusRegisters()
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._acquisition: _Acquisition | None = None
        self._opc_pending = False  # *OPC sent while a capture was measuring: set ESR bit 0 at its end
        self._captures = 0
        self._data: _Capture | None = None
        self._server = ScpiServer(self._handle, name=f"analyzer-twin-{dialect}")
        # IEEE 488.2 common commands (query form, command form); None: that form is undefined.
        self._common: dict[str, tuple[Callable[[ScpiCommand], bytes] | None,
                                      Callable[[ScpiCommand], None] | None]] = {
            "*IDN": (lambda c: self.dialect.idn.encode(), None),
            "*RST": (None, self._reset),
            "*CLS": (None, lambda c: self.status.clear()),
            "*OPC": (lambda c: b"1", self._opc),
            "*WAI": (None, lambda c: None),  # the waiting is done in _handle, outside the lock
            "*ESR": (lambda c: str(self.status.read_esr()).encode(), None),
            "*ESE": (lambda c: str(self.status.ese).encode(), lambda c: self._mask(c, "ese")),
            "*STB": (lambda c: str(self.status.stb()).encode(), None),
            "*SRE": (lambda c: str(self.status.sre).encode(), lambda c: self._mask(c, "sre")),
            "*TRG": (None, self._bus_trigger),
            "*TST": (lambda c: b"0", None),  # self-test passed
        }
        self._route_handlers: dict[str, Callable[[Route, ScpiCommand], bytes | None]] = {
            "program": self._program, "fetch": self._fetch, "status": self._status, "measure": self._measure}

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        port = self._server.start()
        self.resource = f"TCPIP::127.0.0.1::{port}::SOCKET"
        return self.resource

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._acquisition is not None:
                self._acquisition.cancelled.set()
                self._acquisition.done.set()
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
        """Every header this twin answers, in short form (upper case, no '?'): the common commands,
        the error queue and the dialect's declarations."""
        return set(self._common) | {ERROR_QUEUE.short()} | self.dialect.accepted_headers()

    # --- command dispatch ----------------------------------------------------------------------------

    def _key(self, command: ScpiCommand) -> tuple[str, Route | None]:
        """The short form of the declared header `command` names (its own header if none), and its route."""
        if command.header.startswith("*"):
            return command.header, None
        route = self.dialect.route(command.header)
        if route is not None:
            return route.key, route
        found = self.dialect.setting(command.header)
        if found is not None:
            return found[0].short(found[1]), None
        if ERROR_QUEUE.match(split_header(command.header)) is not None:
            return ERROR_QUEUE.short(), None
        return command.header, None

    def _handle(self, command: ScpiCommand) -> Reply:
        key, route = self._key(command)
        # Blocking commands wait outside the lock, so that the capture can complete meanwhile: FETCh
        # until the acquisition is done (trigger included), *OPC? and *WAI until a running capture ends.
        if route is not None and route.kind == "fetch" and command.is_query:
            self._wait_for_acquisition(include_trigger=True)
        elif key in ("*WAI", "*OPC") and (key == "*WAI" or command.is_query):
            self._wait_for_acquisition(include_trigger=False)
        with self._lock:
            self.commands.append(command.text)
            reply = self._dispatch(command, key, route)
            targets = {key}
            if route is not None and route.kind == "fetch":
                targets.add(FETCH)
            if route is not None and route.kind == "status":
                targets.add(STATUS)
            if not command.is_query and not key.startswith("*"):
                targets.add(ANY_COMMAND)
            queued = self.faults.take(("scpi-error",), targets)
            if queued is not None:
                self.status.queue(queued.error)
            if reply is None:
                return None
            # Block faults apply to block replies only (the Keithley's buffer comes back as text).
            kinds = REPLY_FAULTS if reply[:1] == b"#" else tuple(k for k in REPLY_FAULTS if k not in BLOCK_FAULTS)
            fault = self.faults.take(kinds, targets)
            return reply if fault is None else reshape_reply(fault, reply)

    def _wait_for_acquisition(self, *, include_trigger: bool) -> None:
        while not self._closed.is_set():
            with self._lock:
                acquisition = self._acquisition
                if acquisition is None or not acquisition.pending or (
                        not include_trigger and acquisition.status != "measuring"):
                    return
            acquisition.done.wait(0.05)

    def _dispatch(self, command: ScpiCommand, key: str, route: Route | None) -> bytes | None:
        """The reply, or None; an error is queued (with its ESR bit) and a query in error sends nothing,
        as IEEE 488.2 requires, so the client's next reply is never shifted."""
        try:
            if key in self._common:
                query, action = self._common[key]
                if command.is_query and query is not None:
                    return query(command)
                if not command.is_query and action is not None:
                    action(command)
                    return None
                raise ScpiFault(scpi.UNDEFINED_HEADER)
            if key == ERROR_QUEUE.short():
                if not command.is_query:
                    raise ScpiFault(scpi.UNDEFINED_HEADER)
                return scpi.format_error(*self.status.next_error()).encode()
            if route is not None:
                return self._route_handlers[route.kind](route, command)
            found = self.dialect.setting(command.header)
            if found is None:
                raise ScpiFault(scpi.UNDEFINED_HEADER)
            return self._setting(found[0], found[1], command)
        except ScpiFault as fault:
            self.status.queue(fault.error)
            return None

    def _check_channels(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """Strip a trailing `(@n)` channel list after checking the channel exists."""
        if args and args[-1].startswith("(@"):
            for part in args[-1][2:-1].replace(":", ",").split(","):
                if not part.strip().isdigit() or not 1 <= int(part) <= self.dialect.driver.max_channel:
                    raise ScpiFault(scpi.HARDWARE_MISSING)
        return without_channel_list(args)

    def _program(self, route: Route, command: ScpiCommand) -> None:
        """A start/stop command the driver declares: start, clear the buffer, or abort."""
        if command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        args = normalized_args(self._check_channels(command.args))
        action = dict(route.actions).get(args)
        if action is None and len(args) == 1:  # a boolean written ON/OFF instead of 1/0
            action = dict(route.actions).get(({"ON": "1", "OFF": "0"}.get(args[0], args[0]),))
        if action is None:
            raise ScpiFault(scpi.ILLEGAL_PARAMETER)
        {"init": self._init, "clear": self._clear_buffer, "abort": self._abort}[action]()

    def _setting(self, setting: Setting, suffix: int, command: ScpiCommand) -> bytes | None:
        args = self._check_channels(command.args)
        key = state_key(setting, suffix)
        if command.is_query:
            value = self._state[key]
            if setting.choices and set(setting.choices) == {"ON", "OFF"}:
                return b"1" if value == "ON" else b"0"  # SCPI booleans are answered 1/0
            return (f"{value:+.8E}" if isinstance(value, float) else str(value)).encode()
        if not args:
            raise ScpiFault(scpi.MISSING_PARAMETER)
        try:
            value = self._number(setting, args[0]) if not setting.choices else setting.parse(args[0])
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not setting.accepts(value):
            raise ScpiFault(scpi.ILLEGAL_PARAMETER if setting.choices else scpi.DATA_OUT_OF_RANGE)
        self._state[key] = self.dialect.normalize(setting, value)
        return None

    @staticmethod
    def _number(setting: Setting, text: str) -> Value:
        """A numeric parameter: decimal in any SCPI form (`5`, `3.3`, `2.048E-5`) or MINimum/MAXimum/DEFault."""
        token = text.strip().upper()
        named = {"MIN": setting.minimum, "MINIMUM": setting.minimum, "MAX": setting.maximum,
                 "MAXIMUM": setting.maximum, "DEF": setting.reset, "DEFAULT": setting.reset}
        if token in named:
            value = named[token]
            if value is None:
                raise ValueError(token)
            return setting.parse(str(value))
        return setting.parse(text)

    def _mask(self, command: ScpiCommand, register: str) -> None:
        try:
            value = int(float(command.args[0])) if command.args else -1
        except ValueError:
            raise ScpiFault(scpi.DATA_TYPE_ERROR) from None
        if not 0 <= value <= 255:
            raise ScpiFault(scpi.DATA_OUT_OF_RANGE)
        setattr(self.status, register, value)

    def _opc(self, command: ScpiCommand) -> None:
        """`*OPC`: set the OPC event bit once no operation is pending (no reply: that is `*OPC?`)."""
        if self._acquisition is not None and self._acquisition.status == "measuring":
            self._opc_pending = True
        else:
            self.status.set_event(OPC_BIT)

    def _reset(self, command: ScpiCommand) -> None:
        self._abort()
        self._state = dict(self.dialect.defaults)
        self._data = None

    def _measure(self, route: Route, command: ScpiCommand) -> bytes:
        """A scalar reading: the supply's mean over the timeline's last SCALAR_WINDOW_S (idle power
        when nothing runs), at the programmed voltage; 0 with the output off."""
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        self._check_channels(command.args)
        roles = self.dialect.driver.roles
        voltage_v = float(self._state[roles.voltage]) if self._state[roles.output] == "ON" else 0.0
        end_s = self.timeline.end_s
        power_w = self.timeline.energy_between(end_s - SCALAR_WINDOW_S, end_s) / SCALAR_WINDOW_S
        if voltage_v <= 0:
            power_w = 0.0
        value = {"voltage": voltage_v, "power": power_w,
                 "current": power_w / voltage_v if voltage_v > 0 else 0.0}[route.quantity]
        return f"{value:+.8E}".encode()

    # --- acquisition ---------------------------------------------------------------------------------

    def _status(self, route: Route, command: ScpiCommand) -> bytes:
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
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
            self._acquisition.done.set()
            self._operation_complete()

    def _operation_complete(self) -> None:
        if self._opc_pending:
            self._opc_pending = False
            self.status.set_event(OPC_BIT)

    def _external_trigger(self) -> str | None:
        """"POS" or "NEG" once the EXT source can fire, None while it cannot: where the driver declares
        a trigger-input pin (`roles.trigger_input`), EXT fires only from a pin configured so."""
        inputs = self.dialect.driver.roles.trigger_input
        if not inputs:
            return "POS"
        (function, value), polarity = inputs[0], inputs[1][0] if len(inputs) > 1 else None
        setting = self.dialect.settings[function]
        wanted = setting.choice(value)
        with self._lock:
            for pin in range(1, setting.suffixes + 1):
                if self._state[state_key(setting, pin)] == wanted:
                    if polarity is None:
                        return "POS"
                    edge = str(self._state[state_key(self.dialect.settings[polarity], pin)])
                    return "NEG" if edge.startswith("NEG") else "POS"
        return None

    def _wait_for_edge(self, after_s: float, timeout_s: float) -> float | None:
        """The first trigger edge at or after `after_s` the EXT input sees (None: none yet)."""
        polarity = self._external_trigger()
        if polarity is None:  # no pin is a trigger input: the device's line reaches nothing
            self._closed.wait(timeout_s)
            return None
        rising_s = self.timeline.wait_for_trigger(after_s, timeout_s)
        if rising_s is None or polarity == "POS":
            return rising_s
        # NEGative polarity: the line's falling edge, the end of the span that raised it.
        return next((span.end_s for span in self.timeline.snapshot()
                     if span.trigger_high and span.start_s == rising_s), None)

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
                trigger_s = self._wait_for_edge(acquisition.armed_at_s, 0.05)
            elif acquisition.bus_trigger.wait(0.05):
                trigger_s = acquisition.bus_trigger_s
        if trigger_s is None:
            acquisition.done.set()
            return
        with self._lock:
            if acquisition.cancelled.is_set():
                acquisition.done.set()
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
                self._operation_complete()
            acquisition.done.set()

    # --- data transfer -------------------------------------------------------------------------------

    def _fetch(self, route: Route, command: ScpiCommand) -> bytes:
        """Answer one of the driver's declared fetch queries with the columns it declares. The
        acquisition has finished by now (`_handle` waited); with no data (never started, aborted)
        the error is queued and nothing is sent, as for any query in error."""
        fetch = route.fetch
        assert fetch is not None  # every fetch route carries its query
        if not command.is_query:
            raise ScpiFault(scpi.UNDEFINED_HEADER)
        binary = fetch.binary if fetch.binary is not None else self._state[FORMAT_SETTING] == "REAL"
        if normalized_args(self._check_channels(command.args)) != route.args:
            raise ScpiFault(scpi.ILLEGAL_PARAMETER)
        if self._data is None:
            raise ScpiFault(scpi.DATA_STALE)
        if "voltage" in fetch.columns and not self._data.plan.digitize_voltage:
            raise ScpiFault(scpi.SETTINGS_CONFLICT)
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
