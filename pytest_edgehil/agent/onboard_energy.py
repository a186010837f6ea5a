"""On-board energy the agent serves over ENERGY_READ: every counter and power rail read around each RUN.

Sources, found through the kernel's interfaces under a sysfs root (`/sys` unless told otherwise):
- energy counters (`agent.energy_counters`): powercap RAPL zones, hwmon `energyN_input` accumulators. Read
  just before the first inference and just after the last, and during the RUN at least every `poll_s`,
  so the agent unwraps a RAPL counter itself (at most one wrap per step, checked against `max_power_w`)
  and the host only ever sees monotonic µJ;
- power-only rails of INA3221/INA2xx monitors (hwmon `powerN_input` µW, else `inN_input` mV ×
  `currN_input` mA): sampled by a thread at the chip's `update_interval` while the RUN lasts, integrated
  with the trapezoid rule. Their update period as reported is the chip's interval plus the largest gap
  between two samples, so a starved sampler widens the stated uncertainty instead of hiding in it;
- NVML's `nvmlDeviceGetTotalEnergyConsumption` (mJ) through `pynvml` where it is installed (optional).

Nothing here imports `pytest_edgehil.sim`; the board's monotonic clock (`clock_ns`) times every reading.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Protocol

from pytest_edgehil.agent.energy_counters import EnergyCounter, find_counters
from pytest_edgehil.agent.power import INA_NAMES
from pytest_edgehil.errors import CannotResolve, MeasurementError
from pytest_edgehil.link.energy_messages import (
    CAPABILITY,
    METHOD_COUNTER,
    METHOD_INTEGRATED,
    CounterWindow,
    EnergyCounters,
)
from pytest_edgehil.measure.counter_energy import CounterReading, CounterSpec, delta_uj

Clock = Callable[[], int]
DEFAULT_MAX_POWER_W = 500.0  # a board-level ceiling for the wrap check; --max-power-w overrides it
DEFAULT_POLL_S = 0.05  # reads of a wrapping counter during a RUN: 25 J per step at 500 W, under RAPL's ranges
# NVIDIA does not document how often the total-energy counter updates; 100 ms is an assumption, stated
# as the counter's update period so that the host sizes windows (20 s at 1 %) to cover it.
NVML_UPDATE_S = 0.1
# A counter read whose clock reads (before and after) lie further apart than this was preempted: read
# again, up to READ_TRIES times. 200 µs is a fifth of RAPL's 1 ms update and ~10x an unhurried sysfs read.
READ_SKEW_NS = 200_000
READ_TRIES = 5


class Source(Protocol):
    @property
    def counter_id(self) -> str: ...

    def begin(self, clock_ns: Clock) -> None: ...
    def poll(self, clock_ns: Clock) -> None: ...
    def end(self, clock_ns: Clock) -> CounterWindow: ...


class _Readable(Protocol):
    def read_uj(self) -> int: ...


@dataclass
class CounterSource:
    """A monotonic counter (`reader.read_uj()`), unwrapped by reading it at least every `poll_s`."""

    spec: CounterSpec
    reader: _Readable
    label: str
    max_power_w: float = DEFAULT_MAX_POWER_W
    poll_s: float = DEFAULT_POLL_S
    _start: CounterReading | None = None
    _last: CounterReading | None = None
    _total_uj: int = 0
    _note: str = ""
    _gap_ns: int = 0  # clock-read bracket of the last kept read (`_read`)
    _end_gaps_ns: tuple[int, int] = (0, 0)  # … of the window's first and last reading

    @property
    def counter_id(self) -> str:
        return self.spec.name

    def _read(self, clock_ns: Clock) -> CounterReading | None:
        """The counter stamped with the midpoint of clock reads taken just before and just after it.

        A reader preempted between the clock and the counter (a loaded board, a busy host running the
        agent) would stamp a value that is milliseconds newer than its time: at several watts that is
        more energy than the counter's own resolution. So the read is retried while the two clock reads
        lie more than READ_SKEW_NS apart, and the tightest one is kept; its bracket (`_gap_ns`) widens
        the window's stated update period where it is an end of the window (`end`)."""
        best: tuple[int, int, int] | None = None  # (gap ns, value µJ, midpoint ns)
        try:
            for _ in range(READ_TRIES):
                before = clock_ns()
                value = self.reader.read_uj()
                after = clock_ns()
                if best is None or after - before < best[0]:
                    best = (after - before, value, (before + after) // 2)
                if after - before <= READ_SKEW_NS:
                    break
        except MeasurementError as exc:
            self._note = self._note or str(exc)
            return None
        assert best is not None  # READ_TRIES >= 1
        self._gap_ns = best[0]
        return CounterReading(best[1], best[2] / 1e9)

    def begin(self, clock_ns: Clock) -> None:
        self._note, self._total_uj = "", 0
        self._start = self._last = self._read(clock_ns)
        self._end_gaps_ns = (self._gap_ns, self._gap_ns)

    def poll(self, clock_ns: Clock) -> None:
        if self._last is not None and clock_ns() / 1e9 - self._last.time_s >= self.poll_s:
            self._step(clock_ns)

    def _step(self, clock_ns: Clock) -> None:
        reading = self._read(clock_ns)
        if reading is None or self._last is None:
            return
        try:
            self._total_uj += delta_uj(self.spec, self._last, reading, max_power_w=self.max_power_w)
        except (CannotResolve, MeasurementError) as exc:
            self._note = self._note or str(exc)
        self._last = reading
        self._end_gaps_ns = (self._end_gaps_ns[0], self._gap_ns)

    def end(self, clock_ns: Clock) -> CounterWindow:
        self._step(clock_ns)
        start, last = self._start, self._last
        if start is None or last is None:
            return CounterWindow(self.counter_id, self.label, METHOD_COUNTER, self.spec.resolution_uj,
                                 self.spec.update_s * 1e6, 0, 0, 0, 0, self._note or "not read")
        # Each end's value was read somewhere inside its clock-read bracket but is stamped at the bracket's
        # middle: on top of the counter's own lag that is up to half the bracket's time at the power then
        # (idle, as for the lag: `OnboardEnergy.end`). So the stated update period, which the host's bound
        # prices at each end (counter_energy.window_uncertainty_j), grows by half the wider bracket: a
        # window read on a loaded board is stated wider, and refused by the host where that exceeds 1 %.
        update_us = self.spec.update_s * 1e6 + max(self._end_gaps_ns) / 2e3
        return CounterWindow(self.counter_id, self.label, METHOD_COUNTER, self.spec.resolution_uj,
                             update_us, start.energy_uj, round(start.time_s * 1e6),
                             start.energy_uj + self._total_uj, round(last.time_s * 1e6), self._note)


@dataclass
class RailSource:
    """A power-only rail (µW from `power_file`, or mV × mA from `volts_file` and `amps_file`), sampled every
    `update_s` by a thread during a RUN and integrated with the trapezoid rule."""

    counter_id: str
    label: str
    update_s: float
    power_file: Path | None = None
    volts_file: Path | None = None
    amps_file: Path | None = None
    _samples: list[tuple[float, float]] = field(default_factory=list)  # (s, W)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _note: str = ""
    threaded: bool = True  # False: sampled only at the RUN's inference boundaries (`poll`), when due

    def read_w(self) -> float:
        try:
            if self.power_file is not None:
                return int(self.power_file.read_text()) * 1e-6
            assert self.volts_file is not None and self.amps_file is not None
            return int(self.volts_file.read_text()) * int(self.amps_file.read_text()) * 1e-6  # mV × mA = µW
        except (OSError, ValueError) as exc:
            raise MeasurementError(f"power rail {self.counter_id} cannot be read: {exc}; check the hwmon "
                                   "driver and that the agent's user may read it") from exc

    def _sample(self, clock_ns: Clock) -> None:
        time_s = clock_ns() / 1e9
        try:
            power_w = self.read_w()
        except MeasurementError as exc:
            self._note = self._note or str(exc)
            return
        self._samples.append((time_s, power_w))

    def _loop(self, clock_ns: Clock) -> None:
        while not self._stop.wait(self.update_s):
            self._sample(clock_ns)

    def begin(self, clock_ns: Clock) -> None:
        self._samples, self._note = [], ""
        self._stop.clear()
        self._sample(clock_ns)
        self._thread = None
        if self.threaded:
            self._thread = threading.Thread(target=self._loop, args=(clock_ns,), name=f"rail:{self.counter_id}",
                                            daemon=True)
            self._thread.start()

    def poll(self, clock_ns: Clock) -> None:
        # Also sampled between inferences when due: a sampler thread starved by a loaded CPU (or by an
        # inference that holds the GIL) then leaves gaps no longer than one inference.
        if self._samples and clock_ns() / 1e9 - self._samples[-1][0] >= self.update_s:
            self._sample(clock_ns)

    def end(self, clock_ns: Clock) -> CounterWindow:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(clock_ns)
        samples = sorted(self._samples)  # two samplers (thread, poll) may append out of order
        if len(samples) < 2:
            return CounterWindow(self.counter_id, self.label, METHOD_INTEGRATED, 1.0, self.update_s * 1e6,
                                 0, 0, 0, 0, self._note or "fewer than two samples")
        energy_j = sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in pairwise(samples))
        max_gap_s = max(t1 - t0 for (t0, _), (t1, _) in pairwise(samples))
        return CounterWindow(self.counter_id, self.label, METHOD_INTEGRATED, 1.0,
                             (self.update_s + max_gap_s) * 1e6, 0, round(samples[0][0] * 1e6),
                             round(energy_j * 1e6), round(samples[-1][0] * 1e6), self._note)


def _label(counter: EnergyCounter) -> str:
    if counter.kind == "rapl":
        return f"RAPL {counter.name.split(':')[-1]}"
    return f"hwmon {counter.name}"


def _rails(root: Path) -> list[RailSource]:
    rails = []
    for hwmon in sorted((root / "class" / "hwmon").glob("hwmon*")):
        try:
            chip = (hwmon / "name").read_text().strip()
            interval_ms = int((hwmon / "update_interval").read_text()) if (hwmon / "update_interval").exists() else 1
        except (OSError, ValueError):
            continue
        if chip not in INA_NAMES or any(hwmon.glob("energy*_input")):
            continue  # not an INA monitor, or it has accumulators (served as counters)
        for amps in sorted(hwmon.glob("curr*_input")):
            channel = amps.name.removeprefix("curr").removesuffix("_input")
            power, volts = hwmon / f"power{channel}_input", hwmon / f"in{channel}_input"
            if not power.exists() and not volts.exists():
                continue
            label_file = hwmon / f"in{channel}_label"
            rail = label_file.read_text().strip() if label_file.exists() else f"channel {channel}"
            rails.append(RailSource(f"{chip}-{hwmon.name}-{channel}", f"hwmon {chip} {rail} (integrated)",
                                    max(interval_ms, 1) * 1e-3, power if power.exists() else None,
                                    None if power.exists() else volts, None if power.exists() else amps))
    return rails


class _Nvml:
    def __init__(self, index: int) -> None:
        import pynvml  # optional: only where NVIDIA's bindings are installed

        self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)

    def read_uj(self) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)) * 1000
        except Exception as exc:
            raise MeasurementError(f"NVML total energy cannot be read: {exc} (needs Volta or newer)") from exc


def _nvml_sources(max_power_w: float) -> list[CounterSource]:
    if importlib.util.find_spec("pynvml") is None:
        return []
    import pynvml

    try:
        pynvml.nvmlInit()  # kept initialised for the agent's lifetime: the counters are read on every RUN
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # noqa: BLE001 - no driver, no GPU: NVML is simply not present here
        return []
    return [CounterSource(CounterSpec("nvml", f"nvml:gpu{i}", 0, 1000.0, NVML_UPDATE_S), _Nvml(i), f"NVML GPU {i}",
                          max_power_w) for i in range(count)]


def find_sources(root: Path | str = "/sys", *, max_power_w: float = DEFAULT_MAX_POWER_W,
                 poll_s: float = DEFAULT_POLL_S, nvml: bool = True) -> list[Source]:
    """Every on-board energy source readable here, counters first (RAPL package zones lead), then
    integrated INA rails, then NVML; [] where there is none."""
    base = Path(root)
    found: list[Source] = [CounterSource(c, c, _label(c), max_power_w, poll_s) for c in find_counters(base)]
    found += _rails(base)
    if nvml:
        found += _nvml_sources(max_power_w)
    return found


MAX_SETTLE_S = 0.2  # longest idle tail a RUN's window is given (NVML's assumed 100 ms update fits)


def _update_s(source: Source) -> float:
    spec = getattr(source, "spec", None)
    return float(spec.update_s if spec is not None else getattr(source, "update_s", 0.0))


class OnboardEnergy:
    """The agent's bracket around each RUN: `begin()`, `poll()` after every inference, `end(count)`;
    `last()` is what ENERGY_READ answers."""

    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self._last = EnergyCounters(0, ())

    @property
    def capabilities(self) -> tuple[str, ...]:
        return (CAPABILITY,) if self.sources else ()

    def begin(self, clock_ns: Clock) -> None:
        for source in self.sources:
            source.begin(clock_ns)

    def poll(self, clock_ns: Clock) -> None:
        for source in self.sources:
            source.poll(clock_ns)

    def end(self, clock_ns: Clock, count: int) -> None:
        # A counter read lags the true energy by up to one update period at the power of that moment. The
        # window opens at idle (just before the first inference); closing it one update period after the
        # last inference puts its end at idle power too, so each end's lag is bounded by update period ×
        # idle power ≤ update period × the window's mean power, which is what the host's uncertainty
        # (measure.counter_energy.window_uncertainty_j) assumes. Without it a window ending mid-burst, on a
        # loaded board with long gaps, could err by more than its stated bound.
        settle_s = min(max((_update_s(source) for source in self.sources), default=0.0), MAX_SETTLE_S)
        if settle_s > 0:
            time.sleep(settle_s)
        self._last = EnergyCounters(count, tuple(source.end(clock_ns) for source in self.sources))

    def last(self) -> EnergyCounters:
        return self._last
