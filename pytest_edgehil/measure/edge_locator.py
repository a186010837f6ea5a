"""The one-edge locator: where a smeared power step sits in a trace, priced by its energy centroid.

Around an edge's predicted position the trace holds two levels, A before and B after, joined by the
smeared step. The edge's *energy centroid* c is where an ideal step between A and B would hold the same
energy as the samples do: ∫ y = A·(c − lo) + B·(hi − c) over [lo, hi]. Any filter with unit DC gain (an
RC, a first-order front end, both in cascade) moves energy in time but neither creates nor destroys it,
so the cumulative energy up to c, Y(lo) + A·(c − lo), is the load's cumulative energy up to its true
edge, whatever the filter; and a trigger latency shifts every c alike.

`trace_windows.locate_edges` predicts each edge from its clock map and asks `EdgeLocator` where it is.
Pure functions on arrays; trace time in seconds, t = 0 at the analyzer's trigger; powers in watts.
"""

from __future__ import annotations

import numpy as np

# A step counts as an edge the trace can locate when it stands this many noise sigmas tall ...
_MIN_STEP_SIGMAS = 8.0
# ... and is at least this fraction of the larger level (a 1 % wiggle is layer structure, not a stage edge).
_MIN_STEP_REL = 0.02
# Half-width of the region searched around a predicted edge: at least this many samples ...
_REGION_SAMPLES = 3
# ... and at least this long, so that a smeared step (RC and front end, τ of a few µs) has settled inside it.
SETTLE_S = 20e-6


def cumulative_energy(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(boundaries, cumulative energy at each boundary, dt): each sample is its cell's mean power."""
    dt = float(t[-1] - t[0]) / (t.size - 1)
    bounds = t[0] - dt / 2 + np.arange(t.size + 1) * dt
    cum = np.concatenate([[0.0], np.cumsum(p) * dt])
    return bounds, cum, dt


def noise_w(p: np.ndarray) -> float:
    """Per-sample noise from the median absolute first difference (steps are rare, so they do not count)."""
    if p.size < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(p))) / np.sqrt(2.0))


class EdgeLocator:
    """The trace's cumulative energy and the one-edge locator (energy centroid in a two-level region)."""

    def __init__(self, p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, dt: float, noise: float) -> None:
        self.p, self.bounds, self.cum, self.dt, self.noise = p, bounds, cum, dt, noise
        self.half_max = max(_REGION_SAMPLES * dt, SETTLE_S + dt)
        # Outside the RUN's first and last edge the trace holds whatever the board did before and after
        # (idle, another RUN's steps): a region widened for settling does not reach further out there.
        self.outer_half = np.inf

    def _region(self, dev: np.ndarray, k: int, offset: float, ratio: float,
                widen: float) -> tuple[int, float, int, float]:
        pred = offset + ratio * dev[k]
        gap_lo = (dev[k] - dev[k - 1]) * ratio if k > 0 else 2 * self.outer_half
        gap_hi = (dev[k + 1] - dev[k]) * ratio if k < dev.size - 1 else 2 * self.outer_half
        lo_s = pred - min(self.half_max + widen, gap_lo / 2)
        hi_s = pred + min(self.half_max + widen, gap_hi / 2)
        b = self.bounds
        j0 = int(np.ceil((max(lo_s, b[0]) - b[0]) / self.dt - 1e-9))
        j1 = int(np.floor((min(hi_s, b[-1]) - b[0]) / self.dt + 1e-9))
        return j0, (pred - b[0]) / self.dt, j1, min(gap_lo, gap_hi)

    def reach_s(self, dev: np.ndarray, k: int, ratio: float) -> float:
        """How far edge k's region can reach on either side: half the shorter neighbouring stage."""
        gap_lo = (dev[k] - dev[k - 1]) * ratio if k > 0 else np.inf
        gap_hi = (dev[k + 1] - dev[k]) * ratio if k < dev.size - 1 else np.inf
        return float(min(gap_lo, gap_hi) / 2)

    def min_step_w(self, a_w: float, b_w: float) -> float:
        """The smallest step (W) between levels `a_w` and `b_w` that counts as a stage edge."""
        return max(_MIN_STEP_SIGMAS * self.noise, _MIN_STEP_REL * max(abs(a_w), abs(b_w)))

    def usable(self, dev: np.ndarray, k: int, offset: float, ratio: float) -> tuple[bool, float, float]:
        """(whether both neighbouring stages hold two samples, the step seen across the edge, the smallest
        step that would count as an edge there: `min_step_w`; 0 and 0 where no level can be read)."""
        j0, j_pred, j1, gap = self._region(dev, k, offset, ratio, 0.0)
        if j_pred - j0 < 2 or j1 - j_pred < 2:
            # Fewer than two whole samples of a neighbouring stage: nothing to read its level from; at
            # the trace's own ends the edge is still priced by the map.
            return bool(gap >= 2 * self.dt and 2 < j_pred < self.p.size - 2), 0.0, 0.0
        m = max(1, min(2, int(j_pred - j0) // 2, int(j1 - j_pred) // 2))
        a_w, b_w = float(np.mean(self.p[j0:j0 + m])), float(np.mean(self.p[j1 - m:j1]))
        return True, b_w - a_w, self.min_step_w(a_w, b_w)

    def locate(self, dev: np.ndarray, k: int, offset: float, ratio: float,
               widen: float) -> tuple[float, float, float, float] | None:
        """(centroid s, cumulative energy J up to it, its 1-sigma J, the centroid's own 1-sigma s from the noise)
        of edge k, or None without a clear step.

        The region reaches SETTLE_S past the edge: a supply path that smears a step over longer (a 50 µs
        decoupling RC) is not seen through here; docs/measurement.md lists what that costs.
        """
        j0, j_pred, j1, _ = self._region(dev, k, offset, ratio, widen)
        if j_pred - j0 < 2 or j1 - j_pred < 2:
            return None
        p, dt = self.p, self.dt
        m = max(1, min(2, int(j_pred - j0) // 2, int(j1 - j_pred) // 2))
        a_w = float(np.mean(p[j0:j0 + m]))
        b_w = float(np.mean(p[j1 - m:j1]))
        if abs(b_w - a_w) < self.min_step_w(a_w, b_w):
            return None  # no step: the edge moves no energy, the map's position is as good as any
        lo_b, hi_b = self.bounds[j0], self.bounds[j1]
        c = lo_b + (self.cum[j1] - self.cum[j0] - b_w * (hi_b - lo_b)) / (a_w - b_w)
        u = self.noise * dt * np.sqrt(j1 - j0) * (1.0 + abs(a_w) / abs(a_w - b_w))
        # c = lo + (E − B·(hi − lo))/(A − B): the region's energy E and both levels (m samples each) are noisy,
        # and a level's error moves c by its distance from that end. A small step read across a wide region
        # (a pass-1 search) is microseconds uncertain: Coral's 50 mW steps at the NGM202's 2 µs, ±160 µs, ≈ 7 µs.
        c_u = centroid_u_s(self.noise, dt, j1 - j0, m, float(c - lo_b), a_w - b_w)
        # The levels are read from the region's first and last m samples. A step inside those (a prediction
        # a coarse device timer put up to a tick off) mixes that level, and the centroid then lands exactly m
        # samples from that end wherever the step lies in them (up to 1.8 samples off, with a noise-sized
        # uncertainty: 4 % silent on an inference window). Found only clear of them; else the map places it.
        margin = m * dt + max(3.0 * c_u, 0.01 * dt)
        if not lo_b + margin <= c <= hi_b - margin:
            return None
        return float(c), float(self.cum[j0] + a_w * (c - lo_b)), float(u), c_u


def centroid_u_s(noise_w: float, dt: float, cells: int, m: int, from_lo_s: float, step_w: float) -> float:
    """1-sigma error (s) of a centroid from independent per-sample noise `noise_w` (W), by linear propagation.

    c = lo + (Σ y_j·dt − B·L) / (A − B) over `cells` samples (L = cells·dt), A the mean of the first `m`,
    B of the last `m`: every sample moves c by dt/(A − B), the level samples also through A and B (the
    level samples are part of the sum: their terms are added before squaring, not as separate errors).
    `from_lo_s` is c − lo, `step_w` A − B. Measured on the IMX500 twin at 40.96 µs: 0.27 µs predicted
    against 0.28 µs seen about the clock map (flat stages both sides, the device's 0.25 µs tick included).
    """
    gain = np.full(cells, dt / step_w)
    gain[:m] -= from_lo_s / (m * step_w)
    gain[cells - m:] -= (cells * dt - from_lo_s) / (m * step_w)
    return float(noise_w * np.sqrt(np.sum(gain ** 2)))


def step_aware_cumulative(p: np.ndarray, bounds: np.ndarray, cum: np.ndarray, x: float, dt: float) -> float:
    """Energy up to instant x when the power steps at x: the straddling cell's part after x is priced at
    the next cell's level (as `stage_edges` does); at the trace's ends, linear within the cell."""
    j = int(np.clip(np.floor((x - bounds[0]) / dt), 0, p.size - 1))
    if j + 1 >= p.size:
        return float(np.interp(x, bounds, cum))
    return float(cum[j + 1] - p[j + 1] * (bounds[j + 1] - x))
