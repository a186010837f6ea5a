"""The timeline's indexed queries (bisection) give exactly what a walk over every span gives."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from pytest_edgehil.sim.trace_synthesis import mean_power_per_sample

IDLE_W = 0.01


def walk_mean_power(spans, t0_s, dt, points):
    """mean_power_per_sample as it was before the index: every span visited."""
    start_s, end_rel_s = t0_s - dt / 2, points * dt
    knot_t, knot_e, cursor, energy = [0.0], [0.0], 0.0, 0.0
    for span in spans:
        lo, hi = max(span.start_s - start_s, 0.0), min(span.end_s - start_s, end_rel_s)
        if hi <= lo:
            continue
        if lo > cursor:
            energy += IDLE_W * (lo - cursor)
            knot_t.append(lo)
            knot_e.append(energy)
        energy += span.power_w * (hi - lo)
        knot_t.append(hi)
        knot_e.append(energy)
        cursor = hi
    if cursor < end_rel_s:
        knot_t.append(end_rel_s)
        knot_e.append(energy + IDLE_W * (end_rel_s - cursor))
    return np.diff(np.interp(np.arange(points + 1) * dt, knot_t, knot_e)) / dt


def walk_energy(spans, t0_s, t1_s):
    covered = energy = 0.0
    for span in spans:
        lo, hi = max(t0_s, span.start_s), min(t1_s, span.end_s)
        if hi > lo:
            energy += span.power_w * (hi - lo)
            covered += hi - lo
    return energy + IDLE_W * max(0.0, (t1_s - t0_s) - covered)


def test_indexed_queries_equal_a_walk_over_every_span():
    rng = random.Random(4)  # any seed: the equality holds for every timeline
    timeline = ActivityTimeline(IDLE_W, 3.3)
    t = 0.0
    for _ in range(2000):  # zero-length spans and gaps included
        duration = rng.choice([0.0, 1e-6, rng.random() * 1e-3])
        gap = rng.choice([0.0, 0.0, rng.random() * 1e-4])
        timeline.append(StageSpan("x", t + gap, t + gap + duration, rng.random(), rng.random() < 0.2))
        t += gap + duration
    spans = timeline.snapshot()
    for _ in range(200):
        a = rng.uniform(-0.05 * t, 1.05 * t)
        b = a + rng.random() * 0.2 * t
        dt, points = rng.choice([1e-6, 1e-5, 1e-4]), rng.randint(1, 2000)
        assert np.array_equal(mean_power_per_sample(spans, IDLE_W, a, dt, points), walk_mean_power(spans, a, dt, points))
        assert timeline.energy_between(a, b) == walk_energy(spans, a, b)
        assert timeline.power_at(a) == next((s.power_w for s in spans if s.start_s <= a < s.end_s), IDLE_W)
        assert timeline.wait_for_trigger(a, 0.0) == next((s.start_s for s in spans if s.trigger_high and s.start_s >= a),
                                                         None)


def test_a_capture_reads_only_the_history_its_samples_can_see():
    # The analyzer twin hands analog_samples the spans ending after analog_history_start_s, not every
    # span: with the default bench (filters that settle over earlier activity) and with an ideal one,
    # the samples must be exactly those computed from the whole timeline.
    from pytest_edgehil.sim.bench_physics import BenchPhysics, analog_history_start_s, analog_samples

    rng = random.Random(9)
    timeline = ActivityTimeline(IDLE_W, 3.3)
    t = 0.0
    for _ in range(3000):
        duration = rng.random() * 2e-4
        timeline.append(StageSpan("x", t, t + duration, rng.random(), False))
        t += duration
    for physics in (BenchPhysics(), BenchPhysics.ideal(), BenchPhysics(sampling="point")):
        for _ in range(20):
            t0_s, dt, points = rng.uniform(0.0, t), rng.choice([1e-6, 1e-5]), rng.randint(1, 500)
            tail = timeline.spans_from(analog_history_start_s(t0_s, dt, points, physics))
            assert len(tail) < len(timeline.snapshot()) or t0_s < 1e-3
            assert np.array_equal(analog_samples(tail, IDLE_W, t0_s, dt, points, physics),
                                  analog_samples(timeline.snapshot(), IDLE_W, t0_s, dt, points, physics))


def test_extend_appends_in_one_step_and_refuses_a_span_that_starts_before_the_last_ends():
    timeline = ActivityTimeline(idle_power_w=IDLE_W, supply_v=3.3)
    spans = [StageSpan("readout", 0.0, 1.0, 0.1), StageSpan("inference", 1.0, 2.5, 0.4, True, 0),
             StageSpan("retrieval", 2.5, 3.0, 0.2)]
    timeline.extend(spans)
    assert timeline.snapshot() == spans
    assert timeline.wait_for_trigger(0.5, timeout_s=0.0) == 1.0
    assert timeline.energy_between(0.0, 3.0) == pytest.approx(sum(s.energy_j for s in spans))
    with pytest.raises(ValueError, match="time order"):
        timeline.extend([StageSpan("idle", 3.0, 4.0, 0.1), StageSpan("idle", 3.5, 5.0, 0.1)])
    assert timeline.snapshot() == spans  # nothing of the refused step was recorded
