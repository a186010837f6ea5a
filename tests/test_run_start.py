"""`measure.run_start.run_start_s`: where a RUN starts in a record with no trigger, against closed-form
steps (each sample the mean power over its own interval, as the analyzer twins and a FastLog record
average), and the typed refusals when the record cannot tell."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.run_start import LEAD_SAMPLES, record_noise_w, run_start_s

DT = 2e-6
IDLE_W, READOUT_W, INFERENCE_W = 0.05, 0.30, 0.60


def record(step_s: float, *, points: int = 2000, end_active_s: float = 2.5e-3, opening_w: float | None = None):
    """Interval-mean samples of idle → readout (from `step_s`) → inference → idle (from `end_active_s`);
    sample i covers [i·DT, (i+1)·DT] and is stamped at its start (the trace's time axis)."""
    edges_s = np.arange(points + 1) * DT
    levels = [(0.0, IDLE_W), (step_s, READOUT_W), (step_s + 0.6e-3, INFERENCE_W), (end_active_s, IDLE_W)]

    def energy(t_s: np.ndarray) -> np.ndarray:  # cumulative energy of the piecewise-constant power
        total = np.zeros_like(t_s)
        for (a, w), (b, _) in zip(levels, [*levels[1:], (np.inf, 0.0)]):
            total += w * np.clip(np.minimum(t_s, b) - a, 0.0, None)
        return total

    power_w = np.diff(energy(edges_s)) / DT
    if opening_w is not None:  # the previous command's activity still settling at the record's start
        power_w[:LEAD_SAMPLES + 2] = opening_w
    return edges_s[:-1], power_w


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.8])
def test_the_first_step_is_found_to_a_fraction_of_a_sample(fraction: float) -> None:
    step_s = (100 + fraction) * DT
    t, p = record(step_s)
    # Stamped at each sample's start, an ideal step's half-level crossing lies half a sample early; the
    # straddling sample reads base + (1 - f)·Δ, so the linear half-level interpolation errs by
    # DT·(1/(2(1 - f)) - 1/2 - f) for f < 1/2 (mirrored above): at most 0.09 sample.
    f = fraction if fraction < 0.5 else 1.0 - fraction
    bias_s = DT * (1 / (2 * (1 - f)) - 0.5 - f) * (1 if fraction < 0.5 else -1)
    assert run_start_s(t, p) == pytest.approx(step_s - DT / 2 + bias_s, abs=1e-3 * DT)
    assert abs(bias_s) < 0.09 * DT


def test_noise_below_the_step_does_not_move_it_by_more_than_a_sample() -> None:
    step_s = 300.3 * DT
    t, p = record(step_s)
    noisy = p * (1 + 0.01 * np.random.default_rng(11).standard_normal(p.size))
    assert abs(run_start_s(t, noisy) - (step_s - DT / 2)) < DT


def test_activity_settling_at_the_opening_is_passed_over() -> None:
    step_s = 200.5 * DT
    t, p = record(step_s, opening_w=INFERENCE_W)  # the record opens on the tail of earlier activity
    assert run_start_s(t, p) == pytest.approx(step_s - DT / 2, abs=0.05 * DT)


def test_a_record_without_the_run_is_refused() -> None:
    t = np.arange(500) * DT
    with pytest.raises(MeasurementError, match="shows no power step away from the idle level.*the RUN is not in it"):
        run_start_s(t, np.full(t.size, IDLE_W))


def test_a_record_that_starts_inside_the_run_is_refused() -> None:
    t, p = record(1.0 * DT)  # the device was already active when the record began
    with pytest.raises(MeasurementError, match=f"fewer than {LEAD_SAMPLES} idle samples before its first power step"):
        run_start_s(t, p)


def test_a_record_that_ends_inside_the_run_is_refused_not_placed() -> None:
    # The idle level is read at the record's end; a record cut short inside the RUN has none to read.
    t = np.arange(400) * DT
    p = np.where(np.arange(400) < 100, IDLE_W, READOUT_W)
    with pytest.raises(MeasurementError, match="the RUN is not in it.*longer record"):
        run_start_s(t, p)


def test_a_record_too_short_to_tell_is_refused() -> None:
    with pytest.raises(MeasurementError, match="too short to find where the RUN starts"):
        run_start_s(np.arange(5) * DT, np.full(5, IDLE_W))


@pytest.mark.parametrize("seed", [1, 2])
def test_the_noise_passed_in_gives_the_same_start_as_computed(seed: int) -> None:
    t, p = record(300.3 * DT)
    noisy = p + 0.01 * np.random.default_rng(seed).standard_normal(p.size)
    noise = record_noise_w(noisy)
    diffs = np.diff(noisy)  # the centred MAD of the first differences, one sample's sigma
    assert noise == pytest.approx(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0), rel=1e-12)
    assert run_start_s(t, noisy, noise_w=noise) == run_start_s(t, noisy)  # bit for bit
