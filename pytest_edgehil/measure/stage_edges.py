"""Window energies with step-aware edges: the partial first and last sample of a trigger-delimited window.

A device changes stage (readout → inference → retrieval) exactly where its firmware moves the trigger
line, so the power inside a stage window is flat up to the window's edges and steps there. A digitizer
sample that straddles such an edge mixes both levels; plain trapezoids (kept as a reference oracle in
`tests/oracles.py`) smear the step across the sample and err by up to about step·dt/4 per edge on
average — 3 % of a 0.23 ms window at 200 kS/s when the neighbouring stage draws 4x the power, as the
IMX500's readout does.

Here each sample is read as the mean power over its own interval [t_i − dt/2, t_i + dt/2] (an
integrating converter, as averaging digitizers and the analyzer twin deliver). A straddling sample's
energy is split exactly: its whole energy, minus the part outside the window, where the outside level is
read from the neighbouring sample that lies wholly outside. What remains is the noise of two samples.

Error bound: with f the fraction of the straddling sample's interval inside the window and q the true
mean power of its outside part, an edge errs by (1 − f)·dt·(q − p_neighbour), i.e. zero when the
outside stage is flat for a sample interval past the edge and at most dt·|ΔP| otherwise. A point-
sampling (non-integrating) digitizer adds its own aliasing on top; the analyzer twin integrates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError


def stage_window_energies_j(time_s: ArrayLike, power_w: ArrayLike, windows_s: ArrayLike) -> np.ndarray:
    """Energy in joules of each [t0, t1] row of `windows_s` (shape (m, 2), seconds), for a uniformly
    sampled trace (`time_s` in s, `power_w` in W, each sample the mean over its own interval).

    Whole samples inside the window are summed (sample·dt); the sample straddling each edge contributes
    its energy minus the outside part, priced at the neighbouring outside sample (see the module doc for
    the error bound). Returns shape (m,) joules. Needs one whole sample outside each edge (the neighbour
    that gives the outside level) and at least two samples' worth of window; raises MeasurementError
    naming the window otherwise.
    """
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    windows = np.atleast_2d(np.asarray(windows_s, dtype=np.float64))
    if t.ndim != 1 or p.shape != t.shape or t.size < 4:
        raise MeasurementError(f"trace must be two equal 1-D arrays of >= 4 samples, got {t.shape} and {p.shape}")
    if windows.size == 0:
        return np.zeros(0)
    dt = float(t[-1] - t[0]) / (t.size - 1)
    # Index of the sample cell that holds each edge (cells are centred on the sample instants).
    cell = np.floor((windows - t[0]) / dt + 0.5).astype(np.int64)
    a, b = cell[:, 0], cell[:, 1]
    bad = (a < 1) | (b > t.size - 2) | (windows[:, 1] - windows[:, 0] < 2 * dt)
    if np.any(bad):
        i = int(np.argmax(bad))
        w0, w1 = windows[i]
        raise MeasurementError(
            f"window [{w0 * 1e3:.4f}, {w1 * 1e3:.4f}] ms needs at least 2 samples of {dt * 1e6:.4g} µs and one "
            f"whole sample outside each edge within the trace [{t[0] * 1e3:.4f}, {t[-1] * 1e3:.4f}] ms; "
            "acquire more pre-trigger (or post-trigger) points, or sample faster")
    prefix = np.concatenate([[0.0], np.cumsum(p - p[0])])  # offset keeps round-off near window scale
    interior_j = ((prefix[b] - prefix[a + 1]) + p[0] * (b - a - 1)) * dt  # whole cells a+1 … b-1
    inside_a = (t[a] + dt / 2 - windows[:, 0]) / dt  # fraction of cell a inside the window
    inside_b = (windows[:, 1] - (t[b] - dt / 2)) / dt
    edge_a_j = (p[a] - (1.0 - inside_a) * p[a - 1]) * dt
    edge_b_j = (p[b] - (1.0 - inside_b) * p[b + 1]) * dt
    return interior_j + edge_a_j + edge_b_j
