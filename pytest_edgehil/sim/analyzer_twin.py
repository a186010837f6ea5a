"""The analyzer twin: a power analyzer that digitizes the device twin's `ActivityTimeline`.

It is a real SCPI server on loopback TCP that speaks the same dialect as one of our drivers (the
settings tables, status bits and block encoders are imported from the driver modules), keeps its
settings as state, has a real error queue, and captures a window around the device's trigger edge.

Sampling model: each sample is the exact mean power over its own interval [t - dt/2, t + dt/2], as
an integrating ADC would give. For a step-wise power function the samples are then the step function
smoothed by one sample period, so the trapezoidal rule over the samples reproduces the true energy
of any span whose edges sit at least dt/2 inside the window: the truth is plain
`ActivityTimeline.energy_between` (no ramps to account for). On top: Gaussian noise (seeded),
current = P / V at the programmed voltage, and quantization to range / 2**adc_bits.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.instruments import keithley_2281s as k2281s
from pytest_edgehil.instruments import keysight_n6705c as n6705c
from pytest_edgehil.instruments import rs_ngm202 as ngm202
from pytest_edgehil.instruments import scpi
from pytest_edgehil.instruments.scpi import Setting, SettingTable, Value
from pytest_edgehil.sim.scpi_server import ScpiCommand, ScpiServer
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

if TYPE_CHECKING:
    from typing import Self  # annotations only: the package supports Python 3.10 at runtime

GRACE_S = 0.05  # real seconds to wait for the device to record activity up to the window's end


class ScpiFault(Exception):
    """Internal: an (code, text) entry for the error queue."""

    def __init__(self, error: tuple[int, str]) -> None:
        super().__init__(error[1])
        self.error = error


@dataclass(frozen=True)
class CapturePlan:
    sample_interval_s: float
    points: int
    trigger_offset_points: int  # window starts this many points after the trigger (negative = before)
    trigger_source: str
    voltage_v: float  # 0 when the output is off
    current_full_scale_a: float
    digitize_voltage: bool


@dataclass(frozen=True)
class CaptureWindow:
    """What the twin synthesized, in the device's virtual time."""

    trigger_s: float
    t0_s: float  # first sample instant
    t1_s: float  # end of the window: t0_s + points * sample_interval_s
    sample_interval_s: float
    points: int
    pretrigger_points: int


@dataclass(frozen=True)
class TwinDialect:
    idn: str
    settings: SettingTable
    defaults: dict[str, Value]
    plan: Callable[[dict[str, Value]], CapturePlan]
    status_header: str
    waiting_bit: int
    measuring_bit: int
    channels: int
    normalize: dict[str, Callable[[float], float]] = field(default_factory=dict)


def _output_voltage(state: dict[str, Value]) -> float:
    return float(state["voltage_v"]) if state["output"] == "ON" else 0.0


def _keysight_plan(state: dict[str, Value]) -> CapturePlan:
    both = state["digitize_current"] == "ON" and state["digitize_voltage"] == "ON"
    interval_s = float(state["sample_interval_s"])
    if state["digitize_current"] != "ON" or (both and interval_s < n6705c.MIN_TINT_BOTH_FUNCTIONS_S - 1e-12):
        raise ScpiFault(scpi.SETTINGS_CONFLICT)
    return CapturePlan(interval_s, int(state["points"]), int(state["offset_points"]),
                       str(state["trigger_source"]), _output_voltage(state),
                       float(state["current_range_a"]), both)


def _ngm_plan(state: dict[str, Value]) -> CapturePlan:
    if int(state["pretrigger_points"]) >= int(state["points"]):
        raise ScpiFault(scpi.SETTINGS_CONFLICT)
    return CapturePlan(ngm202.SAMPLE_RATES[str(state["sample_rate"])], int(state["points"]),
                       -int(state["pretrigger_points"]), str(state["trigger_source"]),
                       _output_voltage(state), float(state["current_range_a"]), True)


def _keithley_plan(state: dict[str, Value]) -> CapturePlan:
    return CapturePlan(k2281s.interval_for_nplc(float(state["nplc"])), int(state["points"]), 0,
                       str(state["trigger_source"]), _output_voltage(state),
                       float(state["current_limit_a"]), True)


DIALECTS: dict[str, TwinDialect] = {
    "keysight-n6705c": TwinDialect(
        idn=n6705c.IDN, settings=n6705c.SETTINGS, plan=_keysight_plan, status_header=n6705c.STATUS_QUERY,
        waiting_bit=n6705c.STATUS_WAITING_FOR_TRIGGER, measuring_bit=n6705c.STATUS_MEASURING,
        channels=n6705c.CHANNELS,
        defaults={"output": "OFF", "voltage_v": 0.0, "current_range_a": 3.0, "digitize_current": "ON",
                  "digitize_voltage": "OFF", "sample_interval_s": 20.48e-6, "points": 1024,
                  "offset_points": 0, "trigger_source": "BUS", "data_format": "ASC", "byte_order": "NORM"},
        normalize={"sample_interval_s": n6705c.instrument_tint,
                   "current_range_a": n6705c.select_current_range}),
    "rs-ngm202": TwinDialect(
        idn=ngm202.IDN, settings=ngm202.SETTINGS, plan=_ngm_plan, status_header=ngm202.STATUS_QUERY,
        waiting_bit=ngm202.STATUS_WAITING_FOR_TRIGGER, measuring_bit=ngm202.STATUS_MEASURING,
        channels=ngm202.CHANNELS,
        defaults={"channel": 1, "output": "OFF", "voltage_v": 0.0, "current_range_a": 10.0,
                  "sample_rate": "S500K", "points": 1000, "pretrigger_points": 0, "trigger_source": "BUS"},
        normalize={"current_range_a": ngm202.select_current_range}),
    "keithley-2281s": TwinDialect(
        idn=k2281s.IDN, settings=k2281s.SETTINGS, plan=_keithley_plan, status_header=k2281s.STATUS_QUERY,
        waiting_bit=k2281s.STATUS_WAITING_FOR_TRIGGER, measuring_bit=k2281s.STATUS_MEASURING, channels=1,
        defaults={"function": "POWER", "output": "OFF", "voltage_v": 0.0, "current_limit_a": 1.0,
                  "nplc": 1.0, "points": 2500, "trigger_source": "BUS"}),
}


def mean_power_per_sample(spans: list[StageSpan], idle_power_w: float, t0_s: float,
                          sample_interval_s: float, points: int) -> np.ndarray:
    """Exact mean power over [t_i - dt/2, t_i + dt/2] for t_i = t0 + i*dt (idle outside spans)."""
    dt = sample_interval_s
    start_s = t0_s - dt / 2
    end_rel_s = points * dt
    # Cumulative energy is piecewise linear between span edges; build its knots relative to the
    # window start so that differences of nearby values keep full float64 precision.
    knot_t, knot_e = [0.0], [0.0]
    cursor, energy = 0.0, 0.0
    for span in spans:
        lo, hi = max(span.start_s - start_s, 0.0), min(span.end_s - start_s, end_rel_s)
        if hi <= lo:
            continue
        if lo > cursor:
            energy += idle_power_w * (lo - cursor)
            knot_t.append(lo)
            knot_e.append(energy)
        energy += span.power_w * (hi - lo)
        knot_t.append(hi)
        knot_e.append(energy)
        cursor = hi
    if cursor < end_rel_s:
        knot_t.append(end_rel_s)
        knot_e.append(energy + idle_power_w * (end_rel_s - cursor))
    edges = np.arange(points + 1) * dt
    return np.diff(np.interp(edges, knot_t, knot_e)) / dt


@dataclass
class _Acquisition:
    plan: CapturePlan
    armed_at_s: float
    index: int
    status: str = "waiting for trigger"
    cancelled: threading.Event = field(default_factory=threading.Event)
    bus_trigger: threading.Event = field(default_factory=threading.Event)
    bus_trigger_s: float = 0.0


class AnalyzerTwin:
    """A simulated power analyzer on loopback TCP, digitizing `timeline` in the chosen dialect."""

    def __init__(self, timeline: ActivityTimeline, *, dialect: str = "keysight-n6705c", seed: int = 0,
                 noise_rel: float = 0.002, adc_bits: int = 18, grace_s: float = GRACE_S) -> None:
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
        self.commands: list[str] = []
        self.last_capture: CaptureWindow | None = None
        self.resource = ""
        self._state: dict[str, Value] = dict(self.dialect.defaults)
        self._errors: deque[tuple[int, str]] = deque(maxlen=32)
        self._lock = threading.RLock()
        self._acquisition: _Acquisition | None = None
        self._captures = 0
        self._data: tuple[np.ndarray, np.ndarray] | None = None  # float32 current, voltage
        self._server = ScpiServer(self._handle, name=f"analyzer-twin-{dialect}")
        self._handlers: dict[str, Callable[[ScpiCommand], bytes | None]] = {
            "*IDN": lambda c: self.dialect.idn.encode(), "*OPC": lambda c: b"1",
            "*RST": self._reset, "*CLS": self._clear, "*TRG": self._bus_trigger,
            "SYST:ERR": self._next_error, self.dialect.status_header.rstrip("?"): self._status,
        }
        self._handlers.update(self._dialect_handlers())

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

    @property
    def settings(self) -> dict[str, Value]:
        with self._lock:
            return dict(self._state)

    # --- command dispatch ----------------------------------------------------------------------------

    def _dialect_handlers(self) -> dict[str, Callable[[ScpiCommand], bytes | None]]:
        if self.dialect_name == "keysight-n6705c":
            return {n6705c.INIT_COMMAND: lambda c: self._init(),
                    n6705c.ABORT_COMMAND: lambda c: self._abort(),
                    n6705c.FETCH_CURRENT_QUERY.rstrip("?"): lambda c: self._fetch_keysight(0),
                    n6705c.FETCH_VOLTAGE_QUERY.rstrip("?"): lambda c: self._fetch_keysight(1)}
        if self.dialect_name == "rs-ngm202":
            return {"FLOG:STAT": self._flog_state,
                    ngm202.FETCH_QUERY.rstrip("?"): lambda c: self._fetch_ngm()}
        return {k2281s.INIT_COMMAND: lambda c: self._init(),
                k2281s.CLEAR_BUFFER_COMMAND: lambda c: self._clear_buffer(),
                k2281s.FETCH_HEADER: self._fetch_keithley}

    def _handle(self, command: ScpiCommand) -> bytes | None:
        with self._lock:
            self.commands.append(command.text)
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
                if not part.strip().isdigit() or not 1 <= int(part) <= self.dialect.channels:
                    raise ScpiFault(scpi.HARDWARE_MISSING)
            return args[:-1]
        return args

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
        normalize = self.dialect.normalize.get(setting.name)
        self._state[setting.name] = normalize(float(value)) if normalize else value
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
        bits = {"waiting for trigger": self.dialect.waiting_bit,
                "measuring": self.dialect.measuring_bit}.get(status, 0)
        return str(bits).encode()

    def _init(self) -> None:
        plan = self.dialect.plan(self._state)
        self._abort()
        self._captures += 1
        self._data = None
        acquisition = _Acquisition(plan, armed_at_s=self.timeline.end_s, index=self._captures)
        self._acquisition = acquisition
        threading.Thread(target=self._run, args=(acquisition,), daemon=True,
                         name=f"analyzer-twin-capture-{acquisition.index}").start()

    def _abort(self) -> None:
        if self._acquisition is not None and self._acquisition.status != "complete":
            self._acquisition.cancelled.set()
            self._acquisition.status = "aborted"

    def _flog_state(self, command: ScpiCommand) -> None:
        if command.args and command.args[0].strip() in ("1", "ON"):
            self._init()
        else:
            self._abort()

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
            if plan.trigger_source == "EXT":
                trigger_s = self.timeline.wait_for_trigger(acquisition.armed_at_s, 0.05)
            elif acquisition.bus_trigger.wait(0.05):
                trigger_s = acquisition.bus_trigger_s
        if trigger_s is None:
            return
        with self._lock:
            if acquisition.cancelled.is_set():
                return
            acquisition.status = "measuring"
        dt = plan.sample_interval_s
        t0_s = trigger_s + plan.trigger_offset_points * dt
        window = CaptureWindow(trigger_s, t0_s, t0_s + plan.points * dt, dt, plan.points,
                               max(0, -plan.trigger_offset_points))
        self.timeline.wait_until_covered(window.t1_s, self.grace_s)
        data = self._synthesize(window, plan, acquisition.index)
        with self._lock:
            if not acquisition.cancelled.is_set():
                self._data = data
                self.last_capture = window
                acquisition.status = "complete"

    def _synthesize(self, window: CaptureWindow, plan: CapturePlan,
                    index: int) -> tuple[np.ndarray, np.ndarray]:
        power_w = mean_power_per_sample(self.timeline.snapshot(), self.timeline.idle_power_w, window.t0_s,
                                        window.sample_interval_s, window.points)
        rng = np.random.default_rng([self.seed, index])
        volts = plan.voltage_v
        current_a = power_w / volts if volts > 0 else np.zeros_like(power_w)
        current_a = current_a * (1.0 + self.noise_rel * rng.standard_normal(current_a.size))
        voltage_v = volts * (1.0 + 0.1 * self.noise_rel * rng.standard_normal(current_a.size))
        current_lsb = plan.current_full_scale_a / 2**self.adc_bits
        voltage_lsb = 20.0 / 2**self.adc_bits
        # A real ADC saturates a little past full scale rather than reporting any value.
        current_a = np.clip(np.round(current_a / current_lsb) * current_lsb,
                            -1.05 * plan.current_full_scale_a, 1.05 * plan.current_full_scale_a)
        voltage_v = np.round(voltage_v / voltage_lsb) * voltage_lsb
        return current_a.astype(np.float32), voltage_v.astype(np.float32)

    # --- data transfer -------------------------------------------------------------------------------

    def _require_data(self) -> tuple[np.ndarray, np.ndarray]:
        if self._data is None:
            raise ScpiFault(scpi.DATA_STALE)
        return self._data

    def _fetch_keysight(self, which: int) -> bytes:
        ascii_format = self._state["data_format"] == "ASC"
        try:
            data = self._require_data()
            if which == 1 and self._state["digitize_voltage"] != "ON":
                raise ScpiFault(scpi.SETTINGS_CONFLICT)
        except ScpiFault as fault:
            self._errors.append(fault.error)
            return b"" if ascii_format else scpi.encode_block(b"")
        if ascii_format:
            return scpi.format_ascii_floats(data[which])
        big_endian = self._state["byte_order"] == "NORM"
        return scpi.encode_block(scpi.float32_payload(data[which], big_endian=big_endian))

    def _fetch_ngm(self) -> bytes:
        try:
            current_a, voltage_v = self._require_data()
        except ScpiFault as fault:  # answer (empty) so the client is not left waiting for a reply
            self._errors.append(fault.error)
            return scpi.encode_block(b"")
        pairs = np.empty(2 * current_a.size, dtype=np.float32)
        pairs[0::2], pairs[1::2] = voltage_v, current_a
        return scpi.encode_block(scpi.float32_payload(pairs, big_endian=ngm202.FETCH_BIG_ENDIAN))

    def _fetch_keithley(self, command: ScpiCommand) -> bytes:
        try:
            elements = command.args[0].strip("\"'").replace(" ", "").upper() if command.args else ""
            if elements != "READ,SOUR,REL":
                raise ScpiFault(scpi.ILLEGAL_PARAMETER)
            current_a, voltage_v = self._require_data()
        except ScpiFault as fault:
            self._errors.append(fault.error)
            return b""
        triples = np.empty(3 * current_a.size, dtype=np.float64)
        triples[0::3], triples[1::3] = current_a, voltage_v
        assert self.last_capture is not None
        triples[2::3] = np.arange(current_a.size) * self.last_capture.sample_interval_s
        return scpi.format_ascii_floats(triples)
