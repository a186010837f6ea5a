"""Window energies from the located stage edges: each window is the difference of its two edges' cumulative
energies (`trace_windows.locate_edges`), with its 1-sigma uncertainty and its worst-case systematic part.

The uncertainty adds the noise of the samples across the window, each edge's own (random) pricing error,
the clock ratio's error stretching the window, and the systematic part: each edge's level bias and the
clock map's shared offset bound at the difference of the two edges' levels (`edge_pricing`). Windows that
cannot be priced (fewer than two samples, an edge beside an unsettled step or a stage shorter than two
samples) raise `CannotResolve`. Pure functions on arrays; seconds, watts, joules.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_edgehil.errors import CannotResolve
from pytest_edgehil.measure.device_edges import edge_index
from pytest_edgehil.measure.settling import SETTLE_STAGE_TAUS
from pytest_edgehil.measure.trace_windows import EdgeFit


def window_energies(fit: EdgeFit, windows_dev_s: np.ndarray, names: Sequence[str],
                    fix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy J, 1-sigma uncertainty J, trace length s) of each [d0, d1] device-time window (shape (m, 2)).

    Raises CannotResolve naming the first window that holds fewer than two samples or whose edge sits
    beside a stage shorter than two samples; `fix` is the advice it carries.
    """
    idx = edge_index(fit.device_s, windows_dev_s)
    i0, i1 = idx[:, 0], idx[:, 1]
    length_s = fit.position_s[i1] - fit.position_s[i0]
    dt = fit.sample_interval_s
    for w in range(len(names)):
        interval = (float(fit.position_s[i0[w]]), float(fit.position_s[i1[w]]))
        if length_s[w] < 2 * dt:
            raise CannotResolve(names[w], interval, dt, "the window holds fewer than two samples", fix)
        unsettled = [float(fit.settle_tau_s[i]) for i in (i0[w], i1[w]) if not np.isnan(fit.settle_tau_s[i])]
        if unsettled:
            raise CannotResolve(
                names[w], interval, dt,
                f"the power step at its edge settles with a time constant of ≈ {max(unsettled) * 1e6:.3g} µs "
                f"(a first-order approach seen in the trace), and a stage beside that edge is shorter than "
                f"{SETTLE_STAGE_TAUS:g} time constants, so the step never settles where its level could be read: "
                "the supply path between analyzer and load (board decoupling, the analyzer's front end) smears "
                "the window's edges",
                "measure at the board's load side or with a wider analyzer front end, or measure the stage's "
                "energy with a stage-only loop (many back-to-back inferences in one window, as MLPerf Tiny "
                "does) so the edges matter once per run")
        if not (fit.usable[i0[w]] and fit.usable[i1[w]]):
            raise CannotResolve(names[w], interval, dt,
                                "an edge of it lies beside a stage shorter than two samples, so the trace "
                                "cannot say where the power steps", fix)
    energy = fit.cumulative_j[i1] - fit.cumulative_j[i0]
    cells = length_s / dt
    noise_j = fit.noise_w * dt * np.sqrt(cells)
    clock_j = np.abs(energy) * fit.clock_ratio_u  # a ratio error stretches the window
    systematic_j = window_systematic_j(fit, idx)
    u = np.sqrt(noise_j ** 2 + fit.edge_u_j[i0] ** 2 + fit.edge_u_j[i1] ** 2 + clock_j ** 2 + systematic_j ** 2)
    return energy, u, length_s


def window_systematic_j(fit: EdgeFit, idx: np.ndarray) -> np.ndarray:
    """Worst-case systematic error (J) of each window whose edges are the rows of `idx` (shape (m, 2)): its
    edges' level biases, and the clock map's shared offset bound at the difference of their levels (a common
    shift moves the window's start and end alike, so only their levels' difference prices it)."""
    if fit.bias_j is None or fit.priced_level_w is None:
        return np.zeros(idx.shape[0])
    i0, i1 = idx[:, 0], idx[:, 1]
    shared_j = np.abs(fit.priced_level_w[i1] - fit.priced_level_w[i0]) * fit.map_systematic_s
    return fit.bias_j[i0] + fit.bias_j[i1] + shared_j

