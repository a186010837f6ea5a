"""Production energy per inference (step-aware, `measure.energy.energy_from_trace`) against a timeline's
true energy: sampled traces of simulated runs, point-sampled and integrating, short runs refused by name.
"""

from __future__ import annotations

import itertools
from itertools import pairwise

import numpy as np
import pytest

from pytest_edgehil.errors import CannotResolve, MeasurementError
from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.energy import (
    EnergySamples,
    energy_from_trace,
)
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

from .oracles import integration_error_bound_j
from .test_energy_math import DT_S, PULSE_S  # the sampling and the pulse of the closed-form tests

# ------------------------------------------------------------------- against a timeline's truth

def sample_timeline(timeline: ActivityTimeline, time_s: np.ndarray, t_offset_s: float) -> np.ndarray:
    """Point samples of the timeline's power at device time time_s + t_offset_s (idle outside spans)."""
    spans = timeline.snapshot()
    starts = np.array([s.start_s for s in spans])
    ends = np.array([s.end_s for s in spans])
    powers = np.array([s.power_w for s in spans])
    device_s = time_s + t_offset_s
    k = np.clip(np.searchsorted(starts, device_s, side="right") - 1, 0, len(spans) - 1)
    inside = (device_s >= starts[k]) & (device_s < ends[k])
    return np.where(inside, powers[k], timeline.idle_power_w)


def simulated_run(powers_w: tuple[float, float, float, float], runs: int, seed: int):
    """A timeline of `runs` back-to-back readout/inference/retrieval stages with jittered durations."""
    idle_w, readout_w, inference_w, retrieval_w = powers_w
    rng = np.random.default_rng(seed)
    timeline = ActivityTimeline(idle_power_w=idle_w, supply_v=3.3)
    clock_s = 1.0
    timeline.append(StageSpan("idle", 0.0, clock_s, idle_w))
    timings, first_trigger_s = [], None
    for i in range(runs):
        r_s, i_s, q_s = (d * (1 + 0.02 * rng.standard_normal()) for d in (1.2e-3, PULSE_S, 0.24e-3))
        for stage, d_s, w in (("readout", r_s, readout_w), ("inference", i_s, inference_w),
                              ("retrieval", q_s, retrieval_w)):
            if stage == "inference":
                first_trigger_s = clock_s if first_trigger_s is None else first_trigger_s
                trigger_s = clock_s
            timeline.append(StageSpan(stage, clock_s, clock_s + d_s, w, stage == "inference", i))
            clock_s += d_s
        timings.append(StageTiming((trigger_s - first_trigger_s) * 1e6, r_s * 1e6, i_s * 1e6, q_s * 1e6))
    timeline.append(StageSpan("idle", clock_s, clock_s + 1.0, idle_w))
    return timeline, timings, first_trigger_s, clock_s


@pytest.mark.parametrize("powers_w", [(0.012, 0.265, 0.0685, 0.265),  # IMX500 profile
                                      (0.30, 0.95, 1.0, 0.95),        # Coral profile: a 5 % step
                                      (1.5, 2.5, 6.0, 3.0)])          # Jetson Nano profile
def test_energy_from_trace_matches_the_timelines_true_energy(powers_w):
    timeline, timings, first_trigger_s, end_s = simulated_run(powers_w, runs=6, seed=3)
    # The analyzer's sample clock is not aligned to the trigger: offset by a fraction of a sample.
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S) + 0.37 * DT_S
    power_w = sample_timeline(timeline, time_s, first_trigger_s)
    # Point samples: the pricing itself against its closed-form bound, with the 1 % refusal off (its own
    # test follows).
    samples = energy_from_trace(time_s, power_w, timings, point_error_rel=None)
    assert isinstance(samples, EnergySamples) and samples.count == 6
    assert samples.sample_interval_s == pytest.approx(DT_S)
    _idle, readout_w, inference_w, retrieval_w = powers_w
    inference_bound_j = integration_error_bound_j([inference_w - readout_w, retrieval_w - inference_w], DT_S)
    spans = timeline.snapshot()
    for i, timing in enumerate(timings):
        a_s = first_trigger_s + timing.start_us * 1e-6
        b_s = a_s + timing.inference_us * 1e-6
        e0_s, e1_s = a_s - timing.readout_us * 1e-6, b_s + timing.retrieval_us * 1e-6
        # Every stage boundary inside the end-to-end window, including the neighbours' edges, is a step.
        steps_w = [s.power_w - prev.power_w for prev, s in pairwise(spans)
                   if e0_s - DT_S <= s.start_s <= e1_s + DT_S]
        assert abs(samples.inference_j[i] - timeline.energy_between(a_s, b_s)) <= inference_bound_j * 1.000001
        assert (abs(samples.end_to_end_j[i] - timeline.energy_between(e0_s, e1_s))
                <= integration_error_bound_j(steps_w, DT_S) * 1.000001)
        assert samples.inference_power_w[i] == pytest.approx(samples.inference_j[i] / (b_s - a_s))
        assert abs(samples.trace_inference_s[i] - timing.inference_us * 1e-6) <= DT_S
    assert samples.trace_latency_note == ""


@pytest.mark.parametrize("powers_w", [(0.012, 0.265, 0.0685, 0.265),  # IMX500: steps 2.9x the inference level
                                      (0.30, 0.95, 1.0, 0.95)])       # Coral: a 5 % step
def test_point_sampled_inference_windows_beyond_1_percent_are_refused_by_name(powers_w):
    """A point-sampled trace prices each edge to one sample of its step: refused where that can exceed 1 %."""
    timeline, timings, first_trigger_s, end_s = simulated_run(powers_w, runs=6, seed=3)
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S) + 0.37 * DT_S
    power_w = sample_timeline(timeline, time_s, first_trigger_s)
    priced = energy_from_trace(time_s, power_w, timings, point_error_rel=None)
    samples = energy_from_trace(time_s, power_w, timings)
    _idle, readout_w, inference_w, retrieval_w = powers_w
    bound_rel = (abs(inference_w - readout_w) + abs(retrieval_w - inference_w)) / inference_w * DT_S / PULSE_S
    np.testing.assert_array_equal(samples.end_to_end_j, priced.end_to_end_j)  # long windows still measured
    if bound_rel > 0.01:
        assert samples.count == 0 and samples.inference_refusal is not None
        text = str(samples.inference_refusal)
        assert isinstance(samples.inference_refusal, CannotResolve)
        for needle in ("inference window 0", "point-sampled", "5 µs sample interval", "integrating digitizer",
                       "finer sample interval", "stage-only loop"):
            assert needle in text, needle
    else:
        assert samples.inference_refusal is None
        np.testing.assert_array_equal(samples.inference_j, priced.inference_j)


def test_an_integrating_trace_is_not_taken_for_point_samples():
    timeline, timings, first_trigger_s, end_s = simulated_run((0.012, 0.265, 0.0685, 0.265), runs=6, seed=3)
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S) + 0.37 * DT_S
    bounds = np.concatenate([time_s - DT_S / 2, [time_s[-1] + DT_S / 2]]) + first_trigger_s
    cell_means = np.diff([timeline.energy_between(bounds[0], b) for b in bounds]) / DT_S
    samples = energy_from_trace(time_s, cell_means, timings)
    assert samples.inference_refusal is None and samples.count == 6


def test_energy_from_trace_marks_untimeable_inferences():
    """Inference drawing the same power as readout and retrieval: energy is still right, latency is NaN.

    Its edges are placed by the clock map alone, so the map must be pinned: over 3 runs the 6 visible
    steps leave the ratio uncertain enough to move those windows by ~2 % (refused); over 10 they pin it."""
    timeline, timings, first_trigger_s, end_s = simulated_run((0.1, 0.5, 0.5, 0.5), runs=3, seed=4)
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S)
    short = energy_from_trace(time_s, sample_timeline(timeline, time_s, first_trigger_s), timings)
    assert short.inference_j.size == 0 and "not visible in the trace" in str(short.inference_refusal)
    timeline, timings, first_trigger_s, end_s = simulated_run((0.1, 0.5, 0.5, 0.5), runs=10, seed=4)
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S)
    samples = energy_from_trace(time_s, sample_timeline(timeline, time_s, first_trigger_s), timings)
    np.testing.assert_allclose(samples.inference_j, [0.5 * t.inference_us * 1e-6 for t in timings], rtol=1e-9)
    assert np.isnan(samples.trace_inference_s).all()
    assert "inference start" in samples.trace_latency_note and "no distinct" in samples.trace_latency_note


def test_energy_from_trace_refuses_a_trace_that_misses_the_first_readout():
    timeline, timings, first_trigger_s, end_s = simulated_run((0.1, 0.3, 1.0, 0.3), runs=2, seed=5)
    time_s = np.arange(-0.5e-3, end_s - first_trigger_s, DT_S)  # pre-trigger shorter than the readout
    with pytest.raises(MeasurementError, match="pre-trigger"):
        energy_from_trace(time_s, sample_timeline(timeline, time_s, first_trigger_s), timings)


def _cell_means(timeline: ActivityTimeline, time_s: np.ndarray, t_offset_s: float) -> np.ndarray:
    """An integrating digitizer's samples: each the mean power over its own cell."""
    bounds = np.concatenate([time_s - DT_S / 2, [time_s[-1] + DT_S / 2]]) + t_offset_s
    return np.diff([timeline.energy_between(bounds[0], b) for b in bounds]) / DT_S


@pytest.mark.parametrize("powers_w", [(0.012, 0.265, 0.0685, 0.265), (0.30, 0.95, 1.0, 0.95)])
@pytest.mark.parametrize("runs", [1, 2, 3, 6])
def test_short_or_point_sampled_runs_are_within_half_a_percent_or_refused(powers_w, runs):
    """Issue 10's gap: a run of ≤ 3 inferences has too few power steps to tell the sampling model, and a
    point-sampled trace priced from its centroids errs by the level, not the step (a 6-inference Coral run:
    1.3 % silently before). Every number returned, for either sampling model, every seed and sample phase
    tried, is within 0.5 % of the truth; the rest is a typed refusal that says why."""
    refusals = 0
    # Ten seeds (seed 5 had an exact clock refused as WindowMisplaced: run_envelope's end of an integrating
    # record read 10 samples early; seeds 0-2 never showed it).
    cases = list(itertools.product(range(10), (0.0, 0.37, 0.81), ("point", "integrating")))
    for seed, phase, sampling in cases:
        timeline, timings, first_trigger_s, end_s = simulated_run(powers_w, runs=runs, seed=seed)
        time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S) + phase * DT_S
        sample = sample_timeline if sampling == "point" else _cell_means
        try:
            samples = energy_from_trace(time_s, sample(timeline, time_s, first_trigger_s), timings)
        except CannotResolve as exc:
            assert "end-to-end window" in str(exc)
            refusals += 1
            continue
        truth_e2e = [timeline.energy_between(first_trigger_s + (t.start_us - t.readout_us) * 1e-6,
                                             first_trigger_s + (t.start_us + t.inference_us + t.retrieval_us) * 1e-6)
                     for t in timings]
        assert np.abs(samples.end_to_end_j / truth_e2e - 1).max() < 0.005
        if samples.inference_refusal is not None:
            refusals += 1
            continue
        truth = [timeline.energy_between(first_trigger_s + t.start_us * 1e-6,
                                         first_trigger_s + (t.start_us + t.inference_us) * 1e-6) for t in timings]
        assert np.abs(samples.inference_j / truth - 1).max() < 0.005, (seed, phase, sampling)
    if runs <= 3 and powers_w[2] < powers_w[1] / 2:
        # Too few steps to tell the sampling model, and the IMX500's 4x steps could break 0.5 % under point
        # sampling: refused whichever way it was sampled (Coral's 5 % steps may be priced: checked above).
        assert refusals == len(cases)


def test_a_run_too_short_to_tell_the_sampling_model_is_refused_by_name():
    timeline, timings, first_trigger_s, end_s = simulated_run((0.012, 0.265, 0.0685, 0.265), runs=3, seed=1)
    time_s = np.arange(-1.5e-3, end_s - first_trigger_s + 0.2e-3, DT_S)
    samples = energy_from_trace(time_s, _cell_means(timeline, time_s, first_trigger_s), timings)
    text = str(samples.inference_refusal)
    assert samples.count == 0 and isinstance(samples.inference_refusal, CannotResolve)
    for needle in ("inference window 0", "too few (< 12)", "point-samples", "runs_per_window", "5 or more"):
        assert needle in text, needle
