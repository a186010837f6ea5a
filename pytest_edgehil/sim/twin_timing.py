"""A twin's timing model: stage times and power from its profile, on a virtual clock.

Stage timings and power are derived from the twin's `DeviceProfile` and the MACs counted in the model at
the shape actually fed; whether it is timed as int8 or float follows the dtype its convolutions compute
in, not its input dtype (`float_compute`). It runs on a virtual clock: a RUN of 100 inferences of 19 ms
answers at once, but every span it reports (and records on the bench's `ActivityTimeline` for the
analyzer twin) is consistent in virtual time. Bench effects (`sim.bench_physics`: the device's clock
error and timer resolution, power varying within a stage, a session's power offset) apply here.
`sim.device_twin.DeviceTwin` builds the firmware's protocol handlers on it.
"""

from __future__ import annotations

import zlib

import numpy as np

from pytest_edgehil.link import messages as p
from pytest_edgehil.model.info import ModelInfo
from pytest_edgehil.sim.bench_physics import (
    BenchPhysics,
    DeviceClock,
    layer_segments,
    load_ripple,
    session_factor,
)
from pytest_edgehil.sim.profile import DeviceProfile, FrameReadout
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan


class TimedTwin:
    """The virtual clock and stage timing of one simulated board (`name` seeds its jitter and power offset)."""

    def __init__(self, profile: DeviceProfile, name: str, *, seed: int = 0,
                 timeline: ActivityTimeline | None = None, physics: BenchPhysics | None = None) -> None:
        self.profile = profile
        # Bench effects (sim.bench_physics): none unless given; the bench passes the lab's (defaults on).
        self.physics = physics or BenchPhysics.ideal()
        # Seed from the device name too, so two boards of one kind do not jitter in lockstep.
        self._rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        self.device_clock = DeviceClock(self.physics)
        self.power_factor = session_factor(self.physics, np.random.default_rng([seed, 7, zlib.crc32(name.encode())]))
        idle_w = profile.power.idle_w * self.power_factor
        self.timeline = timeline or ActivityTimeline(idle_w, profile.supply_v, ripple=load_ripple(self.physics, idle_w))
        # True (analyzer-clock) instants of the last RUN's edges (an EVAL_BATCH's: its images'): (readout
        # start, trigger, inference end, retrieval end) per inference. What the meter is checked against; the
        # device reports stamps.
        self.last_run_edges_s: list[tuple[float, float, float, float]] = []
        self.clock_s = 0.0
        self._plan: tuple[ModelInfo, tuple[float, float, float], list[tuple[float, float]], float] | None = None

    def nominal_stage_s(self, info: ModelInfo) -> tuple[float, float, float]:
        """(readout, inference, retrieval) seconds without jitter: what calibration is checked against.

        Timed as float when the model's convolutions/matmuls compute in float (`ModelInfo.compute_dtype`),
        so an int8 graph with float32 I/O (QUANTIZE in front, DEQUANTIZE behind) runs at the int8 rate.
        ModelError if the model has dynamic dimensions and `info` was not analysed at a concrete shape.
        """
        float_model = float_compute(info)
        output_bytes = sum(s.size_bytes for s in info.outputs)
        return (self._readout(info).readout_s,
                self.profile.inference_s(info.macs, info.elementwise_ops, float_model=float_model),
                self.profile.retrieval_s(output_bytes))

    def _readout(self, info: ModelInfo) -> FrameReadout:
        """The sensor readout (time, power) of the frame the model consumes (`DeviceProfile.readout`)."""
        return self.profile.readout(tuple(info.inputs[0].shape) if info.inputs else None)

    def _jittered(self, nominal_s: tuple[float, float, float]) -> tuple[float, float, float]:
        """The three stage times with jitter: one draw of three normals (the same stream as three
        single draws, so a seed gives the same timings as before this was batched)."""
        rel = self.profile.jitter_rel
        z0, z1, z2 = self._rng.standard_normal(3).tolist()
        return (nominal_s[0] * min(max(1.0 + rel * z0, 0.5), 1.5), nominal_s[1] * min(max(1.0 + rel * z1, 0.5), 1.5),
                nominal_s[2] * min(max(1.0 + rel * z2, 0.5), 1.5))

    def _stage_plan(self, info: ModelInfo) -> tuple[tuple[float, float, float], list[tuple[float, float]], float]:
        """Nominal stage times, inference power segments and readout power of `info`, computed once per
        analysed model (a new shape brings a new ModelInfo): recounting them per RUN was a third of a
        RUN 1's twin cost."""
        if self._plan is None or self._plan[0] is not info:
            nominal = self.nominal_stage_s(info)
            segments = layer_segments(info.macs_by_op, self.profile.inference_overhead_s, nominal[1],
                                      self.physics.layer_power_rel)
            self._plan = (info, nominal, segments, self._readout(info).readout_w)
        return self._plan[1], self._plan[2], self._plan[3]

    def _simulate_runs(self, info: ModelInfo, count: int, *, each_a_run: bool = False) -> list[p.StageTiming]:
        """`count` inferences of `info` on the virtual clock: their spans recorded on the timeline (in one
        step), the clock advanced, the stage timings the firmware reports returned (`start_us` from the first
        inference's trigger). `each_a_run`: every inference is a RUN 1 of its own (EVAL, EVAL_BATCH: its spans
        carry run_index 0) rather than inference k of one RUN count (run_index k).

        Computed for all inferences at once with the arithmetic of one inference at a time (tests/test_twin.py
        holds the step-by-step oracle): the same jitter draws in the same order (`_jittered`), each edge the
        previous one plus a stage time, summed in the same order, the stamps as `DeviceClock.stamp_s` takes
        them; so a seed gives the very spans and timings it gave before. Why: a Python step per inference was
        the twin's largest cost beside LiteRT in an accuracy evaluation."""
        nominal, segments, readout_w = self._stage_plan(info)
        power, factor, stamp = self.profile.power, self.power_factor, self.device_clock.stamp_s
        readout_w, retrieval_w = readout_w * factor, power.retrieval_w * factor
        inference = [(fraction, power.inference_w * factor * level) for fraction, level in segments]
        rel = self.profile.jitter_rel
        n_r, n_i, n_q = nominal
        z = self._rng.standard_normal(3 * count).tolist()  # the stream of `count` draws of three (`_jittered`)
        spans: list[StageSpan] = []
        edges: list[tuple[float, float, float, float]] = []
        timings: list[p.StageTiming] = []
        clock_s = self.clock_s
        first_stamp_s = 0.0
        for k in range(count):
            z0, z1, z2 = z[3 * k:3 * k + 3]
            r, i, q = (n_r * min(max(1.0 + rel * z0, 0.5), 1.5), n_i * min(max(1.0 + rel * z1, 0.5), 1.5),
                       n_q * min(max(1.0 + rel * z2, 0.5), 1.5))
            run_index = 0 if each_a_run else k
            readout_start_s = clock_s
            trigger_s = readout_start_s + r
            spans.append(StageSpan("readout", readout_start_s, trigger_s, readout_w, False, run_index))
            start_s = trigger_s
            for fraction, power_w in inference:  # power varies within the stage
                end_s = start_s + i * fraction
                spans.append(StageSpan("inference", start_s, end_s, power_w, True, run_index))
                start_s = end_s
            inference_end_s = trigger_s + i  # the segments' round-off must not move the stage's end
            clock_s = inference_end_s + q
            spans.append(StageSpan("retrieval", inference_end_s, clock_s, retrieval_w, False, run_index))
            edges.append((readout_start_s, trigger_s, inference_end_s, clock_s))
            # The firmware stamps each edge on its own timer (rate error, resolution) and reports differences.
            s0, s1, s2, s3 = stamp(readout_start_s), stamp(trigger_s), stamp(inference_end_s), stamp(clock_s)
            if k == 0:
                first_stamp_s = s1
            timings.append(p.StageTiming((s1 - first_stamp_s) * 1e6, (s1 - s0) * 1e6, (s2 - s1) * 1e6,
                                         (s3 - s2) * 1e6))
        # One step for all of them: a capture waiting on these spans sees none or all (no busy flag needed).
        self.timeline.extend(spans)
        self.clock_s = clock_s
        self.last_run_edges_s = edges
        return timings

    def _simulate_idle_runs(self, count: int, pulse_s: float) -> list[p.StageTiming]:
        """`count` trigger pulses of `pulse_s` with the board idle (no readout, inference or retrieval): firmware
        that answers a RUN without running anything, stamping its stages around calls that return at once.
        `last_run_edges_s` holds the pulses (readout start = trigger, inference end = fall, end = next rise)."""
        idle_w, stamp = self.profile.power.idle_w * self.power_factor, self.device_clock.stamp_s
        timings: list[p.StageTiming] = []
        self.last_run_edges_s = []
        first_stamp_s: float | None = None
        for run_index in range(count):
            rise_s = self.clock_s
            self.timeline.extend([StageSpan("idle", rise_s, rise_s + pulse_s, idle_w, True, run_index),
                                  StageSpan("idle", rise_s + pulse_s, rise_s + 2 * pulse_s, idle_w, False, run_index)])
            self.clock_s = rise_s + 2 * pulse_s
            self.last_run_edges_s.append((rise_s, rise_s, rise_s + pulse_s, self.clock_s))
            s1, s2, s3 = stamp(rise_s), stamp(rise_s + pulse_s), stamp(self.clock_s)
            first_stamp_s = s1 if first_stamp_s is None else first_stamp_s
            timings.append(p.StageTiming(start_us=(s1 - first_stamp_s) * 1e6, readout_us=0.0,
                                         inference_us=(s2 - s1) * 1e6, retrieval_us=(s3 - s2) * 1e6))
        return timings

    def _advance(self, stage: str, duration_s: float, power_w: float, *, trigger_high: bool = False,
                 run_index: int = -1) -> None:
        span = StageSpan(stage, self.clock_s, self.clock_s + duration_s, power_w, trigger_high, run_index)
        self.timeline.append(span)
        self.clock_s = span.end_s

    def _advance_idle(self, duration_s: float) -> None:
        self._advance("idle", duration_s, self.profile.power.idle_w * self.power_factor)


def float_compute(info: ModelInfo) -> bool:
    """Whether a twin times `info` at the float rate (`ModelInfo.float_arithmetic`)."""
    return info.float_arithmetic
