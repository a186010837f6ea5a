"""Edge kinds and edge pricing (measure/edge_kinds.py, measure/edge_pricing.py) against closed forms, a Monte
Carlo of the centroid, and a timeline's own energy: which kinds' centroids the map trusts, where each edge
is, what each edge's energy is, and the refusal where the samples cannot tell where an edge's energy lies.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.link.messages import StageTiming
from pytest_edgehil.measure.edge_kinds import EdgePositions, edge_positions
from pytest_edgehil.measure.edge_locator import EdgeLocator, centroid_u_s, cumulative_energy
from pytest_edgehil.measure.edge_pricing import price_edges
from pytest_edgehil.measure.energy import energy_from_trace
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from pytest_edgehil.sim.trace_synthesis import mean_power_per_sample

DT_S = 40.96e-6  # MLPerf Tiny's 10 s window on an N6705C
TICK_S = 0.25e-6  # the IMX500 twin's device timer


def test_the_centroids_stated_noise_is_its_scatter():
    """`centroid_u_s` (linear propagation) against 3000 noisy draws of one step read by the locator."""
    rng = np.random.default_rng(11)
    t = np.arange(40) * DT_S
    edge_s = 20.3 * DT_S
    clean = mean_power_per_sample([StageSpan("readout", -1.0, edge_s, 0.26), StageSpan("inference", edge_s, 1.0, 0.07)],
                                  0.0, 0.0, DT_S, t.size)
    noise_w = 0.5e-3
    centroids, stated = [], []
    for _ in range(3000):
        p = clean + noise_w * rng.standard_normal(t.size)
        bounds, cum, dt = cumulative_energy(t, p)
        hit = EdgeLocator(p, bounds, cum, dt, noise_w).locate(np.array([edge_s]), 0, 0.0, 1.0, 0.0)
        assert hit is not None
        centroids.append(hit[0])
        stated.append(hit[3])
    # 3000 draws tell a standard deviation to ≈ 1.3 %.
    assert np.std(centroids) == pytest.approx(np.mean(stated), rel=0.1)
    assert abs(np.mean(centroids) - edge_s) < 4 * np.std(centroids) / np.sqrt(len(centroids))


def test_centroid_noise_by_hand():
    """Six samples, two for each level, A − B = 1 W, dt = 1 s, c − lo = 3 s: c = lo + (Σ y − 6B)/(A − B), so
    a middle sample moves c by 1, a level sample by 1 − 3/2 (through A or B): σ = √(2·1 + 4·0.25) = √3."""
    assert centroid_u_s(1.0, 1.0, 6, 2, 3.0, 1.0) == pytest.approx(np.sqrt(3.0), rel=1e-12)
    # Four samples, all of them levels: c − lo is 2 whatever the noise (the region holds no edge to find).
    assert centroid_u_s(1.0, 1.0, 4, 2, 2.0, 1.0) == pytest.approx(0.0, abs=1e-12)


def _kinds_run(rng: np.random.Generator, offsets_s: dict[int, float], scatter_s: dict[int, float],
               inferences: int = 300, centroid_u: float = 0.25e-6):
    """(device stamps, kinds, true trace positions, centroids, centroid 1-sigma) of `inferences` inferences,
    three edge kinds each (0: readout start, 1: inference start, 2: inference end). The trace runs 20 ppm
    off the device's clock and 2 µs late; the device stamps each edge on a 0.25 µs timer (floor). A centroid
    is the true position plus its kind's constant offset, a phase-dependent bias uniform within ±scatter,
    and its own noise."""
    start = np.arange(inferences) * 17e-3
    dev = np.concatenate([start, start + 16.4e-3, start + 16.63e-3]) + rng.uniform(0, 1e-6, 3 * inferences)
    kinds = np.repeat([0, 1, 2], inferences)
    order = np.argsort(dev)
    dev, kinds = dev[order], kinds[order]
    true_s = 2e-6 + (1 + 20e-6) * dev
    bias = np.array([offsets_s.get(int(k), 0.0) + scatter_s.get(int(k), 0.0) * rng.uniform(-1, 1) for k in kinds])
    centroids = true_s + bias + centroid_u * rng.standard_normal(dev.size)
    return np.floor(dev / TICK_S) * TICK_S, kinds, true_s, centroids, np.full(dev.size, centroid_u)


def test_a_kind_whose_centroids_scatter_is_placed_by_the_map():
    """Per-op structure beside an edge moves its centroid with the edge's phase against the sample grid: a
    kind scattering ±1.5 µs (besides its 0.25 µs noise) is suspect, and the map of the other two places it."""
    rng = np.random.default_rng(3)
    stamped, kinds, true_s, centroids, centroid_u = _kinds_run(rng, {1: -0.5e-6}, {1: 1.5e-6})
    pos = edge_positions(stamped, centroids, centroid_u, np.ones(stamped.size, bool), kinds, TICK_S)
    assert pos is not None
    assert set(np.unique(kinds[pos.suspect])) == {1}
    assert pos.systematic_s == 0.0
    placed = kinds == 1
    off = np.abs(pos.position_s[placed] - true_s[placed])
    assert np.all(off <= 4 * pos.position_u_s[placed])
    assert off.max() < 0.2e-6  # the map and the device's 0.25 µs stamps, not the ±1.5 µs centroids
    assert pos.kind_offset_s[1] == pytest.approx(-0.5e-6, abs=0.15e-6)  # its centroids' mean offset, reported


def test_a_kind_off_the_others_is_the_one_held_responsible():
    """A constant offset (a spike as the stage starts moves every centroid alike): no extra scatter, but
    leaving that kind out settles the other two."""
    rng = np.random.default_rng(4)
    stamped, kinds, _, centroids, centroid_u = _kinds_run(rng, {1: 1.0e-6}, {})
    pos = edge_positions(stamped, centroids, centroid_u, np.ones(stamped.size, bool), kinds, TICK_S)
    assert pos is not None
    assert set(np.unique(kinds[pos.suspect])) == {1}
    assert pos.systematic_s == 0.0 and pos.kind_offset_s[1] == pytest.approx(1.0e-6, abs=0.1e-6)


def test_two_kinds_that_disagree_alike_leave_a_systematic():
    """Two kinds, one 1 µs off, both scattering alike: nothing says which is right; the map sits between
    them and states half the disagreement as a shift every edge may carry."""
    rng = np.random.default_rng(5)
    stamped, kinds, _, centroids, centroid_u = _kinds_run(rng, {1: 1.0e-6}, {})
    keep = kinds != 0
    pos = edge_positions(stamped[keep], centroids[keep], centroid_u[keep], np.ones(int(keep.sum()), bool),
                         kinds[keep], TICK_S)
    assert pos is not None
    assert not pos.suspect.any()
    assert pos.systematic_s == pytest.approx(0.5e-6, abs=0.05e-6)


def test_an_edge_between_flat_stages_is_priced_exactly():
    """Readout 0.26 W, inference 0.07 W, retrieval 0.267 W, integrating samples at 40.96 µs, no noise: at
    the true edges, the energy up to each is the timeline's own, whichever side prices it."""
    e0, e1 = 1.2345e-3, 1.2345e-3 + 230.7e-6
    spans = [StageSpan("readout", 0.0, e0, 0.26), StageSpan("inference", e0, e1, 0.07),
             StageSpan("retrieval", e1, e1 + 320e-6, 0.267), StageSpan("readout", e1 + 320e-6, 3e-3, 0.256)]
    n = 70
    t = np.arange(n) * DT_S
    p = mean_power_per_sample(spans, 0.0, 0.0, DT_S, n)
    bounds, cum, dt = cumulative_energy(t, p)
    x = np.array([e0, e1, e1 + 320e-6])  # the trace axis is the timeline's here
    timeline = ActivityTimeline(idle_power_w=0.0, supply_v=3.3)
    for span in spans:
        timeline.append(span)
    pos = EdgePositions(x, np.full(3, 1e-9), 0.0, 1e-9, np.zeros(3, bool), {}, 0.0, 1.0)
    steps = np.array([0.07 - 0.26, 0.267 - 0.07, 0.256 - 0.267])
    priced = price_edges(p, bounds, cum, dt, pos, np.ones(3, bool), np.array([1, 2, 0]), steps, 0.0, 1e-6)
    assert np.all(priced.side != 0)
    for k in range(3):
        assert priced.cumulative_j[k] == pytest.approx(timeline.energy_between(bounds[0], x[k]), rel=1e-9)
        assert priced.bias_j[k] == 0.0
    assert priced.cumulative_j[1] - priced.cumulative_j[0] == pytest.approx(0.07 * (e1 - e0), rel=1e-9)


def _spiked_run(spike_w: float, seed: int, runs: int = 60, dt_s: float = 20.48e-6):
    """A RUN whose inference opens with a 3 µs spike (an NPU's inrush) between flat stages of different
    levels (readout 0.9 W, inference 0.2 W, retrieval 0.5 W), integrating samples with 0.2 % noise:
    (samples of energy_from_trace, the timeline's true inference energies)."""
    rng = np.random.default_rng(seed)
    timeline = ActivityTimeline(idle_power_w=0.05, supply_v=3.3)
    clock = 1.0
    timeline.append(StageSpan("idle", 0.0, clock, 0.05))
    timings, edges, first = [], [], None
    for i in range(runs):
        r, inf, q = (d * (1 + 0.01 * rng.standard_normal()) for d in (1.2e-3, 0.23e-3, 0.24e-3))
        timeline.append(StageSpan("readout", clock, clock + r, 0.9, False, i))
        clock += r
        first = clock if first is None else first
        timeline.append(StageSpan("inference", clock, clock + 3e-6, 0.2 + spike_w, True, i))
        timeline.append(StageSpan("inference", clock + 3e-6, clock + inf, 0.2, True, i))
        timings.append(StageTiming((clock - first) * 1e6, r * 1e6, inf * 1e6, q * 1e6))
        edges.append((clock, clock + inf))
        clock += inf
        timeline.append(StageSpan("retrieval", clock, clock + q, 0.5, False, i))
        clock += q
    timeline.append(StageSpan("idle", clock, clock + 1.0, 0.05))
    t0 = first - 2e-3 + rng.uniform(0, dt_s)
    n = int((clock + 1e-3 - t0) / dt_s)
    p = mean_power_per_sample(timeline.snapshot(), 0.05, t0, dt_s, n) * (1 + 2e-3 * rng.standard_normal(n))
    truth = np.array([timeline.energy_between(a, b) for a, b in edges])
    return energy_from_trace(t0 - first + np.arange(n) * dt_s, p, timings), truth


def test_energy_a_sample_cannot_place_is_refused():
    """A 0.3 W spike for 3 µs as each inference starts (0.9 µJ, 2 % of the window) sits inside one 20.48 µs
    sample: it moves every centroid of that kind by 1.3 µs, and where it lies, before or after the edge, the
    samples cannot tell. Was −2.5 % on every window, silently; now refused, naming why and what to change."""
    samples, _ = _spiked_run(0.3, seed=1)
    refusal = samples.inference_refusal
    assert isinstance(refusal, CannotResolve) and samples.count == 0
    text = str(refusal)
    assert refusal.window.startswith("inference window") and "20.48 µs sample interval" in text
    assert "not flat within a sample" in text and "over the 1% a figure may carry" in text
    assert "finer sample interval" in refusal.fix and "stage-only loop" in refusal.fix


def test_a_small_spike_is_measured_within_its_stated_bound():
    """A 0.05 W spike (0.15 µJ, 0.3 % of the window): measured, every inference within 4 of its stated σ."""
    samples, truth = _spiked_run(0.05, seed=2)
    assert samples.inference_refusal is None and samples.count == 60
    assert np.all(np.abs(samples.inference_j - truth) <= 4 * samples.inference_u_j)
