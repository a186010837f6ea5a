"""`measure.run_envelope`: the RUN's envelope (first step out of idle, last step back) read with the
record's noise computed once per trace: passed in, the answers are the same bit for bit, and no check
computes it again (two medians over the whole record each time: 10-20 ms per million samples)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pytest_edgehil.errors import WindowMisplaced
from pytest_edgehil.measure import run_envelope, run_start
from pytest_edgehil.measure.energy import end_to_end_windows_s, energy_from_trace
from pytest_edgehil.measure.run_envelope import (
    MapEnds,
    check_clock_within,
    check_map_against_envelope,
    envelope_ratio,
    envelope_tolerance_s,
    run_end_s,
)
from pytest_edgehil.measure.run_start import record_noise_w, run_start_s

from .test_energy_vs_timeline import PULSE_S, sample_timeline, simulated_run

DT = 5e-6


def traced_run(seed: int, runs: int = 6, tail_s: float = 0.4e-3):
    """(time s, power W, timings, device span s): an IMX500-like RUN of `runs` inferences (1.7 ms each) with idle
    before and `tail_s` after (the idle level is read from the record's last 1/64), point samples plus noise
    (σ 1 mW: 8 σ, not 2 % of the peak, sets the departure threshold)."""
    timeline, timings, first_trigger_s, end_s = simulated_run((0.012, 0.265, 0.0685, 0.265), runs=runs, seed=seed)
    time_s = np.arange(-1.6e-3, end_s - first_trigger_s + tail_s, DT) + 0.37 * DT
    power_w = sample_timeline(timeline, time_s, first_trigger_s)
    power_w = power_w + 1e-3 * np.random.default_rng(seed).standard_normal(power_w.size)
    windows = end_to_end_windows_s(timings)
    return time_s, power_w, timings, float(windows[-1, 1] - windows[0, 0])


@pytest.mark.parametrize("seed", [3, 4])
def test_passing_the_noise_gives_the_same_envelope_bit_for_bit(seed: int) -> None:
    t, p, _, span_s = traced_run(seed)
    noise = record_noise_w(p)
    assert run_start_s(t, p, noise_w=noise) == run_start_s(t, p)
    end = run_end_s(t, p)
    assert end is not None and run_end_s(t, p, noise_w=noise) == end
    found = envelope_ratio(t, p, span_s)
    assert found is not None and abs(found[0] - 1.0) < 1e-3  # the envelope is read: the equality means something
    assert envelope_ratio(t, p, span_s, noise_w=noise) == found


def test_the_checks_raise_alike_with_the_noise_passed_or_computed() -> None:
    t, p, _, span_s = traced_run(3)
    messages = []
    for noise in (None, record_noise_w(p)):
        with pytest.raises(WindowMisplaced) as excinfo:  # a clock map 1 % off the envelope
            check_map_against_envelope(t, p, span_s, 0.99, 1e-6, noise_w=noise)
        messages.append(str(excinfo.value))
        with pytest.raises(WindowMisplaced):  # a record whose time base runs 1 % off the device's
            check_clock_within(t / 1.01, p, span_s, 1e-3, noise_w=noise)
        check_clock_within(t, p, span_s, 5e-3, noise_w=noise)  # within: nothing raised
    assert messages[0] == messages[1]


def test_energy_from_trace_computes_the_record_noise_once(monkeypatch: pytest.MonkeyPatch) -> None:
    t, p, timings, _ = traced_run(3)
    calls: list[int] = []

    def counted(power_w: np.ndarray) -> float:
        calls.append(np.asarray(power_w).size)
        return record_noise_w(power_w)

    def refused(power_w: np.ndarray) -> float:
        raise AssertionError("run_start_s computed the record's noise although it was passed in")

    monkeypatch.setattr(run_envelope, "record_noise_w", counted)
    monkeypatch.setattr(run_start, "record_noise_w", refused)
    samples = energy_from_trace(t, p, timings, point_error_rel=None)
    assert samples.end_to_end_j.size == len(timings)
    assert calls == [p.size]  # one whole-record noise per trace, shared by both ends of the envelope


@pytest.mark.parametrize("fraction", [0.0, 0.02, 0.03, 0.05, 0.1, 0.3, 0.49, 0.51, 0.9])
def test_the_run_end_of_an_integrating_record_is_read_where_the_last_cell_holds_a_sliver_of_the_stage(
        fraction: float) -> None:
    """An integrating digitizer's last sample away from idle may hold only a sliver of the last retrieval
    (a mean a little above idle, past the departure threshold but below the half level). The half-level
    crossing was then extrapolated from that sample and the idle one after it, both below the half level:
    up to 15 samples early at 3 % of a cell (IMX500 levels; the departure threshold is 2 % of the peak),
    and an exact clock was refused as 3.8 % off (a RUN of 1.64 ms in 433 samples; 18 of 1920 seeded short
    runs of test_energy_vs_timeline refused so). Cell means of a step from 0.265 W to 0.012 W at a known
    instant: the half-level crossing between the cells around it lies within f (0.5 - f) / (1 - f) ≤ 0.086
    of a cell of it, f the share of the step's cell before it (worked by hand for a step)."""
    dt = DT
    time_s = np.arange(400) * dt  # sample k is the mean over its cell [t_k - dt/2, t_k + dt/2)
    end_s = time_s[300] - dt / 2 + fraction * dt  # the retrieval ends `fraction` into cell 300
    active_w, idle_w = 0.265, 0.012
    lower = time_s - dt / 2
    inside = np.clip((end_s - lower) / dt, 0.0, 1.0)  # share of each cell before the end
    power_w = np.where(time_s < 20 * dt, idle_w, idle_w + (active_w - idle_w) * inside)
    power_w[:20] = idle_w
    found = run_end_s(time_s, power_w)
    assert found is not None and abs(found - end_s) <= 0.09 * dt


def test_a_map_a_stage_off_at_the_runs_ends_is_refused_where_the_true_one_passes() -> None:
    # The trace's axis is the device's (simulated_run: t = 0 at the first trigger, one shared clock), so the
    # true map is offset 0, ratio 1; one whose every edge sits an inference stage late (edges matched to
    # the next kind: inference ends taken for inference starts) puts the RUN's ends that far from the
    # envelope's. The tolerance is the envelope's own reading, 3 samples (no supply path, tick or map error).
    t, p, timings, span_s = traced_run(3)
    first_s = float(end_to_end_windows_s(timings)[0, 0])
    tolerance_s = envelope_tolerance_s(DT, 0.0, 0.0, 0.0)
    assert tolerance_s == pytest.approx(3 * DT)
    check_map_against_envelope(t, p, span_s, 1.0, 0.0, ends=MapEnds(0.0, 1.0, first_s, tolerance_s))
    late = MapEnds(PULSE_S, 1.0, first_s, tolerance_s)
    with pytest.raises(WindowMisplaced, match=r"matched to the wrong device edges.*origin_u_s") as excinfo:
        check_map_against_envelope(t, p, span_s, 1.0, 0.0, ends=late)
    # It names how far: the envelope sits one stage before the map's ends, to the envelope's own reading.
    named = re.search(r"([+-]\d+\.\d) µs off", str(excinfo.value))
    assert named is not None
    off_s = float(named.group(1)) * 1e-6
    assert abs(off_s + PULSE_S) <= tolerance_s
    # The same map placing windows by the device's timer (no located edge pinned it) is refused alike.
    with pytest.raises(WindowMisplaced, match="beyond the 15.0 µs its placement allows"):
        check_clock_within(t, p, span_s, 5e-3, ends=late)


def test_the_ends_tolerance_adds_the_supply_path_the_tick_and_three_map_sigmas() -> None:
    # Each part by hand: 3 samples of 2 µs, 7 τ of a 10 µs RC, a 1 µs tick, 3 × 0.5 µs of map.
    assert envelope_tolerance_s(2e-6, 10e-6, 1e-6, 0.5e-6) == pytest.approx(6e-6 + 70e-6 + 1e-6 + 1.5e-6)
