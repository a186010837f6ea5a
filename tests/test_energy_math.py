"""Energy-per-inference math checked against closed forms and against a timeline's true energy.

The plain-trapezoid integrators tested here are reference oracles (tests/oracles.py); production
energy is step-aware (stage_edges), checked against the timeline in the tests at the end.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.energy import (
    active_window_s,
    end_to_end_windows_s,
    inference_windows_s,
    mean_power_w,
    power_from_current_voltage_w,
    trace_sample_interval_s,
)

from .oracles import integrate_energy_j, integration_error_bound_j, window_energies_j

DT_S = 5e-6  # 200 kS/s
PULSE_S = 0.23e-3  # a 0.23 ms inference: 46 samples at 200 kS/s


def grid_s(t_start_s: float, n: int, dt_s: float = DT_S) -> np.ndarray:
    return t_start_s + np.arange(n) * dt_s




# ------------------------------------------------------------------------------ closed forms

def test_constant_power_with_edges_between_samples_is_exact():
    t = grid_s(-1e-3, 1000)
    p = np.full(t.size, 0.42)
    # Edges 0.3 and 0.77 of a sample past a sample: snapping either would be off by up to 0.42 W * 2.5 us.
    a, b = 0.3 * DT_S, 0.3 * DT_S + PULSE_S + 0.47 * DT_S
    assert integrate_energy_j(t, p, a, b) == pytest.approx(0.42 * (b - a), rel=1e-12)
    assert window_energies_j(t, p, [[a, b]])[0] == pytest.approx(0.42 * (b - a), rel=1e-12)


def test_linear_ramp_is_exact_for_any_edges():
    t = grid_s(0.0, 500)
    c0_w, c1_w_per_s = 0.1, 250.0
    p = c0_w + c1_w_per_s * t
    for a, b in [(1.3e-5, 2.1234e-3), (0.0, t[-1]), (7.7e-4, 7.77e-4 + 3 * DT_S)]:
        exact_j = c0_w * (b - a) + c1_w_per_s * (b * b - a * a) / 2
        assert integrate_energy_j(t, p, a, b) == pytest.approx(exact_j, rel=1e-11)


def test_sine_over_a_full_period():
    period_s, mean_w, amp_w = 1e-3, 0.5, 0.3
    t = grid_s(0.0, 1001)
    p = mean_w + amp_w * np.sin(2 * np.pi * t / period_s)
    # On-grid edges: the trapezoid rule is exact for a full period of a sine.
    assert integrate_energy_j(t, p, 0.0, period_s) == pytest.approx(mean_w * period_s, rel=1e-12)
    # Off-grid edges: error of integrating the linear interpolant is <= (b - a) dt^2 max|P''| / 8.
    a = 0.37 * DT_S + 1e-4
    bound_j = period_s * DT_S**2 * amp_w * (2 * np.pi / period_s) ** 2 / 8
    got_j = integrate_energy_j(t, p, a, a + period_s)
    assert abs(got_j - mean_w * period_s) <= bound_j
    assert abs(window_energies_j(t, p, [[a, a + period_s]])[0] - mean_w * period_s) <= bound_j


def step_trace(dt_s: float, step_at_s: float, low_w: float, high_w: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(0.0, 2e-3 + dt_s / 2, dt_s)
    return t, np.where(t >= step_at_s, high_w, low_w)


def test_step_error_within_bound_for_every_phase():
    rng = np.random.default_rng(7)
    low_w, high_w = 0.2, 1.1
    bound_j = integration_error_bound_j(high_w - low_w, DT_S)
    worst_j = 0.0
    for phase in rng.uniform(0, 1, 60):
        step_at_s = 1e-3 + phase * DT_S
        t, p = step_trace(DT_S, step_at_s, low_w, high_w)
        a, b = 0.31e-3, 1.62e-3
        true_j = low_w * (step_at_s - a) + high_w * (b - step_at_s)
        err_j = abs(integrate_energy_j(t, p, a, b) - true_j)
        assert err_j <= bound_j * (1 + 1e-9)
        worst_j = max(worst_j, err_j)
    assert worst_j > 0.5 * bound_j  # the bound is tight, not loose: some phase gets near it


def test_step_error_shrinks_in_proportion_to_dt():
    low_w, high_w = 0.1, 0.9
    a, b = 0.25e-3, 1.75e-3
    errors_j = []
    dts_s = [40e-6, 20e-6, 10e-6, 5e-6, 2.5e-6]
    for dt_s in dts_s:
        step_at_s = 1e-3 + 0.1 * dt_s  # same phase within its sample interval at every dt
        t, p = step_trace(dt_s, step_at_s, low_w, high_w)
        true_j = low_w * (step_at_s - a) + high_w * (b - step_at_s)
        err_j = abs(integrate_energy_j(t, p, a, b) - true_j)
        assert err_j <= integration_error_bound_j(high_w - low_w, dt_s) * (1 + 1e-9)
        errors_j.append(err_j)
    assert all(e1 < e0 for e0, e1 in pairwise(errors_j))
    slope = np.polyfit(np.log(dts_s), np.log(errors_j), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.02)


def test_trigger_delimited_window_whose_edges_are_the_steps():
    """The inference window's edges coincide with the power steps: the case the bound must also cover."""
    idle_w, active_w = 0.3, 1.0
    bound_j = integration_error_bound_j([active_w - idle_w, idle_w - active_w], DT_S)
    for phase in np.linspace(0.0, 0.999, 23):
        a = 1e-3 + phase * DT_S
        b = a + PULSE_S
        t = grid_s(0.0, 600)
        p = np.where((t >= a) & (t < b), active_w, idle_w)
        assert abs(integrate_energy_j(t, p, a, b) - active_w * PULSE_S) <= bound_j * (1 + 1e-9)


def test_window_outside_trace_names_window_and_span():
    t = grid_s(-0.5e-3, 400)
    p = np.ones(t.size)
    with pytest.raises(MeasurementError, match=r"outside the trace span \[-0\.0005, ") as exc:
        integrate_energy_j(t, p, -1e-3, 0.0)
    assert "-0.001" in str(exc.value) and "pre-trigger" in str(exc.value)
    with pytest.raises(MeasurementError, match="outside the trace span"):
        window_energies_j(t, p, [[0.0, 1e-4], [1e-4, 5e-3]])


def test_window_shorter_than_two_samples_names_the_sample_interval():
    t = grid_s(0.0, 100)
    p = np.ones(t.size)
    with pytest.raises(MeasurementError, match="faster digitizer") as exc:
        integrate_energy_j(t, p, 1e-4, 1e-4 + 1.5 * DT_S)
    assert f"{DT_S:.3g} s" in str(exc.value)
    with pytest.raises(MeasurementError, match="shorter than 2 sample intervals"):
        window_energies_j(t, p, [[1e-4, 2e-4], [3e-4, 3e-4 + DT_S]])
    assert integrate_energy_j(t, p, 1e-4, 1e-4 + 2 * DT_S) == pytest.approx(2 * DT_S)


def test_bad_traces_are_refused():
    t = grid_s(0.0, 100)
    with pytest.raises(MeasurementError, match="strictly increasing"):
        integrate_energy_j(t[::-1].copy(), np.ones(100), 1e-4, 3e-4)
    swapped = t.copy()
    swapped[[40, 41]] = swapped[[41, 40]]
    with pytest.raises(MeasurementError, match="strictly increasing"):
        integrate_energy_j(swapped, np.ones(100), 1e-4, 3e-4)
    with pytest.raises(MeasurementError, match="strictly increasing"):
        window_energies_j(swapped, np.ones(100), [[1e-4, 3e-4]])
    with pytest.raises(MeasurementError, match="equal length"):
        integrate_energy_j(t, np.ones(99), 1e-4, 3e-4)
    p = np.ones(100)
    p[50] = np.nan
    with pytest.raises(MeasurementError, match=r"window 1 .* non-finite"):
        window_energies_j(t, p, [[0.5e-4, 1.5e-4], [1e-4, 3e-4]])
    # A bad sample before a window does not spoil it.
    np.testing.assert_allclose(window_energies_j(t, p, [[3e-4, 4e-4], [2.6e-4, 4.5e-4]]), [1e-4, 1.9e-4])
    with pytest.raises(MeasurementError, match="differ in length"):
        power_from_current_voltage_w(np.ones(3), np.ones(4))


def test_power_from_current_and_voltage_and_mean_power():
    p = power_from_current_voltage_w([0.1, 0.2], [3.3, 3.0])
    np.testing.assert_allclose(p, [0.33, 0.6])
    assert mean_power_w(2e-3, 4e-3) == pytest.approx(0.5)
    np.testing.assert_allclose(mean_power_w(np.array([1.0, 3.0]), np.array([2.0, 2.0])), [0.5, 1.5])
    assert trace_sample_interval_s(grid_s(-1e-3, 11)) == pytest.approx(DT_S)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 3000), dt_s=st.floats(1e-7, 1e-3),
       offset=st.floats(-1.0, 1.0), m=st.integers(1, 20))
def test_window_energies_agree_with_integrate(seed, n, dt_s, offset, m):
    rng = np.random.default_rng(seed)
    t = offset + np.arange(n) * dt_s
    p = rng.uniform(0.0, 5.0, n) + rng.choice([0.0, 100.0])
    span_s = t[-1] - t[0]
    starts = t[0] + rng.uniform(0, 1, m) * (span_s - 2 * dt_s)
    lengths = 2 * dt_s + rng.uniform(0, 1, m) * (t[-1] - starts - 2 * dt_s)
    windows = np.stack([starts, np.minimum(starts + lengths, t[-1])], axis=1)
    windows = windows[windows[:, 1] - windows[:, 0] >= 2 * dt_s]
    got = window_energies_j(t, p, windows)
    want = [integrate_energy_j(t, p, a, b) for a, b in windows]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * float(np.abs(p).max()) * span_s)


def test_window_energies_whole_span_empty_and_shape_checked():
    t = grid_s(0.0, 10)
    p = np.random.default_rng(2).uniform(0, 1, 10)
    whole = window_energies_j(t, p, [[t[0], t[-1]], [t[0] - 1e-15, t[-1] + 1e-15]])  # round-off tolerated
    np.testing.assert_allclose(whole, np.trapezoid(p, t), rtol=1e-12)
    assert window_energies_j(t, np.ones(10), np.zeros((0, 2))).shape == (0,)
    with pytest.raises(MeasurementError, match=r"shape \(m, 2\)"):
        window_energies_j(t, np.ones(10), [1e-5, 2e-5, 3e-5])


def test_windows_from_stage_timings():
    timings = [StageTiming(0.0, 100.0, 230.0, 20.0), StageTiming(350.0, 110.0, 240.0, 25.0)]
    np.testing.assert_allclose(inference_windows_s(timings), [[0.0, 230e-6], [350e-6, 590e-6]])
    np.testing.assert_allclose(end_to_end_windows_s(timings), [[-100e-6, 250e-6], [240e-6, 615e-6]])
    assert inference_windows_s([]).shape == (0, 2)


# ------------------------------------------------------------------------ latency from the trace

def pulse_trace(rise_s: float, width_s: float, before_w: float, active_w: float, after_w: float,
                ramp_s: float = 0.0, noise_w: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Point samples of a pulse whose edges cross their halfway levels at rise_s and rise_s + width_s."""
    t = grid_s(-0.3e-3, 160)
    fall_s = rise_s + width_s
    if ramp_s:
        up = np.clip((t - rise_s) / ramp_s + 0.5, 0, 1)
        down = np.clip((t - fall_s) / ramp_s + 0.5, 0, 1)
    else:
        up, down = (t >= rise_s).astype(float), (t >= fall_s).astype(float)
    p = before_w + (active_w - before_w) * up + (after_w - active_w) * down
    return t, p + np.random.default_rng(seed).normal(0, noise_w, t.size) if noise_w else p


@pytest.mark.parametrize("levels_w", [(0.01, 0.12, 0.01),      # peak above idle (MCU)
                                      (0.265, 0.0685, 0.265),  # dip: IMX500 reads out at higher power
                                      (0.10, 0.095, 0.06)])    # neighbours differ (Spresense-like)
def test_sharp_pulse_recovered_within_one_sample(levels_w):
    for phase in np.linspace(0.0, 0.99, 17):
        t, p = pulse_trace(phase * DT_S, PULSE_S, *levels_w)
        got_s = active_window_s(t, p, -0.2e-3, 0.45e-3)
        assert abs(got_s - PULSE_S) <= DT_S


def test_ramped_edges_timed_to_a_small_fraction_of_a_sample():
    ramp_s = 4 * DT_S
    width_s = PULSE_S + 0.28 * DT_S  # not a whole number of samples, as real inferences are not
    interpolated_err, counted_err = [], []
    for phase in np.linspace(0.0, 0.99, 25):
        t, p = pulse_trace(phase * DT_S, width_s, 0.3, 1.0, 0.3, ramp_s=ramp_s)
        interpolated_err.append(abs(active_window_s(t, p, -0.2e-3, 0.45e-3) - width_s))
        counted_err.append(abs(np.count_nonzero(p > 0.65) * DT_S - width_s))  # whole-sample counting
    assert max(interpolated_err) < 0.01 * DT_S
    assert max(interpolated_err) < max(counted_err) / 10


def test_noisy_pulse_within_one_sample():
    for seed in range(5):
        t, p = pulse_trace(0.37 * DT_S, PULSE_S, 0.265, 0.0685, 0.265, ramp_s=2 * DT_S, noise_w=0.004,
                           seed=seed)
        assert abs(active_window_s(t, p, -0.2e-3, 0.45e-3) - PULSE_S) <= DT_S


def test_fixed_level_overrides_the_level_estimate():
    t, p = pulse_trace(0.5 * DT_S, PULSE_S, 0.1, 1.0, 0.1, ramp_s=4 * DT_S)
    # A level at 3/4 of the step is crossed later on the way up and earlier on the way down.
    assert active_window_s(t, p, -0.2e-3, 0.45e-3, level_w=0.775) == pytest.approx(PULSE_S - 2 * DT_S)
    with pytest.raises(MeasurementError, match="never crosses 2 W twice"):
        active_window_s(t, p, -0.2e-3, 0.45e-3, level_w=2.0)


def test_no_distinct_stage_is_an_error_not_a_number():
    t = grid_s(0.0, 200)
    flat = 0.5 + np.random.default_rng(1).normal(0, 1e-3, t.size)
    with pytest.raises(MeasurementError, match="no distinct"):
        active_window_s(t, flat, 1e-4, 8e-4)
    t, p = pulse_trace(0.0, PULSE_S, 0.1, 1.0, 0.1)
    with pytest.raises(MeasurementError, match="cuts it off"):  # the pulse runs past the window
        active_window_s(t, p, -0.2e-3, 0.2e-3)
