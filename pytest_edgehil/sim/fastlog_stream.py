"""The NGM202 twin's FastLog: a stream of (V, I) chunks, one every 250 ms, as R&S documents it.

R&S's NGM20x FastLog example (`Rohde-Schwarz/Examples`, `Powersupplies/Python/RsInstrument/
RSInstrument_NGM200_FastLog.py`): after `FLOG:TARGet SCPI` and `FLOG[:STATe] 1` the instrument
collects samples into an internal buffer and offers them in chunks every 250 ms whatever the rate,
each chunk flagged by bit 12 ("FastLog data available") of `STATus:OPERation:INSTrument:ISUMmary<n>`,
read with `FLOG:DATA?`; a chunk not picked up before the next one is ready is overwritten. The bit is a
condition of the twin's `StatusTree`: set while a chunk waits unread, it latches the ISUM event and
summarises up to `*STB?` bit 7, as the example's polling expects.

The twin does the same on its device twin's virtual timeline: the stream starts at the timeline's end
when `FLOG 1` arrives; chunk k holds [start + k·P, start + (k+1)·P] and is offered P real seconds after
the previous one (and once the device has recorded that far, or is idle; a twin late with its
synthesis offers the next chunk P after the late one, keeping the instrument's spacing). An unread chunk is lost when
the next one is offered (`lost` counts them), and the `lost-chunk` fault drops one on purpose, so a
driver's gap detection can be tested. Data are little-endian float32 (V, I) pairs.

Limitation of a virtual clock: the device twin's activity lands where its own clock stands. Device
commands sent while a stream runs land at virtual times the stream may have already offered as idle;
run the device only between `FLOG 1` and the chunks that cover it (the meter does: arm, RUN, wait).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.sim.bench_physics import BenchPhysics, analog_samples, sampled_ripple
from pytest_edgehil.sim.instrument_errors import InstrumentErrors
from pytest_edgehil.sim.scpi_status import StatusRegisters
from pytest_edgehil.sim.timeline import ActivityTimeline
from pytest_edgehil.sim.trace_synthesis import CaptureWindow, digitize, overload_and_pin
from pytest_edgehil.sim.twin_dialect import CapturePlan

#: Bit 12 of STATus:OPERation:INSTrument:ISUMmary<n>: "FastLog data available" (R&S's example).
CHUNK_READY_BIT = 4096


@dataclass(frozen=True)
class Chunk:
    index: int  # 0 = the first chunk after FLOG 1
    pairs: np.ndarray  # float32, V, I, V, I, ...


class FastLogStream:
    """One twin's FastLog: started by `FLOG 1`, stopped by `FLOG 0`, read chunk by chunk."""

    def __init__(self, timeline: ActivityTimeline, *, lock: threading.RLock, closed: threading.Event,
                 physics: BenchPhysics, seed: int, noise_rel: float, adc_bits: int, grace_s: float,
                 chunk_s: float, status: StatusRegisters, errors: InstrumentErrors | None = None) -> None:
        self.timeline = timeline
        self.physics = physics
        self.seed = seed
        self.noise_rel = noise_rel
        self.adc_bits = adc_bits
        self.grace_s = grace_s
        self.chunk_s = chunk_s
        self.status = status
        self.errors = errors or InstrumentErrors.exact()  # the instrument's own offset and gain (this session's)
        self.ready: Chunk | None = None
        self.served: list[Chunk] = []  # the chunks FLOG:DATA? returned since the last FLOG 1, in order
        self.lost = 0  # chunks overwritten unread (or dropped by the lost-chunk fault)
        self.last_window: CaptureWindow | None = None  # what the stream has covered so far
        self.channel = 1  # the output whose ISUMmary<n> flags the chunks (INST:NSEL at FLOG 1)
        self._lock = lock
        self._closed = closed
        self._offered = threading.Condition(lock)
        self._stop: threading.Event | None = None
        self._streams = 0

    @property
    def running(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def start(self, plan: CapturePlan, *, drop_chunk: int | None, clip_overload: float | None = None,
              channel: int = 1) -> None:
        """`FLOG 1`: stop a running stream, then stream from the timeline's end (lock held). Faults:
        chunk `drop_chunk` is overwritten unread; `clip_overload` scales each chunk's peak current to that
        multiple of the range and pins it at the range limit (the ADC saturates)."""
        self.stop()
        self._streams += 1
        self.channel = channel
        self._offer(None)
        self.served = []
        stop = threading.Event()
        self._stop = stop
        threading.Thread(target=self._run, args=(plan, self.timeline.end_s, stop, self._streams, drop_chunk,
                                                 clip_overload),
                         daemon=True, name=f"analyzer-twin-fastlog-{self._streams}").start()

    def stop(self) -> None:
        """`FLOG 0` (or *RST, close): the stream ends; an unread chunk is discarded (lock held)."""
        if self._stop is not None:
            self._stop.set()
        self._offer(None)
        self._offered.notify_all()

    def _offer(self, chunk: Chunk | None) -> None:
        """The chunk on offer (None: none), mirrored in the ISUMmary<channel> condition bit 12."""
        self.ready = chunk
        if self.status.tree is not None:
            self.status.tree.set_channel_bit(self.channel, CHUNK_READY_BIT, chunk is not None)

    def take(self) -> Chunk | None:
        """`FLOG:DATA?`: the offered chunk (it is then gone), or None (lock held)."""
        chunk = self.ready
        self._offer(None)
        if chunk is not None:
            self.served.append(chunk)
        return chunk

    def served_pairs(self) -> np.ndarray | None:
        """float32 V, I, V, I, ... of every chunk served since the last `FLOG 1`; None if none was."""
        return np.concatenate([chunk.pairs for chunk in self.served]) if self.served else None

    def wait_ready(self) -> None:
        """Block (lock not held) until a chunk is offered or the stream stops: `FLOG:DATA?` sent while
        FastLog runs waits for the next chunk, as FETCh waits for a capture."""
        with self._offered:
            while self.running and self.ready is None and not self._closed.is_set():
                self._offered.wait(0.05)

    def _chunk_power_w(self, t0_s: float, dt: float, points: int) -> np.ndarray:
        """Power per sample over one chunk. Past the device's last span (plus ten time constants of the
        supply path) the analyzer sees the idle level exactly, so only the active part is synthesized:
        the chunk must be ready on its 250 ms schedule, and a whole chunk through every filter at 2 µs
        takes longer than that on a small machine."""
        spans = self.timeline.snapshot()
        idle_w = self.timeline.idle_power_w
        active_end_s = max((span.end_s for span in spans), default=t0_s) + 10 * sum(self.physics.filter_taus_s)
        active = min(points, max(0, math.ceil((active_end_s - t0_s) / dt) + 2))
        power_w = np.full(points, idle_w)
        if active:
            power_w[:active] = analog_samples(spans, idle_w, t0_s, dt, active, self.physics)
        if self.timeline.ripple is not None:  # the load's periodic part runs on through the idle tail too
            power_w += sampled_ripple(self.timeline.ripple, t0_s, dt, points, self.physics)
        return power_w

    def _run(self, plan: CapturePlan, start_s: float, stop: threading.Event, stream: int,
             drop_chunk: int | None, clip_overload: float | None) -> None:
        dt = plan.sample_interval_s
        points = max(1, round(self.chunk_s / dt))
        due_s = time.monotonic() + self.chunk_s  # when chunk k is offered, at the earliest
        k = 0
        cache: tuple[int, float, np.ndarray] | None = None  # (spans recorded, chunk start, power)
        while not (stop.is_set() or self._closed.is_set()):
            t0_s = start_s + k * points * dt
            # Until the chunk is due, synthesize what the device has recorded so far whenever it is idle
            # (its RUN lands in one go): the chunk is then ready on its schedule, not late by the synthesis.
            while (wait_s := due_s - time.monotonic()) > 0:
                if stop.wait(min(wait_s, 0.02)):
                    return
                recorded = len(self.timeline.spans)
                if not self.timeline.busy and (cache is None or cache[:2] != (recorded, t0_s)):
                    cache = (recorded, t0_s, self._chunk_power_w(t0_s, dt, points))
            self.timeline.wait_until_covered(t0_s + points * dt, self.grace_s)
            recorded = len(self.timeline.spans)
            if cache is None or cache[:2] != (recorded, t0_s):
                cache = (recorded, t0_s, self._chunk_power_w(t0_s, dt, points))
            power_w = cache[2]
            current_a, voltage_v = digitize(
                power_w, voltage_v=plan.voltage_v, current_full_scale_a=plan.current_full_scale_a,
                voltage_full_scale_v=plan.voltage_full_scale_v, rng=np.random.default_rng([self.seed, stream, k]),
                noise_rel=self.noise_rel, adc_bits=self.adc_bits, errors=self.errors,
                instants_s=t0_s + np.arange(points) * dt)
            if clip_overload is not None:
                current_a = overload_and_pin(current_a, full_scale_a=plan.current_full_scale_a, overload=clip_overload)
            pairs = np.stack([voltage_v, current_a], axis=1).reshape(-1).astype(np.float32)
            with self._offered:
                if stop.is_set():
                    return
                if self.ready is not None:
                    self.lost += 1  # not picked up in time: overwritten by this one
                self.last_window = CaptureWindow(start_s, start_s, t0_s + points * dt, dt, (k + 1) * points, 0)
                if k == drop_chunk:  # fault: this chunk is overwritten before anyone could read it
                    self.lost += 1
                    self._offer(None)
                else:
                    # A chunk replacing an unread one leaves bit 12 set: no new transition, no new event.
                    self._offer(Chunk(k, pairs))
                self._offered.notify_all()
            # The next chunk comes one period after this one was offered (a twin late with its synthesis
            # keeps the spacing the instrument has rather than catching up with a burst).
            due_s = max(due_s, time.monotonic()) + self.chunk_s
            k += 1
