"""The supply path's closed-form response (sim.supply_path) against a brute-force reference: the load's
exact power on a grid 1/1024 of a sample, through each first-order stage by its exact zero-order-hold
recursion, then averaged over (or read at) each sample. Energy is kept; a span open at the history start
is taken as settled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from pytest_edgehil.sim.supply_path import filtered_samples, reach_s, ripple_samples
from pytest_edgehil.sim.timeline import LoadRipple, StageSpan
from pytest_edgehil.sim.trace_synthesis import mean_power_per_sample

IDLE_W = 0.01
DT = 5.12e-6


def load(seed: int, count: int = 120) -> list[StageSpan]:
    """Spans of random length and power with idle gaps (some adjacent), in time order."""
    rng = np.random.default_rng(seed)
    spans, t = [], 0.0
    for _ in range(count):
        t += rng.choice([0.0, rng.uniform(0.2e-6, 40e-6)])
        length = rng.uniform(0.3e-6, 90e-6)
        spans.append(StageSpan("inference", t, t + length, float(rng.uniform(0.02, 0.5))))
        t += length
    return spans


def reference(spans, t0_s, points, taus, *, point, sub=1024):
    h = DT / sub
    settle = math.ceil(reach_s(taus) / h)
    fine = mean_power_per_sample(spans, IDLE_W, t0_s - DT / 2 - settle * h + h / 2, h, (points + 1) * sub + settle)
    for tau in taus:
        a = math.exp(-h / tau)
        ends = lfilter([1 - a], [1, -a], fine, zi=[a * fine[0]])[0]
        begins = np.concatenate([[fine[0]], ends[:-1]])
        fine = fine + (begins - fine) * (tau / h) * (1 - a)  # each cell's mean, the next stage's input
    cells = fine[settle:settle + points * sub].reshape(points, sub)
    return 0.5 * (cells[:, sub // 2 - 1] + cells[:, sub // 2]) if point else cells.mean(axis=1)


@pytest.mark.parametrize("taus", [(3e-6, 0.796e-6), (50e-6,), (0.8e-6, 0.796e-6), (20e-6, 3e-6)])
@pytest.mark.parametrize("point", [False, True])
def test_the_closed_form_matches_a_fine_grid_simulation(taus, point):
    spans = load(seed=len(taus) + int(point))
    t0_s = 150e-6  # inside the load: spans before it are history, one is open at the window's start
    points = int((spans[-1].end_s - t0_s) / DT) + 20
    got = filtered_samples(spans, IDLE_W, t0_s, DT, points, taus, point_sampled=point)
    want = reference(spans, t0_s, points, taus, point=point)
    assert got.shape == (points,)
    # The reference's own grid error is ~1e-6 of the 0.5 W peak for point samples (two cells around
    # the instant), far less for means; the former 1/14 grid was off by up to 13 mW.
    assert np.abs(got - want).max() <= (2e-5 if point else 2e-6)


def test_integrating_samples_keep_the_energy_and_steps_before_the_reach_do_not_matter():
    spans = load(seed=7)
    t0_s = -300e-6  # the whole load and its settling inside the window
    points = int((spans[-1].end_s - t0_s) / DT) + 100
    taus = (3e-6, 0.796e-6)
    filtered = filtered_samples(spans, IDLE_W, t0_s, DT, points, taus, point_sampled=False)
    exact = mean_power_per_sample(spans, IDLE_W, t0_s, DT, points)
    assert filtered.sum() == pytest.approx(exact.sum(), rel=1e-12)  # unit DC gain: no energy lost or made
    assert np.abs(filtered - exact).max() > 1e-3  # and the edges really are smoothed
    # A capture hands over only the spans ending after the reach before its window (the analyzer twin's
    # `spans_from(analog_history_start_s(...))`): the samples are the same as from the whole history.
    late = 2_000e-6
    history_s = late - DT / 2 - reach_s(taus)
    recent = [s for s in spans if s.end_s > history_s]
    assert len(recent) < len(spans)
    assert np.array_equal(filtered_samples(recent, IDLE_W, late, DT, 50, taus, point_sampled=False),
                          filtered_samples(spans, IDLE_W, late, DT, 50, taus, point_sampled=False))


def test_without_filters_the_samples_are_the_loads_own():
    spans = load(seed=3)
    assert np.array_equal(filtered_samples(spans, IDLE_W, 0.0, DT, 200, (), point_sampled=False),
                          mean_power_per_sample(spans, IDLE_W, 0.0, DT, 200))
    point = filtered_samples(spans, IDLE_W, 0.0, DT, 200, (), point_sampled=True)
    t = np.arange(200) * DT
    inside = [next((s.power_w for s in spans if s.start_s <= ti < s.end_s), IDLE_W) for ti in t]
    assert np.array_equal(point, np.array(inside))


@pytest.mark.parametrize("taus", [(3e-6,), (3e-6, 0.796e-6)])
@pytest.mark.parametrize("t0_s", [0.0, 0.017, 3.3])
def test_a_point_sample_at_a_steps_instant_reads_the_filters_continuous_output(taus, t0_s):
    # A low-pass's output is continuous: a sample taken at the very instant the load steps still reads the
    # level before it (S(0) = 0). The twin read the level after it there, a jump no filter passes; a FastLog
    # record starting as the device's last span ended (the twin arms at that instant) then opened on idle,
    # jumped back up and decayed, and every point-sampled NGM202 bench was refused as SupplyPathTooSlow.
    # Late in a session (t0 0.017 s, 3.3 s) the same instant, computed once absolute and once relative to the
    # window, differed by 1e-18 to 1e-16 s: the jump came back, and a trigger firing at the edge (zero latency)
    # put it under the first inference's start every time: +2.1 % on that window, silently.
    high_w = 0.3
    step_s = t0_s + 10 * DT  # the load drops from high_w to idle exactly at sample 10's instant
    spans = [StageSpan("readout", t0_s - 1e-3, step_s, high_w)]
    got = filtered_samples(spans, IDLE_W, t0_s, DT, 20, taus, point_sampled=True)
    u = np.arange(20) * DT - 10 * DT
    if len(taus) == 1:  # y(t) = idle + (high − idle)·e^(−u/τ) from the step on (one RC)
        response = np.exp(-np.maximum(u, 0.0) / taus[0])
    else:  # two distinct stages: 1 − S(u) = (τ1·e^(−u/τ1) − τ2·e^(−u/τ2)) / (τ1 − τ2)
        t1, t2 = taus
        v = np.maximum(u, 0.0)
        response = (t1 * np.exp(-v / t1) - t2 * np.exp(-v / t2)) / (t1 - t2)
    want = IDLE_W + (high_w - IDLE_W) * np.where(u < 0, 1.0, response)
    assert got[10] == pytest.approx(high_w, rel=1e-9)
    np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize("taus", [(), (3e-6, 0.796e-6), (50e-6,)])
@pytest.mark.parametrize("point", [False, True])
def test_the_loads_ripple_matches_a_fine_grid_simulation(taus, point):
    # A 1.2 kHz ripple through the same exact per-cell recursion as `reference`, from long enough before the
    # window that the filters' start-up transient has died (the ripple runs for ever on a bench).
    ripple = LoadRipple(0.004, 1.2e3)
    sub, t0_s, points = 256, 0.0123, 300
    h = DT / sub
    settle = math.ceil(max((*taus, 1e-6)) * 60 / h)
    start = t0_s - DT / 2 - settle * h
    omega = 2 * math.pi * ripple.frequency_hz
    edges = start + np.arange((points + 1) * sub + settle + 1) * h
    fine = ripple.amplitude_w * (np.cos(omega * edges[:-1]) - np.cos(omega * edges[1:])) / (omega * h)
    for tau in taus:
        a = math.exp(-h / tau)
        ends = lfilter([1 - a], [1, -a], fine, zi=[a * fine[0]])[0]
        begins = np.concatenate([[fine[0]], ends[:-1]])
        fine = fine + (begins - fine) * (tau / h) * (1 - a)
    cells = fine[settle:settle + points * sub].reshape(points, sub)
    want = 0.5 * (cells[:, sub // 2 - 1] + cells[:, sub // 2]) if point else cells.mean(axis=1)
    got = ripple_samples(ripple, t0_s, DT, points, taus, point_sampled=point)
    assert np.abs(got - want).max() <= 1e-6 * ripple.amplitude_w * 10
    # Integrating samples of an unfiltered ripple hold its energy exactly: the truth's closed form.
    if not taus and not point:
        window_j = ripple.energy_j(t0_s - DT / 2, t0_s + (points - 0.5) * DT)
        assert got.sum() * DT == pytest.approx(window_j, rel=1e-9)
