"""Speed of the energy math on a 10 M-sample trace (50 s at 200 kS/s) beside a bare numpy.trapezoid.

Run: pytest benchmarks/test_bench_energy.py --benchmark-only. Each benchmark also checks its answer, so
a fast wrong result cannot pass; there are no timed asserts (timings are pytest-benchmark's to compare).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.energy import energy_from_trace, integrate_energy_j, window_energies_j

SAMPLES = 10_000_000
DT_S = 5e-6  # 200 kS/s: 10 M samples is 50 s
WINDOWS = 1000




@pytest.fixture(scope="module")
def trace():
    """A noisy trace with a device-like pattern: readout, 0.23 ms inference dip, retrieval, repeated."""
    rng = np.random.default_rng(0)
    time_s = (np.arange(SAMPLES) - 4000) * DT_S
    period_s, readout_s, inference_s, retrieval_s = 0.0184, 0.0179, 0.23e-3, 0.24e-3
    # The sample clock is not aligned to the trigger: stage edges fall 0.37 of a sample off the grid.
    phase_s = np.mod(time_s + 0.37 * DT_S + readout_s, period_s)
    power_w = np.where(phase_s < readout_s, 0.265,
                       np.where(phase_s < readout_s + inference_s, 0.0685, 0.265))
    power_w += rng.normal(0.0, 0.002, SAMPLES)
    starts_us = np.arange(WINDOWS) * period_s * 1e6
    timings = [StageTiming(s, readout_s * 1e6, inference_s * 1e6, retrieval_s * 1e6) for s in starts_us]
    return time_s, power_w, timings


def test_numpy_trapezoid_whole_span(benchmark, trace):
    time_s, power_w, _ = trace
    energy_j = benchmark(np.trapezoid, power_w, time_s)
    assert energy_j == pytest.approx(integrate_energy_j(time_s, power_w, time_s[0], time_s[-1]), rel=1e-9)


def test_integrate_energy_whole_span(benchmark, trace):
    time_s, power_w, _ = trace
    energy_j = benchmark(integrate_energy_j, time_s, power_w, time_s[0], time_s[-1])
    assert energy_j == pytest.approx(np.trapezoid(power_w, time_s), rel=1e-9)


def test_window_energies_1000_windows(benchmark, trace):
    time_s, power_w, _ = trace
    starts_s = np.linspace(time_s[10], time_s[-10] - 0.1, WINDOWS) + 0.37 * DT_S  # off-grid edges
    windows_s = np.stack([starts_s, starts_s + 0.23e-3], axis=1)
    energies_j = benchmark(window_energies_j, time_s, power_w, windows_s)
    spot = [0, 317, WINDOWS - 1]
    np.testing.assert_allclose(energies_j[spot], [integrate_energy_j(time_s, power_w, *windows_s[i])
                                                  for i in spot], rtol=1e-9)


def test_energy_from_trace_1000_inferences(benchmark, trace):
    time_s, power_w, timings = trace
    samples = benchmark(energy_from_trace, time_s, power_w, timings)
    assert samples.count == WINDOWS
    np.testing.assert_allclose(samples.trace_inference_s, 0.23e-3, atol=DT_S)
    np.testing.assert_allclose(samples.inference_power_w, 0.0685, rtol=0.05)
