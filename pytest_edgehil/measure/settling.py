"""Supply-path settling: how slowly the trace follows a power step, and how far the locator must reach.

Between the analyzer and the load sit an RC (sense/cable resistance × board decoupling) and the
analyzer's own front end: each power step reaches the trace as a first-order approach. The energy-centroid
locator (`trace_windows`) is exact once the step has settled inside its region, so the region must reach
SETTLE_COVER time constants past each edge (e^-7 ≈ 0.1 % of the step left: ≈ 0.003 % of a 0.23 ms window
beside the IMX500's 4× readout step). A region reaching only 20 µs leaves e^-20/6 ≈ 3.6 % of a 6 µs RC's
step unread, about 1 % of Q-Segment's inference window, silently (issue 10).

So the supply path's time constant is fitted once per trace, over every located step together
(`supply_tau_s`: one RC for the whole bench, so one τ; a joint fit is not fooled by one noisy edge the way
a per-edge fit is), the locator's region is widened to SETTLE_COVER·τ, and an edge whose neighbouring
stages are shorter than SETTLE_STAGE_TAUS·τ is refused. `settling_tau_s` is the per-edge fit, used when a RUN
has too few steps for the joint one. Pure functions on arrays; seconds and watts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The locator reads the levels this many time constants past the edge (see the module docstring).
SETTLE_COVER = 7.0
# ... and refuses an edge beside a stage shorter than this many (fitted) time constants. A stage's power
# is not flat (per-op power inside an inference), and a region reaching deep into it reads a level that is
# not the one at the edge: on Q-Segment's 0.23 ms inference behind a 15 µs RC (15 τ) that was +1.1 to
# +2.7 % silent, behind 12.5 µs (18 τ) +0.9 % worst, behind 10 µs (25 τ) +0.4 % (a fresh-user review).
SETTLE_STAGE_TAUS = 22.0
# A per-edge fit (short RUNs) reads this long after the step (or to the next edge).
_SETTLE_FIT_S = 40e-6
# An approach counts as one only when it carries this fraction of the step at its start: per-op power
# steps (piecewise flat, a few % of the level, anywhere in the stage) fit no such approach.
_SETTLE_MIN_AMPLITUDE = 0.25
_SETTLE_TAUS_S = np.geomspace(0.3e-6, 300e-6, 96)
# The joint fit needs this many located steps, each this many noise sigmas tall, and reads at most this
# long after each (a 50 µs RC must bend within the span to be told from a ramp).
JOINT_MIN_STEPS = 3
_REL_PRECISION = 1e-9  # a step's own misfit is never taken as smaller than this share of it (float round-off)
_JOINT_MIN_SIGMAS = 20.0
_JOINT_REACH_S = 400e-6


def _samples_after(p: np.ndarray, bounds: np.ndarray, centroid_s: float, reach_s: float,
                   min_samples: int = 4) -> tuple[np.ndarray, np.ndarray] | None:
    """(sample centres relative to the centroid, samples) from the centroid for `reach_s`, or None."""
    dt = float(bounds[1] - bounds[0])
    j0 = int(np.ceil((centroid_s - bounds[0]) / dt - 1e-9))
    j1 = min(int(np.floor((centroid_s + reach_s - bounds[0]) / dt)), p.size)
    if j0 < 0 or j1 - j0 < min_samples:
        return None
    return bounds[j0:j1] + dt / 2 - centroid_s, p[j0:j1]


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every τ of the grid: (rss, amplitude R, basis at x[0]) of y ≈ B + R·exp(−x/τ), B and R by least
    squares."""
    basis = np.exp(-x[None, :] / _SETTLE_TAUS_S[:, None])
    bc = basis - basis.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    var = np.sum(bc ** 2, axis=1)
    amplitude = np.divide(bc @ yc, var, out=np.zeros_like(var), where=var > 0)
    rss = np.sum((yc[None, :] - amplitude[:, None] * bc) ** 2, axis=1)
    return rss, amplitude, basis[:, 0]


def supply_tau_s(p: np.ndarray, bounds: np.ndarray, centroids_s: Sequence[float], steps_w: Sequence[float],
                 next_edges_s: Sequence[float], noise_w: float) -> float | None:
    """The supply path's time constant (s) from every located step at once; 0.0 when the steps show no
    first-order approach (settled within a sample, or only layer structure); None when too few steps are
    tall enough to tell (fewer than JOINT_MIN_STEPS: the caller falls back on per-edge fits).

    Each step's samples from its centroid to the next edge (at most _JOINT_REACH_S) are fitted with
    B_k + R_k·exp(−x/τ), with one τ for all and B_k, R_k per step. It counts as an approach when the
    approaches hold at least _SETTLE_MIN_AMPLITUDE of their step on the near side at the centroid (a
    first-order path: e^-1 ≈ 0.37, since the centroid lags the true edge by τ).

    Each step is weighed by what it can tell, inverse-variance: its size squared over the variance of its
    own best fit (at least the noise's), in the τ fit and in the approach's share (a weighted median). The
    supply path is linear: its approach is the same share of every step and fits every step down to the
    noise, so a step of S watts tells that share to within noise / S. What else moves the level after an
    edge does neither: per-layer power inside a stage is a fixed number of watts whatever the step beside
    it, and no single exponential fits it (Coral's ±5 % op power beside its 5 % readout-to-inference step
    read as a settling of ≈ 300 µs at 40.96 µs, and every window was refused, while its 0.65 W step into
    idle showed none). Such steps weigh little, and the tall clean ones, which layers cannot fake, decide.
    So do steps a periodic load rides on: weighed relative to themselves, the IMX500's 10 mW readout↔retrieval
    steps carrying a 1.8 mW, 1.2 kHz ripple outweighed every real approach, the fit saw none behind an 8 µs RC,
    and Q-Segment's inference came out +2 %, silently (tests/test_bench_sweep.py).
    """
    dt = float(bounds[1] - bounds[0])
    fits: list[tuple[np.ndarray, np.ndarray, float]] = []  # (rss in W² per τ, approach share per τ, weight)
    for c, step, nxt in zip(centroids_s, steps_w, next_edges_s):
        if not (np.isfinite(step) and abs(step) >= _JOINT_MIN_SIGMAS * noise_w and step != 0):
            continue
        got = _samples_after(p, bounds, c, min(nxt - c - dt, _JOINT_REACH_S), min_samples=8)
        if got is None:
            continue
        x, y = got
        rss, amplitude, _ = _fit(x, y / step)
        rss_w2 = rss * float(step) ** 2
        # Floored at the noise and, for a noiseless trace, at float precision relative to the step.
        variance = max(float(rss_w2.min()) / x.size, noise_w ** 2, (_REL_PRECISION * float(step)) ** 2)
        # -amplitude: the approach's part of the step at the centroid (e^-1 for one RC).
        fits.append((rss_w2 / variance, -amplitude, float(step) ** 2 / variance))
    if len(fits) < JOINT_MIN_STEPS:
        return None
    total = np.sum([f[0] for f in fits], axis=0)
    weights = [f[2] for f in fits]
    starts = [f[1] for f in fits]
    best = int(np.argmin(total))
    tau = float(_SETTLE_TAUS_S[best])
    start = _weighted_median([float(share[best]) for share in starts], weights)
    # A large approach that does not bend within the span is a path slower than the trace can tell: it is
    # returned (and refused by the caller's reach check), never read as "settled". So is a best fit at the
    # top of the grid whose approaches are large but of mixed sign: centroids placed before a slow path has
    # settled make the fitted approach swing either way (a 5 kHz front end, τ ≈ 32 µs: starts from −5 to
    # +1.3, median below the bar, and the 0.23 ms windows came out +21 to +92 %, silently).
    magnitude = _weighted_median([abs(float(share[best])) for share in starts], weights)
    slowest = best >= _SETTLE_TAUS_S.size - 3
    return tau if start >= _SETTLE_MIN_AMPLITUDE or (slowest and magnitude >= _SETTLE_MIN_AMPLITUDE) else 0.0


def _weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value at which the cumulative weight, in value order, first reaches half the total."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    cumulative = np.cumsum(w[order])
    return float(v[order][int(np.searchsorted(cumulative, 0.5 * cumulative[-1]))])


def settling_tau_s(p: np.ndarray, bounds: np.ndarray, centroid_s: float, next_edge_s: float,
                   step_w: float) -> float:
    """The time constant (s) of a first-order settling after the one step at `centroid_s`, when the samples
    show one that carries a real part of the step; else NaN.

    For RUNs with too few steps for `supply_tau_s`. The samples from the centroid to the next edge (at most
    _SETTLE_FIT_S, at least 8 of them) are fitted with B + R·exp(−x/τ) over a grid of τ.
    """
    dt = float(bounds[1] - bounds[0])
    if not np.isfinite(step_w) or step_w == 0 or dt > _SETTLE_FIT_S:
        return float("nan")  # a sample longer than the fit's reach holds the whole smear (window checks rule)
    got = _samples_after(p, bounds, centroid_s, min(next_edge_s - centroid_s - dt, max(_SETTLE_FIT_S, 8 * dt)))
    if got is None:
        return float("nan")  # too few samples after the step to see an approach (the window checks refuse)
    x, y = got
    rss, amplitude, basis0 = _fit(x, y)
    best = int(np.argmin(rss))
    tau = float(_SETTLE_TAUS_S[best])
    # An approach starts on the near side of the level it settles to (below it after a rising step), bends
    # within the fitted span (τ beyond twice the span is a ramp: layer structure), and carries the step.
    start = -amplitude[best] * basis0[best] / step_w
    if tau <= 2 * float(x[-1]) and start >= _SETTLE_MIN_AMPLITUDE:
        return tau
    return float("nan")


# An opening decay is read from this many falling samples at least.
_OPENING_MIN_SAMPLES = 3


def opening_decay_tau_s(time_s: np.ndarray, power_w: np.ndarray, idle_w: float,
                        threshold_w: float) -> tuple[float, int] | None:
    """(time constant s, index of the decay's last falling sample) when a record opens on a first-order
    decay toward `idle_w`: the previous activity draining through the supply path. None when it opens
    within `threshold_w` of idle, or on a level that does not fall by more than `threshold_w` over at
    least _OPENING_MIN_SAMPLES samples.

    Sample 0 is skipped (it may straddle the end of that activity); the fall runs from sample 1 while
    each sample is nearer idle than the one before and still more than `threshold_w` from it. Its distance
    from idle is fitted as A·exp(−t/τ) by least squares on the logarithm, weighted by the distance (the
    log of a sample d above idle with noise σ errs by σ/d).
    """
    p = np.asarray(power_w, dtype=np.float64)
    if p.size < _OPENING_MIN_SAMPLES + 2:
        return None
    sign = 1.0 if p[1] >= idle_w else -1.0
    # The opening's fall is short (a few τ); reading a bounded head keeps this O(1) per record.
    head = sign * (p[1:1 + 4096] - idle_w)
    if head[0] <= threshold_w:
        return None
    stops = np.flatnonzero(~((np.diff(head) < 0) & (head[1:] > threshold_w)))
    count = int(stops[0]) + 1 if stops.size else head.size  # falling samples from sample 1 on
    if count < _OPENING_MIN_SAMPLES or head[0] - head[count - 1] <= threshold_w:
        return None
    x = np.asarray(time_s, dtype=np.float64)[1:1 + count]
    d = head[:count]
    slope = float(np.polyfit(x - x[0], np.log(d), 1, w=d)[0])
    if not slope < 0:
        return None
    return -1.0 / slope, count
