"""The trace's own timing of each inference stage: from the power step into it to the step out of it.

`trace_inference_s` is a second latency beside the device's timer: the distance between the energy centroids
of an inference's start and end (`edge_locator`; a common delay, trigger latency or supply path, cancels).
It exists only where the stage stands out in power from its neighbours at both edges.

Whether it does is judged per edge *kind* over the RUN (every inference start together, every inference end
together), not per edge. Each edge alone is a step read from a few samples against a floor (2 % of its
level, 8 noise σ: `EdgeLocator.min_step_w`); a kind whose steps sit near that floor had some edges clear it
by noise and others not, so whether the figure existed at all changed with the draw. Q-Segment on the Coral
twin: the step into its inference reads about −15 mW against a 19 mW floor (its first ops draw less than the
stage's mean), and 14 of 40 bench seeds timed one inference in 30 while the rest timed none; a suite run
under xdist (its jitter drawn in another order) recorded `trace_inference_ms` where a serial one did not.
A kind now stands out only when the median of its steps clears the median floor by `_MARGIN_SE` standard
errors of that median: one borderline kind gives the same answer on every seed, and a kind well clear of
the floor (the IMX500's 190 mW steps, the step out of Coral's inference at −65 mW) is timed as before.

Pure functions on arrays; seconds and watts.
"""

from __future__ import annotations

import numpy as np

from pytest_edgehil.measure.device_edges import edge_index
from pytest_edgehil.measure.trace_windows import EdgeFit

# A kind stands out when its median step clears the floor by this many standard errors of the median: a
# kind whose steps sit at the floor passes by chance with P(z > 3) ≈ 0.13 % per RUN, not one edge in two.
_MARGIN_SE = 3.0
# The median of n normal values has a standard error √(π/2) ≈ 1.2533 times the mean's.
_MEDIAN_SE = float(np.sqrt(np.pi / 2.0))


def kind_stands_out(step_w: np.ndarray, floor_w: np.ndarray, noise_w: float) -> bool:
    """Whether one kind of edge (the same stage boundary in every inference of a RUN) is a distinct power step.

    `step_w`: the step read across each of its edges (W, after − before); `floor_w`: the smallest step that
    counts as an edge at each (W, `EdgeLocator.min_step_w`); `noise_w`: per-sample noise (W). The median step
    keeps its sign, so steps that change sign from edge to edge (layer structure) do not add up; its standard
    error comes from the steps' own scatter, at least the per-sample noise. No edges: False.
    """
    steps, floors = np.asarray(step_w, dtype=np.float64), np.asarray(floor_w, dtype=np.float64)
    if steps.size == 0:
        return False
    spread_w = float(np.std(steps, ddof=1)) if steps.size > 1 else 0.0
    se_w = _MEDIAN_SE * max(spread_w, noise_w) / np.sqrt(steps.size)
    return bool(abs(float(np.median(steps))) - float(np.median(floors)) > _MARGIN_SE * se_w)


def trace_inference_s(fit: EdgeFit, inference_w: np.ndarray) -> tuple[np.ndarray, str]:
    """(each inference's length on the trace, s, NaN where the trace cannot time it; why, for the first such).

    `inference_w`: the device's inference windows (n × 2, device seconds) whose edges `fit` located.
    """
    ends = edge_index(fit.device_s, inference_w)
    if ends.size == 0:
        return np.zeros(0), ""
    floor_w = fit.step_floor_w if fit.step_floor_w is not None else np.zeros_like(fit.step_w)
    trace_s = fit.centroid_s[ends[:, 1]] - fit.centroid_s[ends[:, 0]]
    for col, name in ((0, "inference start"), (1, "inference end")):
        edges = np.unique(ends[:, col])
        usable = edges[fit.usable[edges] & (floor_w[edges] > 0)]
        if not kind_stands_out(fit.step_w[usable], floor_w[usable], fit.noise_w):
            step = float(np.median(fit.step_w[usable])) if usable.size else 0.0
            floor = float(np.median(floor_w[usable])) if usable.size else 0.0
            note = (f"{name}: found no distinct edge: its power step reads {step * 1e3:+.1f} mW (median of "
                    f"{usable.size} edges) against the {floor * 1e3:.1f} mW a stage edge needs (2 % of its level "
                    f"or 8 noise σ) by {_MARGIN_SE:g} standard errors: the inference stage does not stand out in "
                    "power from its neighbours there, so the trace cannot time it (its energy is still measured)")
            return np.full(ends.shape[0], np.nan), note
    note = ""
    if np.isnan(trace_s).any():
        i = int(np.flatnonzero(np.isnan(trace_s))[0])
        note = (f"inference {i}: found no distinct edge: its inference stage does not stand out in power "
                "from its neighbours, so the trace cannot time it (its energy is still measured)")
    return trace_s, note
