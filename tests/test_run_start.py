"""`measure.run_start.run_start_s`: where a RUN starts in a record with no trigger, against closed-form
steps (each sample the mean power over its own interval, as the analyzer twins and a FastLog record
average), and the typed refusals when the record cannot tell."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError, SupplyPathTooSlow
from pytest_edgehil.measure.run_start import LEAD_SAMPLES, record_noise_w, run_start_s
from pytest_edgehil.measure.settling import SETTLE_STAGE_TAUS

DT = 2e-6
IDLE_W, READOUT_W, INFERENCE_W = 0.05, 0.30, 0.60


def record(step_s: float, *, points: int = 2000, end_active_s: float = 2.5e-3, opening_w: float | None = None,
           decay: tuple[float, float] | None = None):
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
    if decay is not None:  # (amplitude W, τ s): that activity draining through a first-order supply path
        amplitude_w, tau_s = decay
        power_w += amplitude_w * tau_s / DT * -np.diff(np.exp(-edges_s / tau_s))
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


# A 12.5 µs RC and a 5 kHz front end (τ 31.8 µs) with the RUN 30 µs in: the opening never reaches idle
# before it; a 10 µs RC with the RUN 40 µs in reaches idle one sample before the step (fewer than
# LEAD_SAMPLES idle samples). Either way the RUN is in the record and the supply path hides its start.
SLOW_OPENINGS = [(12.5e-6, 30e-6), (1 / (2 * np.pi * 5e3), 30e-6), (10e-6, 40e-6)]


@pytest.mark.parametrize(("tau_s", "run_at_s"), SLOW_OPENINGS)
def test_a_slow_opening_that_hides_the_run_start_names_the_supply_path(tau_s: float, run_at_s: float) -> None:
    t, p = record(run_at_s, decay=(0.5, tau_s))
    with pytest.raises(SupplyPathTooSlow) as excinfo:
        run_start_s(t, p)
    # The opening's samples are exact interval means of the decay: the fit recovers τ itself.
    assert excinfo.value.tau_s == pytest.approx(tau_s, rel=1e-3)
    assert excinfo.value.allowed_tau_s is None
    message = str(excinfo.value)
    assert "RUN is in the record" in message and "not in it" not in message
    assert f"τ ≈ {tau_s * 1e6:.3g} µs" in message and f"{1 / (2 * np.pi * tau_s) / 1e3:.3g} kHz" in message
    assert "decoupling" in message and "front end" in message and "N6705C" in message


def test_a_slow_opening_is_named_through_noise() -> None:
    t, p = record(30e-6, decay=(0.5, 12.5e-6))
    noisy = p + 2e-4 * np.random.default_rng(5).standard_normal(p.size)
    with pytest.raises(SupplyPathTooSlow) as excinfo:
        run_start_s(t, noisy)
    assert excinfo.value.tau_s == pytest.approx(12.5e-6, rel=0.05)


def test_the_slow_path_refusal_says_what_the_runs_stages_allow() -> None:
    t, p = record(30e-6, decay=(0.5, 12.5e-6))
    with pytest.raises(SupplyPathTooSlow) as excinfo:  # Q-Segment's 0.23 ms inference: τ ≤ 10.5 µs
        run_start_s(t, p, shortest_stage=("inference", 230e-6))
    assert excinfo.value.allowed_tau_s == pytest.approx(230e-6 / SETTLE_STAGE_TAUS)
    assert f"needs τ ≤ {230e-6 / SETTLE_STAGE_TAUS * 1e6:.3g} µs" in str(excinfo.value)
    assert "faster analyzer front end" in str(excinfo.value)
    with pytest.raises(SupplyPathTooSlow) as excinfo:  # a 1 ms stage allows 45 µs: the RUN simply came early
        run_start_s(t, p, shortest_stage=("retrieval", 1e-3))
    assert "fast enough for these stages" in str(excinfo.value) and "arm the analyzer longer" in str(excinfo.value)


def test_a_decay_that_settles_before_the_run_still_finds_its_start() -> None:
    step_s = 200.5 * DT
    t, p = record(step_s, decay=(0.5, 3e-6))
    assert run_start_s(t, p) == pytest.approx(step_s - DT / 2, abs=0.05 * DT)


def test_a_decay_with_no_run_after_it_is_not_called_a_slow_path() -> None:
    t = np.arange(500) * DT
    decaying = IDLE_W + 0.5 * 12.5e-6 / DT * -np.diff(np.exp(-np.arange(501) * DT / 12.5e-6))
    with pytest.raises(MeasurementError, match="the RUN is not in it") as excinfo:
        run_start_s(t, decaying)
    assert not isinstance(excinfo.value, SupplyPathTooSlow)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_noise_passed_in_gives_the_same_start_as_computed(seed: int) -> None:
    t, p = record(300.3 * DT)
    noisy = p + 0.01 * np.random.default_rng(seed).standard_normal(p.size)
    noise = record_noise_w(noisy)
    diffs = np.diff(noisy)  # the centred MAD of the first differences, one sample's sigma
    assert noise == pytest.approx(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0), rel=1e-12)
    assert run_start_s(t, noisy, noise_w=noise) == run_start_s(t, noisy)  # bit for bit
