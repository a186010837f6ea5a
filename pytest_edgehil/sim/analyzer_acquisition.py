"""The analyzer twin's acquisition: one armed capture, what triggers it, and the samples it holds.

`Digitizer.arm` starts a capture thread for a `CapturePlan`; it waits for its trigger — BUS (`*TRG`),
EXT (the device's trigger line on a pin configured as trigger input) or a level trigger (`CURR<n>` /
`VOLT<n>`: the supply current or voltage crossing a level with a slope) or none (IMMediate: from the
moment it is armed) — then digitizes the device
twin's `ActivityTimeline` around it (`bench_physics`, `trace_synthesis`). Every source completes from
the supply as it is, idle or active: a capture never needs the device to be doing anything but
drawing current. The command side (`analyzer_commands`) reads `data`, `status_name()` and calls
`abort`; the twin's lock guards the state both sides touch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pytest_edgehil.instruments.dialect import FetchQuery
from pytest_edgehil.sim.bench_physics import (
    BenchPhysics,
    analog_history_start_s,
    analog_samples,
    trigger_delay_s,
)
from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.scpi_status import OPC_BIT, StatusRegisters
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.trace_synthesis import CaptureWindow, digitize, overload_and_pin
from pytest_edgehil.sim.twin_dialect import CapturePlan

POLL_S = 0.05  # real seconds between looks at a trigger condition (and at cancellation)


@dataclass
class Acquisition:
    plan: CapturePlan
    armed_at_s: float
    index: int
    # When it became ready for its trigger (real, monotonic s), and where on the timeline the next trigger is
    # looked for (a trigger ignored moves it on): see `Digitizer._pretrigger_filled`.
    ready_real_s: float = 0.0
    search_from_s: float = 0.0
    status: str = "waiting for trigger"
    cancelled: threading.Event = field(default_factory=threading.Event)
    bus_trigger: threading.Event = field(default_factory=threading.Event)
    bus_trigger_s: float = 0.0
    # A voltage-level trigger fired by an output step: (time on the timeline, volts before, after).
    voltage_step: tuple[float, float, float] | None = None
    voltage_event: threading.Event = field(default_factory=threading.Event)
    trigger_lost: bool = False  # fault: armed, but the trigger never fires
    clip_overload: float | None = None  # fault: the device draws this multiple of the range; pinned there
    done: threading.Event = field(default_factory=threading.Event)  # complete, aborted or cancelled
    # The host asked for this capture (status, *OPC?, FETCh) while it was measuring: it commands the
    # device no more for this window, so the window's virtual activity is all recorded (no grace wait).
    host_asked: threading.Event = field(default_factory=threading.Event)

    @property
    def pending(self) -> bool:
        return self.status in ("arming", "waiting for trigger", "measuring")


@dataclass(frozen=True)
class Capture:
    current_a: np.ndarray  # float32
    voltage_v: np.ndarray  # float32
    plan: CapturePlan
    window: CaptureWindow


def level_crossing_s(timeline: ActivityTimeline, after_s: float, level: float, slope: str, *,
                     quantity: str, voltage_v: float) -> float | None:
    """The first time at or after `after_s` when the supply's current (A) or voltage (V) crosses
    `level` in the direction `slope` ("POS": from below to at-or-above; "NEG": from above to
    at-or-below); None if the recorded timeline holds no such crossing yet.

    The supply is piecewise constant (idle power between the device's spans), so crossings happen at
    span edges. The voltage is the programmed one whatever the load (an ideal source), so the
    timeline holds no voltage crossing: voltage levels fire from output steps (`Digitizer.voltage_step`:
    a setpoint change, the output switched on or off), and this returns None for them."""
    if quantity == "voltage":
        return None
    spans = [span for span in timeline.snapshot() if span.end_s > after_s]
    previous_w = timeline.power_at(after_s - 1e-12) if after_s > 0 else timeline.idle_power_w
    moments: list[tuple[float, float]] = []  # (time, power from then on)
    cursor_s = after_s
    for span in spans:
        start_s = max(span.start_s, after_s)
        if start_s > cursor_s + 1e-15:
            moments.append((cursor_s, timeline.idle_power_w))  # an idle gap before this span
        moments.append((start_s, span.power_w))
        cursor_s = span.end_s
    # No idle moment after the last span: the device may be recording a contiguous next one.
    scale = 1.0 / voltage_v if voltage_v > 0 else 0.0
    before = previous_w * scale
    for time_s, power_w in moments:
        now = power_w * scale
        if (slope == "POS" and before < level <= now) or (slope == "NEG" and before > level >= now):
            return time_s
        before = now
    return None


class Digitizer:
    """The acquisition state of one analyzer twin: at most one capture armed, the last one's data."""

    def __init__(self, timeline: ActivityTimeline, *, status: StatusRegisters, lock: threading.RLock,
                 closed: threading.Event, physics: BenchPhysics, seed: int, noise_rel: float,
                 adc_bits: int, grace_s: float, external_polarity: Callable[[], str | None],
                 arm_latency_s: float = 0.0, errors: InstrumentErrors | None = None,
                 conversion_s: float | None = None) -> None:
        self.timeline = timeline
        self.status = status
        self.physics = physics
        self.seed = seed
        self.noise_rel = noise_rel
        self.adc_bits = adc_bits
        self.grace_s = grace_s
        # Real seconds from INITiate until the trigger system is ready (the N6705C's WTG-meas bit set):
        # "a few milliseconds" in its programming guide; a trigger before then is ignored.
        self.arm_latency_s = arm_latency_s
        self.errors = errors or InstrumentErrors.exact()  # the instrument's own offset and gain (this session's)
        self.conversion_s = conversion_s  # its ADC's conversion interval, where its data sheet gives one
        self.current: Acquisition | None = None
        self.data: Capture | None = None
        self.last_capture: CaptureWindow | None = None
        self._lock = lock
        self._closed = closed
        self._external_polarity = external_polarity  # "POS"/"NEG" once EXT can fire, None while not
        self._opc_pending = False  # *OPC sent while a capture was pending: set ESR bit 0 at its end
        self._captures = 0

    def status_name(self) -> str:
        self._host_asks()
        return self.current.status if self.current else "complete"

    def _host_asks(self) -> None:
        acquisition = self.current
        if acquisition is not None and acquisition.status == "measuring" and not acquisition.host_asked.is_set():
            acquisition.host_asked.set()
            self.timeline.notify()

    def arm(self, plan: CapturePlan, *, trigger_lost: bool, clip_overload: float | None) -> None:
        """INITiate: abort any capture, drop the old data and wait for `plan`'s trigger."""
        self.abort()
        self._captures += 1
        self.data = None
        acquisition = Acquisition(plan, armed_at_s=self.timeline.end_s, index=self._captures,
                                  trigger_lost=trigger_lost, clip_overload=clip_overload,
                                  status="arming" if self.arm_latency_s > 0 else "waiting for trigger",
                                  ready_real_s=time.monotonic(), search_from_s=self.timeline.end_s)
        self.current = acquisition
        threading.Thread(target=self._run, args=(acquisition,), daemon=True,
                         name=f"analyzer-twin-capture-{acquisition.index}").start()

    def abort(self) -> None:
        if self.current is not None and self.current.status != "complete":
            self.current.cancelled.set()
            self.current.status = "aborted"
            self.current.done.set()
            self._operation_complete()

    def cancel(self) -> None:
        """The twin closes: stop waiting, whatever the state."""
        if self.current is not None:
            self.current.cancelled.set()
            self.current.done.set()

    def opc(self) -> None:
        """`*OPC`: set the OPC event bit once no operation is pending (an initiated acquisition is one
        until it completes or is aborted, its wait for the trigger included)."""
        if self.current is not None and self.current.pending:
            self._opc_pending = True
        else:
            self.status.set_event(OPC_BIT)

    def bus_trigger(self) -> bool:
        """`*TRG`: fire a BUS acquisition that waits for it; False if none does (trigger ignored)."""
        acquisition = self.current
        if (acquisition and acquisition.status == "waiting for trigger"
                and acquisition.plan.trigger_source == "BUS"):
            if self._pretrigger_filled(acquisition, self.timeline.end_s):  # else ignored, with no error
                acquisition.bus_trigger_s = self.timeline.end_s
                acquisition.bus_trigger.set()
            return True
        return False

    @staticmethod
    def _pretrigger_filled(acquisition: Acquisition, trigger_s: float) -> bool:
        """Whether a trigger at `trigger_s` (timeline s) comes after the pre-trigger points have been digitized
        (N6705C User's Guide p. 213: "If [...] a trigger occurs before the pre-trigger data count is completed,
        the measurement system ignores this trigger"). The count fills in real time from readiness; the
        device's own time to its trigger (readout) is on the timeline: the two are added, which errs towards
        accepting when both clocks run together (a live timeline)."""
        pre = max(0, -acquisition.plan.trigger_offset_points)
        if not pre:
            return True
        elapsed_s = (time.monotonic() - acquisition.ready_real_s) + max(0.0, trigger_s - acquisition.armed_at_s)
        return elapsed_s >= pre * acquisition.plan.sample_interval_s * (1 - 1e-9)

    def voltage_step(self, before_v: float, after_v: float) -> None:
        """The output voltage stepped from `before_v` to `after_v` now (setpoint, output on/off, *RST):
        fire a waiting acquisition whose voltage level it passes through in its slope's direction
        (POSitive: from below to at-or-above the level; NEGative: from above to at-or-below), as the
        N6705C's VOLTage<n> trigger source does. Called with the twin's lock held."""
        acquisition = self.current
        if acquisition is None or acquisition.status != "waiting for trigger":
            return
        level = acquisition.plan.level
        if level is None or level.quantity != "voltage" or acquisition.trigger_lost:
            return
        rising = before_v < level.value <= after_v
        falling = before_v > level.value >= after_v
        if (level.slope == "POS" and rising) or (level.slope == "NEG" and falling):
            acquisition.voltage_step = (self.timeline.end_s, before_v, after_v)
            acquisition.voltage_event.set()

    def wait(self, *, include_trigger: bool, timeout_s: float | None = None) -> None:
        """Block (outside the lock) until the capture is done (FETCh, `*WAI`, `*OPC?`); with
        `include_trigger` False, only while it is measuring (a status query settling); at most
        `timeout_s` if given."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._closed.is_set() and (deadline is None or time.monotonic() < deadline):
            with self._lock:
                acquisition = self.current
                if acquisition is None or not acquisition.pending or (
                        not include_trigger and acquisition.status != "measuring"):
                    return
                self._host_asks()
            acquisition.done.wait(POLL_S)

    def _operation_complete(self) -> None:
        if self._opc_pending:
            self._opc_pending = False
            self.status.set_event(OPC_BIT)

    def _wait_for_edge(self, after_s: float, timeout_s: float) -> float | None:
        """The first trigger edge at or after `after_s` the EXT input sees (None: none yet)."""
        with self._lock:
            polarity = self._external_polarity()
        if polarity is None:  # no pin is a trigger input: the device's line reaches nothing
            self._closed.wait(timeout_s)
            return None
        rising_s = self.timeline.wait_for_trigger(after_s, timeout_s)
        if rising_s is None or polarity == "POS":
            return rising_s
        # NEGative polarity: the line's falling edge, the end of the span that raised it.
        return next((span.end_s for span in self.timeline.snapshot()
                     if span.trigger_high and span.start_s == rising_s), None)

    def _trigger_time(self, acquisition: Acquisition) -> float | None:
        """Wait up to POLL_S for the acquisition's trigger; its time on the timeline, or None."""
        plan = acquisition.plan
        if acquisition.trigger_lost:  # the trigger pulse never reaches the input
            acquisition.cancelled.wait(POLL_S)
            return None
        if plan.trigger_source == "IMM":  # starts as it is armed (the NGM202's manual FastLog)
            return acquisition.armed_at_s
        if plan.trigger_source == "BUS":  # `bus_trigger` ignored a *TRG that came too soon
            return acquisition.bus_trigger_s if acquisition.bus_trigger.wait(POLL_S) else None
        found_s: float | None
        if plan.trigger_source == "EXT":
            found_s = self._wait_for_edge(acquisition.search_from_s, POLL_S)
        elif plan.level is not None and plan.level.quantity == "voltage":
            step = acquisition.voltage_step if acquisition.voltage_event.wait(POLL_S) else None
            found_s = None if step is None else step[0]
        elif plan.level is not None:
            found_s = level_crossing_s(self.timeline, acquisition.search_from_s, plan.level.value,
                                       plan.level.slope, quantity=plan.level.quantity, voltage_v=plan.voltage_v)
            if found_s is None:
                acquisition.cancelled.wait(POLL_S)
        else:  # a source the plan does not know: nothing fires it
            acquisition.cancelled.wait(POLL_S)
            return None
        if found_s is not None and not self._pretrigger_filled(acquisition, found_s):
            # Ignored: the next edge, crossing or output step fires it.
            acquisition.search_from_s = found_s + 1e-12
            acquisition.voltage_event.clear()
            acquisition.voltage_step = None
            return None
        return found_s

    def _run(self, acquisition: Acquisition) -> None:
        plan = acquisition.plan
        if acquisition.status == "arming":  # no status bit set, and what the device does meanwhile is missed
            if acquisition.cancelled.wait(self.arm_latency_s):
                acquisition.done.set()
                return
            with self._lock:
                if acquisition.cancelled.is_set():
                    acquisition.done.set()
                    return
                acquisition.armed_at_s = acquisition.search_from_s = self.timeline.end_s
                acquisition.ready_real_s = time.monotonic()
                acquisition.status = "waiting for trigger"
        trigger_s: float | None = None
        while trigger_s is None and not acquisition.cancelled.is_set():
            trigger_s = self._trigger_time(acquisition)
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
        self.timeline.wait_until_covered(window.t1_s, self.grace_s, settled=acquisition.host_asked.is_set)
        # Only the spans the samples can see (the filters' settling included), not every span since start-up.
        history_s = analog_history_start_s(window.t0_s, window.sample_interval_s, window.points, self.physics)
        power_w = analog_samples(self.timeline.spans_from(history_s), self.timeline.idle_power_w, window.t0_s,
                                 window.sample_interval_s, window.points, self.physics, self.timeline.ripple,
                                 conversion_s=self.conversion_s)
        current_a, voltage_v = self._readings(power_w, acquisition, window, rng)
        if acquisition.clip_overload is not None:
            current_a = overload_and_pin(current_a, full_scale_a=plan.current_full_scale_a,
                                         overload=acquisition.clip_overload)
        data = Capture(current_a, voltage_v, plan, window)
        with self._lock:
            if not acquisition.cancelled.is_set():
                self.data = data
                self.last_capture = window
                acquisition.status = "complete"
                self._operation_complete()
            acquisition.done.set()

    def _readings(self, power_w: np.ndarray, acquisition: Acquisition, window: CaptureWindow,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(current A, voltage V) float32 readings of the window: at the programmed voltage, or, after
        an output step fired the capture, at the old voltage before the step and the new one from it
        on (the device draws nothing while the output is at 0 V)."""
        plan = acquisition.plan
        instants_s = window.t0_s + np.arange(power_w.size) * window.sample_interval_s
        parts: list[tuple[np.ndarray, np.ndarray, float]] = [(power_w, instants_s, plan.voltage_v)]
        if acquisition.voltage_step is not None:
            step_s, before_v, after_v = acquisition.voltage_step
            k = int(np.clip(np.ceil((step_s - window.t0_s) / window.sample_interval_s - 1e-9), 0, power_w.size))
            parts = [(power_w[:k], instants_s[:k], before_v), (power_w[k:], instants_s[k:], after_v)]
        readings = [digitize(part, voltage_v=volts, current_full_scale_a=plan.current_full_scale_a,
                             voltage_full_scale_v=plan.voltage_full_scale_v, rng=rng,
                             noise_rel=self.noise_rel, adc_bits=self.adc_bits, errors=self.errors, instants_s=at_s)
                    for part, at_s, volts in parts]
        return (np.concatenate([current for current, _ in readings]).astype(np.float32),
                np.concatenate([volts for _, volts in readings]).astype(np.float32))


def interleave(capture: Capture, fetch: FetchQuery) -> np.ndarray:
    """The values a fetch query returns: its declared columns, interleaved sample by sample."""
    columns = {"current": capture.current_a, "voltage": capture.voltage_v,
               "time": np.arange(capture.current_a.size) * capture.window.sample_interval_s}
    return np.stack([columns[name] for name in fetch.columns], axis=1).reshape(-1)
