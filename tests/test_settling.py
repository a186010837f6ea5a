"""The supply path's joint settling fit (measure.settling.supply_tau_s) on a Coral-like RUN sampled at
40.96 µs, the interval the N6705C runs MLPerf Tiny's 10 s hardware plan at: per-layer power inside the
inference is not a settling, a slow supply path is.

The trace is the twin's own supply-path model (sim.supply_path, checked against a fine-grid simulation
in test_supply_path.py) applied to a load whose spans are written here, so the truth is known: each step's
energy centroid lags its edge by the sum of the path's time constants (a unit-DC-gain cascade of
first-order stages delays energy by exactly that), and the path's τ is the one the trace was built with.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.measure.edge_locator import cumulative_energy, noise_w
from pytest_edgehil.measure.settling import supply_tau_s
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.supply_path import filtered_samples
from pytest_edgehil.sim.timeline import StageSpan

DT = 40.96e-6
IDLE_W, READOUT_W = 0.30, 0.953  # Coral Dev Board Micro, sim/profiles.toml
# Inference at 1.0035 W on average, in op segments ±5 % about it (the twin's layer_power_rel): (s, W).
LAYERS = ((0.15e-3, 1.000), (2.0e-3, 1.062), (9.0e-3, 0.960), (4.0e-3, 1.045), (12.85e-3, 1.012))
RETRIEVAL_S, READOUT_S = 0.3e-3, 6.1e-3
INFERENCES = 4


def coral_run() -> tuple[list[StageSpan], list[float]]:
    """(spans, device edges s): idle, then INFERENCES × (readout, inference in op segments, retrieval), idle."""
    spans, edges, t = [], [], 2e-3
    for n in range(INFERENCES):
        edges.append(t)
        spans.append(StageSpan("readout", t, t + READOUT_S, READOUT_W, run_index=n))
        t += READOUT_S
        edges.append(t)
        for length_s, power_w in LAYERS:
            spans.append(StageSpan("inference", t, t + length_s, power_w, run_index=n))
            t += length_s
        edges.append(t)
        spans.append(StageSpan("retrieval", t, t + RETRIEVAL_S, READOUT_W, run_index=n))
        t += RETRIEVAL_S
    edges.append(t)
    return spans, edges


def level_w(spans: list[StageSpan], at_s: float) -> float:
    return next((s.power_w for s in spans if s.start_s <= at_s < s.end_s), IDLE_W)


def fit(taus: tuple[float, ...]) -> float | None:
    """The joint τ fit over the run's steps, as `trace_windows.locate_edges` calls it."""
    spans, edges = coral_run()
    points = int((edges[-1] + 4e-3) / DT)
    clean = filtered_samples(spans, IDLE_W, 0.0, DT, points, taus, point_sampled=False)
    p = clean + np.random.default_rng(0).normal(0.0, 1.8e-3, points)  # the twin's trace noise, ≈ 1.8 mW
    bounds, _, _ = cumulative_energy(np.arange(points) * DT, p)
    # Every edge with a power step, where the locator finds it: its energy centroid.
    stepped = [e for e in edges if level_w(spans, e + 1e-9) != level_w(spans, e - 1e-9)]
    steps = [level_w(spans, e + 1e-9) - level_w(spans, e - 1e-9) for e in stepped]
    centroids = [e + sum(taus) for e in stepped]
    # The next device edge, stepped or not (a retrieval's end at the readout's level), on the trace axis.
    nexts = [next((f + sum(taus) for f in edges if f > e), np.inf) for e in stepped]
    return supply_tau_s(p, bounds, centroids, steps, nexts, noise_w(p))


def test_per_layer_power_beside_a_small_step_is_not_a_settling():
    """The bench's defaults (3 µs RC, 200 kHz front end) settle within one 40.96 µs sample: the trace shows
    no approach. The op segment 0.15 ms into each inference (+62 mW after a +47 mW readout-to-inference
    step) is a load change; the meter read it as a ≈ 300 µs settling and refused every Coral window."""
    assert fit(BenchPhysics().filter_taus_s) == 0.0


@pytest.mark.parametrize("tau_s", [60e-6, 150e-6])
def test_a_slow_supply_path_is_still_seen_with_the_layers_beside_it(tau_s):
    """A real RC: every step, the 0.65 W ones into and out of idle included, approaches its level with the
    path's τ; the fit names it (its grid is 7.5 % apart)."""
    taus = (tau_s, BenchPhysics().filter_taus_s[1])
    got = fit(taus)
    assert got is not None and got == pytest.approx(sum(taus), rel=0.12)
