"""A record whose time origin is off by more than the locator was told, over many seeds: every one is
refused or measured within its stated uncertainty, and the same records placed right are all measured.

The bench of tests/test_fastlog_meter.py (TinyTracker on the IMX500 through the NGM202's FastLog, a 0.2 %
RC-oscillator clock, the record placed 0.3 ms off and the locator told it is exact) was refused for seeds
0-39 but seed 24, measured +284 % silently: its located edges were each another kind's (inference ends
taken for inference starts), and their map fitted a ratio within the envelope check's slack. These RUNs
are built here from the twin's own timeline and sample synthesis, so forty seeds take seconds; the truth is
the timeline's energy over the true stage spans, never the device's stamps. Before the fix the 0.3 ms
records of seeds 6, 12, 15 and 17 were measured 0.2-1 % off with 0.01-0.04 % stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.energy import EnergySamples, energy_from_trace
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from pytest_edgehil.sim.trace_synthesis import mean_power_per_sample

SEEDS = range(40)
DT_S = 2e-6  # the NGM202's finest FastLog interval
# IMX500 levels (W: idle, readout, inference, retrieval) and TinyTracker's stage times (s), each drawn ±1 %.
LEVELS_W = (0.012, 0.265, 0.0685, 0.265)
STAGES_S = (17.9e-3, 0.86e-3, 0.24e-3)
# A window is within its statement when its error is within this many of its stated standard uncertainties.
WITHIN_SIGMAS = 5.0


def rc_clock_run(seed: int, *, ppm: float = 2000.0, runs: int = 8,
                 noise_w: float = 0.4e-3) -> tuple[np.ndarray, np.ndarray, list[StageTiming], np.ndarray, np.ndarray]:
    """(trace time s with t = 0 at the first trigger, integrated samples W, the device's timings on a clock
    `ppm` fast, true inference J, true end-to-end J): a RUN with idle before it and a tenth of it after
    (what the meter's plan leaves), Gaussian noise of `noise_w`."""
    rng = np.random.default_rng(seed)
    idle_w, stage_w = LEVELS_W[0], LEVELS_W[1:]
    timeline = ActivityTimeline(idle_power_w=idle_w, supply_v=3.3)
    clock_s = 1.0
    timeline.append(StageSpan("idle", 0.0, clock_s, idle_w))
    edges = []
    for i in range(runs):
        durations = [d * (1 + 0.01 * rng.standard_normal()) for d in STAGES_S]
        row = np.concatenate([[clock_s], clock_s + np.cumsum(durations)])
        for name, a, b, w in zip(("readout", "inference", "retrieval"), row[:-1], row[1:], stage_w):
            timeline.append(StageSpan(name, float(a), float(b), w, name == "inference", i))
        edges.append(row)
        clock_s = float(row[-1])
    timeline.append(StageSpan("idle", clock_s, clock_s + 1.0, idle_w))
    e = np.array(edges)
    rate, trigger_s = 1 + ppm * 1e-6, float(e[0, 1])
    timings = [StageTiming(start_us=(b - trigger_s) * rate * 1e6, readout_us=(b - a) * rate * 1e6,
                           inference_us=(c - b) * rate * 1e6, retrieval_us=(d - c) * rate * 1e6) for a, b, c, d in e]
    t0_s = float(e[0, 0]) - 2e-3
    points = int((e[-1, 3] + 0.1 * (e[-1, 3] - e[0, 0]) - t0_s) / DT_S)
    power_w = mean_power_per_sample(timeline.snapshot(), idle_w, t0_s, DT_S, points)
    power_w = power_w + noise_w * rng.standard_normal(points)
    time_s = t0_s + np.arange(points) * DT_S - trigger_s
    inference_j = np.array([timeline.energy_between(b, c) for _, b, c, _ in e])
    end_to_end_j = np.array([timeline.energy_between(a, d) for a, _, _, d in e])
    return time_s, power_w, timings, inference_j, end_to_end_j


def _beyond_statement(samples: EnergySamples, inference_j: np.ndarray, end_to_end_j: np.ndarray) -> list[str]:
    """The windows whose error exceeds WITHIN_SIGMAS of their stated uncertainty, named with both."""
    out = []
    pairs = [("end-to-end", samples.end_to_end_j, samples.end_to_end_u_j, end_to_end_j)]
    if samples.inference_refusal is None:
        pairs.append(("inference", samples.inference_j, samples.inference_u_j, inference_j))
    for name, got, u, truth in pairs:
        for i in np.flatnonzero(np.abs(got - truth) > WITHIN_SIGMAS * u):
            out.append(f"{name} {i}: {got[i] / truth[i] - 1:+.3%} stated {u[i] / truth[i]:.3%}")
    return out


@pytest.mark.parametrize("ppm", [500.0, 2000.0])
def test_a_record_placed_off_is_refused_or_measured_within_its_statement_for_every_seed(ppm: float) -> None:
    silent = {}
    for seed in SEEDS:
        time_s, power_w, timings, inference_j, end_to_end_j = rc_clock_run(seed, ppm=ppm)
        try:
            samples = energy_from_trace(time_s - 0.3e-3, power_w, timings, origin_u_s=0.0)
        except MeasurementError:
            continue  # refused: typed, never a number
        wrong = _beyond_statement(samples, inference_j, end_to_end_j)
        if wrong:
            silent[seed] = wrong[:2]
    assert not silent, silent


def test_the_same_records_placed_right_are_measured_within_their_statement_for_every_seed() -> None:
    # The other side of the refusal: placed where the device's trigger is, every seed is measured, per
    # inference too, and every window within its statement (a check that refused these would be a fault).
    for seed in SEEDS:
        time_s, power_w, timings, inference_j, end_to_end_j = rc_clock_run(seed)
        samples = energy_from_trace(time_s, power_w, timings, origin_u_s=0.0)
        assert samples.inference_refusal is None, (seed, samples.inference_refusal)
        assert samples.inference_j.size == len(timings)
        assert not _beyond_statement(samples, inference_j, end_to_end_j), seed


def test_the_stated_inference_uncertainty_is_a_scale_for_its_error_over_every_seed() -> None:
    # Seed 40 of a wider sweep reads one inference window +0.118 % against 0.029 % stated (4.0 σ), whatever the
    # clock: the generator's noise is the same draw for every configuration, and its sum over that window alone
    # is +0.104 % (3.7 σ of the window's noise term; the edges' placement, level × position σ, is 0.004 µJ of the
    # 0.017 µJ stated). The same RUN without noise measures it exactly. Over all windows the errors in units of
    # their statement have a standard deviation of 1 (0.99 over 640 windows): a term missing from u shows as more.
    z = []
    for seed in SEEDS:
        time_s, power_w, timings, inference_j, _ = rc_clock_run(seed)
        samples = energy_from_trace(time_s, power_w, timings, origin_u_s=0.0)
        z.extend((samples.inference_j - inference_j) / samples.inference_u_j)
    spread = float(np.std(z))
    assert 0.8 < spread < 1.2, f"inference errors / stated σ: standard deviation {spread:.3f} over {len(z)} windows"
    time_s, power_w, timings, inference_j, _ = rc_clock_run(40, noise_w=0.0)
    clean = energy_from_trace(time_s, power_w, timings, origin_u_s=0.0)
    assert abs(clean.inference_j[6] / inference_j[6] - 1) < 1e-5
