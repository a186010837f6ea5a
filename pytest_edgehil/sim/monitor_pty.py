"""What the power-monitor twins share: a raw pty the host opens with pyserial, and the samples a monitor
digitizes from the device twin's timeline (current through the bench physics, the trigger line beside it).

`SerialTwin` owns the pty: a thread hands every byte the host writes to `on_bytes`; `write` blocks while the
host is slow to read (a real USB-CDC monitor's buffer fills the same way) but gives up once the twin closes.
`monitor_samples` is the analyzer twin's synthesis (`bench_physics.analog_samples`) plus the logic input:
the line as the monitor reads it at each sample instant, after the GPIO's latency.
"""

from __future__ import annotations

import os
import select
import threading
import tty

import numpy as np

from pytest_edgehil.sim.bench_physics import BenchPhysics, analog_samples
from pytest_edgehil.sim.timeline import ActivityTimeline

POLL_S = 0.02


class SerialTwin:
    """A pty whose host side is `port`; subclasses implement `on_bytes`."""

    def __init__(self, name: str) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # at once: bytes written before the host opens the port are not echoed back
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self.name = name
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._serve, name=f"{name}-pty", daemon=True)

    def start(self) -> str:
        self._reader.start()
        return self.port

    def on_bytes(self, data: bytes) -> None:  # pragma: no cover - every twin overrides it
        raise NotImplementedError

    def _serve(self) -> None:
        while not self.closed.is_set():
            ready, _, _ = select.select([self._master], [], [], POLL_S)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if data:
                self.on_bytes(data)

    def write(self, data: bytes) -> bool:
        """Write all of `data` to the host; False if the twin closed first."""
        view = memoryview(data)
        while view and not self.closed.is_set():
            _, ready, _ = select.select([], [self._master], [], POLL_S)
            if ready:
                try:
                    view = view[os.write(self._master, view[:4096]):]
                except BlockingIOError:
                    continue
                except OSError:
                    return False
        return not view

    def close(self) -> None:
        self.closed.set()
        self._reader.join(timeout=1.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def trigger_line(timeline: ActivityTimeline, instants_s: np.ndarray, latency_s: float) -> np.ndarray:
    """The device's trigger line as read at `instants_s` (bool), `latency_s` after the device drove it."""
    spans = [s for s in timeline.snapshot() if s.trigger_high]
    high = np.zeros(instants_s.size, dtype=bool)
    if not spans:
        return high
    starts = np.array([s.start_s for s in spans])
    ends = np.array([s.end_s for s in spans])
    t = instants_s - latency_s
    k = np.searchsorted(starts, t, side="right") - 1
    inside = k >= 0
    high[inside] = t[inside] < ends[k[inside]]
    return high


def monitor_samples(timeline: ActivityTimeline, physics: BenchPhysics, t0_s: float, dt_s: float, points: int,
                    rng: np.random.Generator, noise_rel: float) -> tuple[np.ndarray, np.ndarray]:
    """(power W per sample with noise, trigger line per sample) for samples at t0 + i·dt, i < points."""
    # Only the spans near the window: a session's timeline holds thousands, and a streaming twin synthesizes
    # in small chunks (its host reads a pause in the stream as its end). The margin covers the supply path's
    # settling history that `analog_samples` replays before the window.
    margin_s = 12 * sum(physics.filter_taus_s) + 2 * dt_s
    lo_s, hi_s = t0_s - margin_s, t0_s + (points + 1) * dt_s
    spans = [s for s in timeline.snapshot() if s.end_s > lo_s and s.start_s < hi_s]
    power_w = analog_samples(spans, timeline.idle_power_w, t0_s, dt_s, points, physics, timeline.ripple)
    power_w = power_w * (1.0 + noise_rel * rng.standard_normal(points))
    line = trigger_line(timeline, t0_s + np.arange(points) * dt_s, physics.trigger_latency_s)
    return power_w, (~line if timeline.trigger_active_low else line)
