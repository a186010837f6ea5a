"""Energy per inference on a device under test, measured through a power analyzer.

One measurement window = one armed acquisition around one `RUN n`: the analyzer triggers on the device's
trigger line (raised at the start of the first inference), digitizes current and voltage, and the
per-inference windows inside the trace come from the device's own stage timings. Repeating windows and
taking the median of window medians is what makes the number stable (MLPerf Tiny: 5 windows of at least
10 s on hardware); the simulated bench keeps the windows short so the suites run fast.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pytest_edgehil.bench import DeviceUnderTest
from pytest_edgehil.errors import CannotResolve, StreamGap
from pytest_edgehil.instruments.accuracy import CaptureAccuracy
from pytest_edgehil.instruments.base import PowerAnalyzer, Trace
from pytest_edgehil.link.eembc import ENERGY_MODE
from pytest_edgehil.link.messages import TIMINGS_PER_RUN, Result, StageTiming
from pytest_edgehil.measure.clock_map import CLOCK_TOLERANCE
from pytest_edgehil.measure.device_windows import device_tick_s, end_to_end_windows_s, inference_windows_s
from pytest_edgehil.measure.digital_windows import (
    WINDOW_SOURCE_DIGITAL,
    WINDOW_SOURCE_RUN_START,
    WINDOW_SOURCE_TRIGGER,
    digital_edges_s,
    energy_from_digital,
)
from pytest_edgehil.measure.energy import EnergySamples, energy_from_trace, run_energy_from_trace
from pytest_edgehil.measure.instrument_accuracy import instrument_refusal, with_instrument
from pytest_edgehil.measure.metrics import SampleSummary, summarize
from pytest_edgehil.measure.run_start import record_noise_w, run_start_s, settled_index
from pytest_edgehil.measure.run_window import RUN_WINDOW_SOURCE_RUN_START, RUN_WINDOW_SOURCE_TRIGGER
from pytest_edgehil.measure.zero_stages import check_run_seen, nothing_timed, zero_stage_refusal


@dataclass(frozen=True)
class EnergyPlan:
    """How much to measure. `simulated()` is fast; `hardware()` follows MLPerf Tiny's rule."""

    windows: int = 3
    runs_per_window: int = 10
    min_window_s: float = 0.0  # hardware: at least this long, by adding runs
    # The finest interval wanted (500 kS/s); each analyzer rounds it up to the finest it has (N678xA:
    # 5.12 µs, NGM202: 2 µs, 2281S: 1 ms); raised when a long window would exceed its memory.
    sample_interval_s: float = 2e-6
    timeout_s: float = 30.0

    @classmethod
    def simulated(cls) -> EnergyPlan:
        return cls()

    @classmethod
    def hardware(cls) -> EnergyPlan:
        return cls(windows=5, runs_per_window=1, min_window_s=10.0, timeout_s=120.0)


@dataclass
class EnergyMeasurement:
    """Every window's per-inference samples, the trace of the last window, and what was used."""

    windows: list[EnergySamples] = field(default_factory=list)
    timings: list[tuple[StageTiming, ...]] = field(default_factory=list)
    last_trace: Trace | None = None
    sample_interval_s: float = 0.0
    idn: str = ""
    instrument: str = ""  # the instrument's model name ("Nordic PPK2", "Keysight N6705C + N6781A")
    window_source: str = ""  # digital_windows.WINDOW_SOURCE_*: where the windows were placed from
    # The data sheet's accuracy for the captures (the range they ran on): in every window's `*_u_j`.
    accuracy: CaptureAccuracy | None = None

    def _pooled(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(w, name) for w in self.windows])

    refusal: CannotResolve | None = None  # why per-inference windows were not measured (run windows instead)

    @property
    def inference_j(self) -> np.ndarray:
        self._require_inference()
        return self._pooled("inference_j")

    @property
    def inference_refused(self) -> CannotResolve | None:
        """Why per-inference figures are not given (the analyzer's limits, or a window's: a point-sampled
        trace too coarse for the stage, an instrument too coarse for its budget), None where they are."""
        if self.refusal is not None:
            return self.refusal
        # A trace that cannot price the inference stage to 1 %, named with the analyzer that took it.
        return next((_naming(w.inference_refusal, self.instrument) for w in self.windows
                     if w.inference_refusal is not None), None)

    def _require_inference(self) -> None:
        refused = self.inference_refused
        if refused is not None:
            raise refused

    @property
    def end_to_end_j(self) -> np.ndarray:
        return self._pooled("end_to_end_j")

    @property
    def inference_power_w(self) -> np.ndarray:
        self._require_inference()
        return self._pooled("inference_power_w")

    @property
    def end_to_end_power_w(self) -> np.ndarray:
        return self._pooled("end_to_end_power_w")

    @property
    def trace_inference_s(self) -> np.ndarray:
        self._require_inference()
        return self._pooled("trace_inference_s")

    def window_medians(self, name: str) -> np.ndarray:
        """The median of each window: what a between-window (between-session) comparison should use."""
        return np.array([float(np.median(getattr(w, name))) for w in self.windows])

    def uncertainty_rel(self, name: str) -> float:
        """The stated standard uncertainty of figure `name` ("inference_j", "end_to_end_j"), relative: the
        median window's `*_u_j` over its energy (the instrument's part does not average down over windows,
        so no single window's is reduced by their number). NaN where nothing was measured."""
        energy, u = self._pooled(name), self._pooled(name.replace("_j", "_u_j"))
        if energy.size == 0 or u.shape != energy.shape:
            return float("nan")
        return float(np.median(u / np.abs(energy)))

    def instrument_rel(self, name: str) -> float:
        """The instrument's data-sheet limit on figure `name`, relative to it (median window; NaN if none)."""
        energy, limit = self._pooled(name), self._pooled(name.replace("_j", "_instrument_j"))
        if energy.size == 0 or limit.shape != energy.shape:
            return float("nan")
        return float(np.median(limit / np.abs(energy)))

    def summary(self, name: str) -> SampleSummary:
        if name.startswith(("inference", "trace_inference")):
            self._require_inference()
        return summarize(self._pooled(name))


def _naming(refusal: CannotResolve, instrument: str) -> CannotResolve:
    """A window's refusal (worked out from the trace alone) naming the analyzer that took the trace."""
    if not instrument or instrument in refusal.window:
        return refusal
    return CannotResolve(f"{refusal.window} on the {instrument}", refusal.interval_s, refusal.sample_interval_s,
                         refusal.reason, refusal.fix)


# Per-inference windows want this many samples across the shortest stage they must resolve.
SAMPLES_PER_STAGE = 16


def plan_acquisition(timing: StageTiming, analyzer: PowerAnalyzer, plan: EnergyPlan) -> tuple[int, float, int, int]:
    """(runs, sample interval, points, pre-trigger points) for a window that holds the RUN's inferences.

    The interval is picked from the shortest stage to resolve (SAMPLES_PER_STAGE samples across it), never
    coarser than the plan's, never finer than the analyzer can. The pre-trigger part covers the first
    inference's sensor readout, which happens before its trigger (none on an analyzer that keeps no
    pre-trigger samples: its windows start after the trigger). A window too long for the digitizer's
    memory gets a longer sample interval, never fewer inferences.
    """
    period_s = timing.end_to_end_us * 1e-6
    runs = plan.runs_per_window
    if plan.min_window_s > 0:
        # MLPerf Tiny's 10 s makes a window's two edges negligible; for a frame so short that 10 s would take
        # more inferences than one RESULT carries back, TIMINGS_PER_RUN (65,536) of them do the same (the edges
        # count once per window), and a longer RUN could never be answered.
        runs = max(runs, min(math.ceil(plan.min_window_s / period_s), TIMINGS_PER_RUN))
    shortest_s = min(timing.inference_us, timing.retrieval_us, timing.readout_us) * 1e-6
    wanted_s = min(plan.sample_interval_s, shortest_s / SAMPLES_PER_STAGE)
    pre_s = (timing.readout_us * 1e-6 * 1.25 + 20 * wanted_s) if analyzer.keeps_pretrigger else 0.0
    # A stream that starts when armed (FastLog) must also hold the host's latency before the RUN.
    total_s = analyzer.start_latency_s + pre_s + runs * period_s * 1.10 + 20 * wanted_s
    dt_s = analyzer.supported_sample_interval_s(max(wanted_s, total_s / analyzer.max_points))
    if not analyzer.keeps_pretrigger:
        runs = max(runs, 3)  # a run window needs three inferences (run_energy_from_trace)
        total_s = runs * period_s * 1.10 + 4 * dt_s
    points = math.ceil(total_s / dt_s)
    return runs, dt_s, min(points, analyzer.max_points), math.ceil(pre_s / dt_s)


def inference_refusal(timing: StageTiming, dt_s: float, analyzer: PowerAnalyzer) -> CannotResolve | None:
    """Why per-inference windows cannot be measured at `dt_s` on `analyzer`, or None if they can: a stage the
    device's timer reads as 0 µs (its tick is coarser: `zero_stages`), a stage shorter than two samples, or no
    pre-trigger samples for the first inference's readout."""
    zero = zero_stage_refusal([timing], dt_s)
    if zero is not None:  # the device's timer, not the analyzer: no sample interval places a 0 µs window
        return zero
    shortest_us = min(timing.inference_us, timing.retrieval_us)
    window = (0.0, timing.inference_us * 1e-6)
    stage = "inference" if timing.inference_us <= timing.retrieval_us else "retrieval"
    if shortest_us * 1e-6 < 2 * dt_s:
        return CannotResolve("inference window", window, dt_s,
                             f"{analyzer.model} samples no faster than every {dt_s * 1e6:.4g} µs, and the "
                             f"{stage} stage ({shortest_us:.0f} µs) is shorter than two samples",
                             "use a digitizing analyzer (N6705C/N678xA, NGM202) for per-inference and "
                             "stage energy; this one gives end-to-end energy over back-to-back inferences")
    if not analyzer.keeps_pretrigger:
        return CannotResolve("inference window", window, dt_s,
                             f"{analyzer.model} keeps no pre-trigger samples, so the first readout is never "
                             "captured", "use an analyzer with pre-trigger samples for per-inference windows")
    return None


def _timer_refusal(stamps: Sequence[StageTiming], dt_s: float, tick_s: float,
                   analyzer: PowerAnalyzer) -> CannotResolve | None:
    """`zero_stages.zero_stage_refusal` of every RUN's `stamps`; where two samples span more than the tick (a
    stage shorter than the tick is then shorter than two samples too), naming the analyzer and its fix beside."""
    zero = zero_stage_refusal(stamps, dt_s, tick_s=tick_s)
    if zero is None or 2 * dt_s < tick_s:
        return zero
    return CannotResolve(zero.window, zero.interval_s, dt_s,
                         f"{zero.reason}; nor does {analyzer.model} resolve it, sampling no faster than every "
                         f"{dt_s * 1e6:.4g} µs (two samples span more than the tick)",
                         f"use a digitizing analyzer (N6705C/N678xA, NGM202), and {zero.fix}")


def measure_energy(dut: DeviceUnderTest, analyzer: PowerAnalyzer, *, supply_v: float, current_range_a: float,
                   plan: EnergyPlan | None = None, max_instrument_rel: float | None = None) -> EnergyMeasurement:
    """Measure the active model's energy per inference on `dut` with `analyzer` (model and input already set).

    Per-inference windows where the analyzer resolves them; otherwise (too slow, no pre-trigger) one run
    window per acquisition, end-to-end energy only, and `inference_j` raises the CannotResolve saying why.
    Every window's uncertainty holds the analyzer's data-sheet accuracy on the range it ran on
    (`measure.instrument_accuracy`; ConfigError for a driver that declares none). `max_instrument_rel`: the
    tolerance the figures' budget allows; inference windows whose instrument limit exceeds it are refused
    like a point-sampled trace's (`inference_j` raises the CannotResolve), end-to-end ones raise it. None:
    stated, never refused.
    """
    plan = plan or EnergyPlan.simulated()
    if ENERGY_MODE in dut.hello.capabilities:  # MLPerf Tiny energy-mode firmware: its timestamp GPIO's windows
        from pytest_edgehil.measure.timestamp_energy import measure_timestamp_energy

        return measure_timestamp_energy(dut, analyzer, supply_v=supply_v, current_range_a=current_range_a, plan=plan,
                                        max_instrument_rel=max_instrument_rel)
    # Learn the inference period to size the acquisition; no latency figure comes from it, so a coarse
    # timer's 0 µs inference does not refuse it (`inference_refusal` judges what its stamps can resolve).
    probe = dut.client.run(1, timed=False).timings[0]
    untimed = nothing_timed(probe, device=dut.name, port=dut.port, command="run(1)")
    if untimed is not None:
        raise untimed
    runs, dt_s, points, pre = plan_acquisition(probe, analyzer, plan)
    refusal = inference_refusal(probe, dt_s, analyzer)
    analyzer.configure(voltage_v=supply_v, current_range_a=current_range_a, sample_interval_s=dt_s,
                       points=points, pretrigger_points=pre)
    accuracy = analyzer.capture_accuracy()
    measurement = EnergyMeasurement(sample_interval_s=dt_s, idn=analyzer.idn, refusal=refusal,
                                    instrument=analyzer.model, accuracy=accuracy)
    # The analyzer's own refusal stands (a probe stage read as 0 µs says nothing of what the analyzer resolves).
    analyzer_refusal = refusal if zero_stage_refusal([probe], dt_s) is None else None
    stamps = [probe]  # every RUN's: the timer's tick as they all show it (one RUN's can be a multiple of it)
    for _ in range(plan.windows):
        result, trace = _capture_window(dut, analyzer, runs, plan)
        stamps += result.timings
        tick_s = device_tick_s(stamps)
        # Its stamps, not only the probe's, may read a stage as 0 µs: untimed, unless the trace shows nothing ran.
        refusal = analyzer_refusal or _timer_refusal(stamps, dt_s, tick_s, analyzer)
        measurement.refusal = refusal
        seen = functools.partial(check_run_seen, timings=result.timings, device=dut.name, port=dut.port,
                                 command=f"run({runs})")
        if trace.digital is not None:  # the trigger line is in the stream: windows from its edges
            rises, _ = digital_edges_s(trace.time_s, trace.digital)
            seen(trace.time_s, trace.power_w, trigger_s=float(rises[0]) if rises.size else float(trace.time_s[0]))
            measurement.windows.append(energy_from_digital(trace.time_s, trace.power_w, trace.digital,
                                                           result.timings, per_inference=refusal is None))
            measurement.window_source = WINDOW_SOURCE_DIGITAL
        else:
            time_s, power_w = trace.time_s, trace.power_w
            if trace.trigger_located:
                origin_u_s = 0.0
            else:  # a trigger-less stream (FastLog): the RUN placed from its first step
                time_s, power_w = _placed_in_stream(time_s, power_w, result.timings[0], pre, points, analyzer)
                # t = 0 is that step plus the device-timed readout: off by the device clock's error on it.
                origin_u_s = STREAM_CLOCK_TOLERANCE * result.timings[0].readout_us * 1e-6 + 2 * dt_s
            seen(time_s, power_w, trigger_s=0.0)
            if refusal is not None:
                measurement.windows.append(run_energy_from_trace(time_s, power_w, result.timings, tick_s=tick_s))
            else:
                measurement.windows.append(energy_from_trace(time_s, power_w, result.timings, origin_u_s=origin_u_s))
            if refusal is not None:  # a run window: no clock fitted (`run_window`)
                measurement.window_source = (RUN_WINDOW_SOURCE_TRIGGER if trace.trigger_located
                                             else RUN_WINDOW_SOURCE_RUN_START)
            else:
                measurement.window_source = WINDOW_SOURCE_TRIGGER if trace.trigger_located else WINDOW_SOURCE_RUN_START
        measurement.windows[-1] = stated(measurement.windows[-1], trace, accuracy, result.timings,
                                         max_rel=max_instrument_rel)
        measurement.timings.append(tuple(result.timings))
        measurement.last_trace = trace
    return measurement


def stated(samples: EnergySamples, trace: Trace, accuracy: CaptureAccuracy, timings: Sequence[StageTiming], *,
           max_rel: float | None) -> EnergySamples:
    """One window's samples with the instrument's accuracy stated (`instrument_accuracy.with_instrument`) and,
    where `max_rel` is given, its windows refused past it: inference windows as `inference_refusal`, an
    end-to-end window by raising the CannotResolve."""
    voltage_v = float(np.mean(trace.voltage_v, dtype=np.float64))
    samples = with_instrument(samples, accuracy, voltage_v)
    if max_rel is None:
        return samples
    peak_a = float(np.max(np.abs(trace.current_a))) if trace.current_a.size else 0.0
    dt = trace.sample_interval_s
    e2e = samples.end_to_end_j
    e2e_w = end_to_end_windows_s(timings) if e2e.size == len(timings) else _spans(e2e, samples.end_to_end_power_w)
    refusal = instrument_refusal([f"end-to-end window {i}" for i in range(e2e.size)], e2e_w, e2e,
                                 samples.end_to_end_instrument_j, accuracy, max_rel=max_rel, voltage_v=voltage_v,
                                 peak_current_a=peak_a, sample_interval_s=dt)
    if refusal is not None:
        raise refusal
    inf = samples.inference_j
    if inf.size == 0:
        return samples
    inf_w = inference_windows_s(timings) if inf.size == len(timings) else _spans(inf, samples.inference_power_w)
    refusal = instrument_refusal([f"inference window {i}" for i in range(inf.size)], inf_w, inf,
                                 samples.inference_instrument_j, accuracy, max_rel=max_rel, voltage_v=voltage_v,
                                 peak_current_a=peak_a, sample_interval_s=dt)
    if refusal is None:
        return samples
    empty = np.zeros(0)
    return replace(samples, inference_j=empty, inference_power_w=empty, trace_inference_s=empty, inference_u_j=empty,
                   inference_instrument_j=empty, inference_refusal=refusal)


def _spans(energy_j: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """[0, length] per window where no device windows are at hand (a run window, a timestamp window)."""
    length = np.divide(energy_j, power_w, out=np.zeros_like(energy_j), where=power_w != 0)
    return np.stack([np.zeros_like(length), length], axis=1)


# How far a device's clock may be off (the tolerance trace_windows allows, an RC oscillator's): it bounds where
# a record placed from its first power step and the device-timed readout puts the trigger.
STREAM_CLOCK_TOLERANCE = CLOCK_TOLERANCE
# A streamed record that lost a chunk is captured again this many times before its StreamGap is raised.
STREAM_GAP_RETRIES = 2


def _capture_window(dut: DeviceUnderTest, analyzer: PowerAnalyzer, runs: int,
                    plan: EnergyPlan) -> tuple[Result, Trace]:
    """Arm, `RUN runs`, wait, fetch: one window's (run result, trace).

    The RUN is untimed for the link (`DeviceClient.run(timed=False)`): no latency figure comes from it, and a
    timer coarser than the inference reads every one 0 µs, which the link's all-zero rule would refuse though
    the trace shows the RUN; the meter judges that from the trace instead (`zero_stages.check_run_seen`).

    A streamed record refused for a lost chunk (StreamGap, the NGM202's FastLog: a chunk not read within
    250 ms is overwritten) is discarded whole and the window captured again, up to STREAM_GAP_RETRIES
    times: the gap is the link's, not the device's, and a record with a gap is never integrated. Any
    other error, and the last StreamGap, is raised."""
    for attempt in range(STREAM_GAP_RETRIES + 1):
        analyzer.arm("EXT")
        result = dut.client.run(runs, timed=False)
        try:
            analyzer.wait_complete(plan.timeout_s)
            return result, analyzer.fetch_trace()
        except StreamGap:
            if attempt == STREAM_GAP_RETRIES:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _placed_in_stream(time_s: np.ndarray, power_w: np.ndarray, first: StageTiming, pre: int, points: int,
                      analyzer: PowerAnalyzer) -> tuple[np.ndarray, np.ndarray]:
    """A trigger-less stream (FastLog) as the triggered capture the plan describes: t = 0 at the RUN's
    trigger (its first readout's end, found from the trace's first power step), cut to the `pre` samples
    before it and the run after it, so the window estimators see what a triggered capture holds (the
    stream's extra start-latency margin, idle, would otherwise weigh on the trace's noise estimate).
    MeasurementError (run_start) when the stream does not show where the RUN starts; SupplyPathTooSlow
    when a slow supply path hides it (naming what this RUN's shortest stage allows)."""
    dt_s = float(time_s[1] - time_s[0])
    stages_us = {"readout": first.readout_us, "inference": first.inference_us, "retrieval": first.retrieval_us}
    shortest = min(stages_us, key=stages_us.__getitem__)
    noise_w = record_noise_w(power_w)
    trigger_s = run_start_s(time_s, power_w, noise_w=noise_w, shortest_stage=(shortest, stages_us[shortest] * 1e-6)) \
        + first.readout_us * 1e-6
    # Never before the record has settled at idle: its opening is the previous command's activity draining
    # through the supply path, and the RUN's first edge, searched as far as the readout's clock tolerance,
    # read its level there (behind a 1 µs RC the readout's start was placed 90 µs off and the RUN refused).
    k0 = max(settled_index(power_w, noise_w=noise_w), int(np.rint((trigger_s - time_s[0]) / dt_s)) - pre)
    keep = points - int(np.rint(analyzer.start_latency_s / dt_s))
    return time_s[k0:k0 + keep] - trigger_s, power_w[k0:k0 + keep]
