"""Speed of the production energy math on a 10 M-sample trace (50 s at 200 kS/s) beside numpy.trapezoid.

Run: pytest benchmarks/test_bench_energy.py --benchmark-only. Each benchmark also checks its answer, so
a fast wrong result cannot pass; there are no timed asserts (timings are pytest-benchmark's to compare).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.energy import energy_from_trace, inference_windows_s
from pytest_edgehil.measure.stage_edges import stage_window_energies_j

SAMPLES = 10_000_000
DT_S = 5e-6  # 200 kS/s: 10 M samples is 50 s
WINDOWS = 1000




@pytest.fixture(scope="module")
def trace():
    """A noisy trace with a device-like pattern: readout, 0.23 ms inference dip, retrieval, repeated."""
    rng = np.random.default_rng(0)
    time_s = (np.arange(SAMPLES) - 4000) * DT_S
    period_s, readout_s, inference_s, retrieval_s = 0.0184, 0.0179, 0.23e-3, 0.24e-3
    # The sample clock is not aligned to the trigger: stage edges fall 0.37 of a sample off the grid. Each
    # sample is the mean power over its own interval (an integrating digitizer: a point-sampled trace has its
    # 0.23 ms windows refused, point_sampling), from the pattern's exact cumulative energy. Idle before the
    # first readout and after the last retrieval: the RUN the timings describe, as a capture holds it (the
    # meter checks the clock map against the RUN's envelope, its first step out of idle and its last back).
    idle_w, run_s = 0.012, WINDOWS * period_s
    knots_s = np.array([0.0, readout_s, readout_s + inference_s, period_s])
    knots_j = np.concatenate([[0.0], np.cumsum(np.diff(knots_s) * np.array([0.265, 0.0685, 0.265]))])

    def cumulative_j(u_s: np.ndarray) -> np.ndarray:  # energy since the first readout's start
        k = np.clip(np.floor(u_s / period_s), 0, WINDOWS - 1)
        inside = k * knots_j[-1] + np.interp(u_s - k * period_s, knots_s, knots_j)
        return np.where(u_s < 0, idle_w * u_s,
                        np.where(u_s >= run_s, WINDOWS * knots_j[-1] + idle_w * (u_s - run_s), inside))

    bounds_s = (np.arange(SAMPLES + 1) - 4000 - 0.5) * DT_S + 0.37 * DT_S + readout_s
    power_w = np.diff(cumulative_j(bounds_s)) / DT_S
    power_w += rng.normal(0.0, 0.002, SAMPLES)
    starts_us = np.arange(WINDOWS) * period_s * 1e6
    timings = [StageTiming(s, readout_s * 1e6, inference_s * 1e6, retrieval_s * 1e6) for s in starts_us]
    return time_s, power_w, timings


def test_numpy_trapezoid_whole_span(benchmark, trace):
    time_s, power_w, _ = trace
    energy_j = benchmark(np.trapezoid, power_w, time_s)
    # Closed form of the pattern: duty-weighted mean power over the span (noise averages out).
    assert energy_j == pytest.approx(float(power_w.mean()) * (time_s[-1] - time_s[0]), rel=1e-4)


def test_stage_window_energies_1000_windows(benchmark, trace):
    time_s, power_w, timings = trace
    windows_s = inference_windows_s(timings)  # stage edges 0.37 of a sample off the grid
    energies_j = benchmark(stage_window_energies_j, time_s, power_w, windows_s)
    # Each window is one flat 0.0685 W stage between 0.265 W neighbours: step-aware edges recover it
    # to within the sample noise (2 mW per sample over 46 samples), not the trapezoid's 3 % smear.
    np.testing.assert_allclose(energies_j / (0.0685 * 0.23e-3), 1.0, atol=0.03)
    assert float(np.median(energies_j)) == pytest.approx(0.0685 * 0.23e-3, rel=0.003)


def test_energy_from_trace_1000_inferences(benchmark, trace):
    time_s, power_w, timings = trace
    samples = benchmark(energy_from_trace, time_s, power_w, timings)
    assert samples.count == WINDOWS
    np.testing.assert_allclose(samples.trace_inference_s, 0.23e-3, atol=DT_S)
    np.testing.assert_allclose(samples.inference_power_w, 0.0685, rtol=0.05)
