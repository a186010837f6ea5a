"""A device timeline that follows the wall clock, for an analyzer twin run outside pytest.

With no device twin attached nothing would ever be appended to the timeline, so the analyzer twin's
virtual time would stand still. `LiveTimeline` appends what an idle board draws (`idle_power_w`)
as real time passes, and optionally a synthetic periodic load (`PeriodicLoad`: `active_s` at
`active_power_w` every `period_s`, with the trigger line high while it runs), so that BUS, EXT and
scalar measurements all see a supply current, idle or active. Virtual time 0 is `start()`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from pytest_edgehil.errors import ConfigError
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

STEP_S = 0.005  # idle spans are appended in steps this long (real time)


@dataclass(frozen=True)
class PeriodicLoad:
    """`active_s` at `active_power_w` every `period_s` seconds, the trigger line high meanwhile."""

    period_s: float
    active_s: float
    active_power_w: float

    def __post_init__(self) -> None:
        if not 0 < self.active_s < self.period_s or self.active_power_w < 0:
            raise ConfigError(f"synthetic load: need 0 < active ({self.active_s:g} s) < period "
                              f"({self.period_s:g} s) and a power >= 0 W ({self.active_power_w:g} W)")

    @classmethod
    def parse(cls, text: str) -> PeriodicLoad:
        """`PERIOD_S,ACTIVE_S,POWER_W`, e.g. `0.02,0.005,0.5`; ConfigError naming the format otherwise."""
        try:
            period_s, active_s, power_w = (float(part) for part in text.split(","))
        except ValueError:
            raise ConfigError(f"--load {text!r}: give PERIOD_S,ACTIVE_S,POWER_W, e.g. 0.02,0.005,0.5") from None
        return cls(period_s, active_s, power_w)


class LiveTimeline:
    """Appends idle (and load) spans to `timeline` as wall-clock time passes, in a daemon thread."""

    def __init__(self, timeline: ActivityTimeline, load: PeriodicLoad | None = None) -> None:
        self.timeline = timeline
        self.load = load
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-timeline", daemon=True)

    def start(self) -> LiveTimeline:
        self.timeline.follows_wall_clock = True  # captures wait for their windows in real time
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def _spans(self, start_s: float, end_s: float) -> list[StageSpan]:
        """The spans covering [start_s, end_s): idle, cut by the load's active stretches."""
        idle = self.timeline.idle_power_w
        load = self.load
        if load is None:
            return [StageSpan("idle", start_s, end_s, idle)]
        spans: list[StageSpan] = []
        cursor = start_s
        while cursor < end_s - 1e-12:
            # A small tolerance: 0.06 // 0.02 is 2.0 in floating point, which would stall at 0.06.
            period_start = math.floor(cursor / load.period_s + 1e-9) * load.period_s
            active_end = period_start + load.active_s
            if cursor < active_end - 1e-12:
                stop = min(active_end, end_s)
                spans.append(StageSpan("load", cursor, stop, load.active_power_w,
                                       trigger_high=cursor <= period_start + 1e-12))
            else:
                stop = min(period_start + load.period_s, end_s)
                spans.append(StageSpan("idle", cursor, stop, idle))
            cursor = stop
        return spans

    def _run(self) -> None:
        origin = time.monotonic()
        covered_s = self.timeline.end_s
        while not self._stop.wait(STEP_S):
            now_s = time.monotonic() - origin
            if now_s <= covered_s:
                continue
            for span in self._spans(covered_s, now_s):
                self.timeline.append(span)
            covered_s = now_s
