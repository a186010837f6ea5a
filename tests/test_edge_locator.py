"""`measure.edge_locator.EdgeLocator.locate` on hand-made steps: an edge found is where the step is, to a
fraction of a sample, or not found at all (the map and the device's stamp then place it, with their bound).

A coarse device timer (a 50 µs tick beside TinyTracker's 0.86 ms inference) predicts edges up to a tick
off, further than the locator's ±25 µs region reaches: the true step then lies inside the few samples a
level is read from. The two-level centroid came out exactly m samples from the region's end wherever the
step lay inside those m samples, a located edge up to m samples off with a noise-sized uncertainty: 4 %
silent on an inference window (tests/test_bench_physics.py, seed 34).
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.measure.edge_locator import EdgeLocator, cumulative_energy

DT = 5.12e-6
A_W, B_W = 0.265, 0.0685  # readout, then inference (IMX500 profile levels)


def _locate(edge_s: float, predicted_s: float) -> tuple[float, float] | None:
    """Cell-mean samples of a step from A_W to B_W at `edge_s`; the locator asked about `predicted_s`.
    Returns (found edge s, its own 1-sigma s) or None."""
    t = np.arange(400) * DT
    lower = t - DT / 2
    before = np.clip((edge_s - lower) / DT, 0.0, 1.0)  # share of each cell before the step
    p = B_W + (A_W - B_W) * before
    bounds, cum, dt = cumulative_energy(t, p)
    locator = EdgeLocator(p, bounds, cum, dt, noise=1e-5)
    dev = np.array([predicted_s - 1e-3, predicted_s, predicted_s + 1e-3])  # neighbours far off
    hit = locator.locate(dev, 1, 0.0, 1.0, 0.0)
    return None if hit is None else (hit[0], hit[3])


@pytest.mark.parametrize("miss_samples", [0.0, 0.4, -0.4, 1.0, -1.0, 2.0, -2.0])
def test_a_step_inside_the_region_is_found_where_it_is(miss_samples: float) -> None:
    edge_s = 200.3 * DT
    found = _locate(edge_s, edge_s + miss_samples * DT)
    assert found is not None
    assert abs(found[0] - edge_s) <= 0.01 * DT  # a sharp step in cell means: its centroid is exact


@pytest.mark.parametrize("miss_samples", [-3.6, -3.9, -4.3, -4.6, 3.6, 3.9, 4.3, 4.6, 5.2, -5.2])
def test_a_step_inside_the_level_samples_is_not_found_at_the_wrong_place(miss_samples: float) -> None:
    """The prediction misses by 3.6-5.2 samples of the ±5 a region spans (a coarse timer's stamp): the step
    lies in the samples a level is read from, or just outside the region. Either the locator finds it where
    it is, or it finds nothing; before, it reported the region's m-th sample, up to 0.9 sample off."""
    edge_s = 200.3 * DT
    found = _locate(edge_s, edge_s + miss_samples * DT)
    assert found is None or abs(found[0] - edge_s) <= 0.01 * DT, (
        f"located {(found[0] - edge_s) / DT:+.2f} samples off the step")
