"""The simulated bench's wiring: what the device twin did, when, and at what power.

On a real bench the device's supply current flows through the analyzer and the device's GPIO trigger
line is wired to the analyzer's trigger input. In the simulated bench this module is that wiring: the
device twin appends one `StageSpan` per stage it executes (in its virtual clock), marking the spans
during which it holds the trigger line high; the analyzer twin reads the spans to synthesize the
current/voltage it would have digitized, and to know when its armed acquisition triggers.

Times are seconds on the device twin's virtual clock; powers are watts drawn from the supply.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageSpan:
    """One contiguous stage of device activity at constant mean power."""

    stage: str  # "idle", "readout", "inference", "retrieval", "load", ...
    start_s: float
    end_s: float
    power_w: float
    trigger_high: bool = False  # the device raises its trigger line for this span
    run_index: int = -1  # which inference of a RUN n this span belongs to (-1: none)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def energy_j(self) -> float:
        return self.power_w * self.duration_s


@dataclass(frozen=True)
class LoadRipple:
    """A periodic part of the load's power on top of its stages: `amplitude_w`·sin(2π·`frequency_hz`·t), t in
    seconds on the timeline. A board's DC-DC converter in power-save mode switches in bursts whose rate
    falls with its load into the kHz range (TI TPS650250 data sheet, "Power Save Mode Operation"); a periodic
    timer interrupt or an LED's PWM does the same. It averages to nothing over whole periods, so the stages'
    mean powers are unchanged; a window's energy holds the part of a period it covers."""

    amplitude_w: float
    frequency_hz: float

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        """∫ amplitude·sin(ωt) dt over [t0, t1], in joules."""
        omega = 2 * math.pi * self.frequency_hz
        return self.amplitude_w * (math.cos(omega * t0_s) - math.cos(omega * t1_s)) / omega


@dataclass
class ActivityTimeline:
    """Thread-safe, append-only record of a device twin's activity, plus its idle power and supply."""

    idle_power_w: float
    supply_v: float
    spans: list[StageSpan] = field(default_factory=list)
    # The line idles high and `trigger_high` spans pull it low (MLPerf Tiny's open-drain timestamp GPIO):
    # a monitor's digital input reads the inverted level.
    trigger_active_low: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _busy: int = field(default=0, repr=False)  # > 0 while the device is recording a command's activity
    # True when spans are appended as real time passes (sim.live_bench): a capture must then wait for its
    # window in real time. False (a device twin's virtual clock): the activity is known once the host
    # stops commanding the device and asks for the capture (see `wait_until_covered`).
    follows_wall_clock: bool = False
    # The load's periodic part (`LoadRipple`), in the truth (`energy_between`) and in what an analyzer samples.
    ripple: LoadRipple | None = None
    # Indexes kept as spans are appended, so queries bisect instead of scanning every span since start-up
    # (a long session records millions): each span's end, and each trigger-high span's start.
    _ends: list[float] = field(default_factory=list, repr=False)
    _trigger_starts: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._ends = [span.end_s for span in self.spans]
        self._trigger_starts = [span.start_s for span in self.spans if span.trigger_high]

    def set_busy(self, busy: bool) -> None:
        """The device twin marks a command's activity as in progress (a long RUN takes real time to
        record); a capture waiting for coverage keeps waiting while it is."""
        with self._lock:
            self._busy += 1 if busy else -1
            self._lock.notify_all()

    @property
    def busy(self) -> bool:
        """Whether the device is recording a command's activity right now (more spans may follow)."""
        with self._lock:
            return self._busy > 0

    def append(self, span: StageSpan) -> None:
        self.extend((span,))

    def extend(self, spans: Iterable[StageSpan]) -> None:
        """Append spans in time order, as one step (waiters are woken once); ValueError if one starts
        before the previous one ends."""
        spans = list(spans)
        with self._lock:
            last_end_s = self.spans[-1].end_s if self.spans else -math.inf
            for span in spans:  # all checked before any is appended: a refused step leaves no trace
                if span.start_s < last_end_s - 1e-12:
                    raise ValueError("timeline spans must be appended in time order")
                last_end_s = span.end_s
            self.spans += spans
            self._ends += [span.end_s for span in spans]
            self._trigger_starts += [span.start_s for span in spans if span.trigger_high]
            self._lock.notify_all()

    def snapshot(self) -> list[StageSpan]:
        with self._lock:
            return list(self.spans)

    def spans_from(self, t_s: float) -> list[StageSpan]:
        """The spans that end after `t_s`, in time order (a copy of the tail, not of every span)."""
        with self._lock:
            return self.spans[bisect.bisect_right(self._ends, t_s):]

    @property
    def end_s(self) -> float:
        with self._lock:
            return self.spans[-1].end_s if self.spans else 0.0

    def wait_for_trigger(self, after_s: float, timeout_s: float) -> float | None:
        """Block (real time) until a trigger rising edge at or after `after_s`; return its time or None."""
        def find() -> float | None:
            index = bisect.bisect_left(self._trigger_starts, after_s)
            return self._trigger_starts[index] if index < len(self._trigger_starts) else None

        with self._lock:
            found = find()
            if found is None:
                self._lock.wait_for(lambda: find() is not None, timeout=timeout_s)
                found = find()
            return found

    def wait_until_covered(self, t_s: float, timeout_s: float, busy_timeout_s: float = 60.0,
                           settled: Callable[[], bool] | None = None) -> bool:
        """Block until activity has been recorded up to `t_s` (the device has got that far): at most
        `timeout_s` once the device is idle, at most `busy_timeout_s` while it is still recording.

        `settled`: on a virtual-clock timeline, True once nothing more will be recorded for this wait
        (the host asked for the capture, so it sends the device no more commands for its window); the
        wait then ends as soon as the device is idle, without spending `timeout_s` of real time waiting
        for virtual activity that will not come. Call `notify()` when what `settled` reads changes.
        Returns whether `t_s` is covered."""
        def covered() -> bool:
            return bool(self.spans) and self.spans[-1].end_s >= t_s

        def done() -> bool:
            return covered() or (settled is not None and not self.follows_wall_clock and not self._busy
                                 and settled())

        with self._lock:
            self._lock.wait_for(lambda: covered() or not self._busy, timeout=busy_timeout_s)
            self._lock.wait_for(done, timeout=timeout_s)
            return covered()

    def notify(self) -> None:
        """Wake the waits, to re-check a `settled` condition that changed outside the timeline."""
        with self._lock:
            self._lock.notify_all()

    def power_at(self, t_s: float) -> float:
        """Mean power at time t (idle outside recorded spans; the ripple, which averages out, not included)."""
        with self._lock:
            index = bisect.bisect_right(self._ends, t_s)  # the first span ending after t
            if index < len(self.spans) and self.spans[index].start_s <= t_s:
                return self.spans[index].power_w
            return self.idle_power_w

    def energy_between(self, t0_s: float, t1_s: float) -> float:
        """The true energy drawn in [t0, t1] — what a perfect analyzer would measure (the ripple included)."""
        with self._lock:
            first = bisect.bisect_right(self._ends, t0_s)  # spans ending by t0 add nothing
            spans = self.spans[first:]
        covered = 0.0
        energy = 0.0
        for span in spans:
            if span.start_s >= t1_s:
                break  # time order: no later span reaches into [t0, t1]
            lo, hi = max(t0_s, span.start_s), min(t1_s, span.end_s)
            if hi > lo:
                energy += span.power_w * (hi - lo)
                covered += hi - lo
        ripple_j = self.ripple.energy_j(t0_s, t1_s) if self.ripple is not None else 0.0
        return energy + self.idle_power_w * max(0.0, (t1_s - t0_s) - covered) + ripple_j
