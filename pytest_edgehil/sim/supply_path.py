"""The supply path's response, in closed form: what an analyzer samples of a load whose power steps.

The load's power is piecewise constant (idle, then each stage's or op segment's level). Between it and the
analyzer's ADC sit one or two first-order low-passes of unit DC gain (the board's decoupling RC, the
analyzer's front end; `BenchPhysics.filter_taus_s`). Filtering is linear, so the filtered power is the
unfiltered one plus, after each step of height ΔP at t_j, ΔP·E(t − t_j), where E = S − 1 is the cascade's
step response S minus the ideal step. E decays within tens of time constants, so each step touches only
the few samples after it: O(samples + steps × reach) where a fine grid with a recursive filter over the
whole window cost O(samples × 14 × filters) (a quarter of `pytest suites/ --device=all`).

For a cascade of first-order stages with distinct time constants τ₁, τ₂:
    S(t) = 1 − Σᵢ cᵢ·e^(−t/τᵢ),  cᵢ = Πₖ≠ᵢ τᵢ/(τᵢ − τₖ)          (one stage: c = 1)
and for two equal ones S(t) = 1 − (1 + t/τ)·e^(−t/τ). A sample that integrates over [a, b] sees the mean
of the filtered power, i.e. ΔP·(D(b − t_j) − D(a − t_j))/(b − a) added to the unfiltered mean, with
D(u) = ∫₀ᵘ E = −Σᵢ cᵢτᵢ(1 − e^(−u/τᵢ)) (equal: −2τ + (2τ + u)·e^(−u/τ)); a point sample at t sees ΔP·E(t − t_j).
Before the history start the path is taken as settled (the level there held for ever), as a bench
powered up long before the capture is.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from pytest_edgehil.sim.timeline import LoadRipple, StageSpan
from pytest_edgehil.sim.trace_synthesis import mean_power_per_sample

# After this many of the slowest time constant a step's transient is below 1e-13 of its height (c up to
# 100 for time constants 1 % apart): it no longer changes any sample.
REACH_TAUS = 40.0
_EQUAL_REL = 0.01  # two time constants closer than this are one double pole (the distinct form cancels)
_MAX_CELLS = 4_000_000  # steps × samples-per-step handled at once (memory)


def reach_s(taus: tuple[float, ...]) -> float:
    """How long before a window its steps still change its samples (s); 0 without filters."""
    return REACH_TAUS * max(taus) if taus else 0.0


def filtered_samples(spans: list[StageSpan], idle_power_w: float, t0_s: float, sample_interval_s: float,
                     points: int, taus: tuple[float, ...], *, point_sampled: bool) -> np.ndarray:
    """Power per sample (W, shape (points,)) at t_i = t0 + i·dt after the low-passes `taus` (s, at most two):
    the mean over [t_i − dt/2, t_i + dt/2], or the value at t_i if `point_sampled`. `spans` in time order,
    idle power between them; steps before t0 − dt/2 − `reach_s(taus)` are taken as settled."""
    dt = sample_interval_s
    instants_s = t0_s + np.arange(points) * dt
    if point_sampled:
        base = _levels_at(spans, idle_power_w, instants_s)
    else:
        base = mean_power_per_sample(spans, idle_power_w, t0_s, dt, points)
    if not taus:
        return base
    start_s = t0_s - dt / 2 - reach_s(taus)
    step_t, step_w = _steps(spans, idle_power_w, start_s, t0_s + points * dt)
    if step_t.size == 0:
        return base
    kernel = _Kernel(taus)
    rel_t = step_t - t0_s  # relative to the window: sample instants are then i·dt exactly
    per_step = math.ceil((reach_s(taus) + dt) / dt) + 2
    first = np.clip(np.floor((rel_t - dt / 2) / dt).astype(np.int64) + 1, 0, points)
    correction = np.zeros(points)
    batch = max(1, _MAX_CELLS // per_step)
    offsets = np.arange(per_step)
    for lo in range(0, step_t.size, batch):
        idx = first[lo:lo + batch, None] + offsets
        valid = idx < points
        instant = idx * dt - rel_t[lo:lo + batch, None]  # t_i − t_j
        if point_sampled:
            # Whether the base level has step j at sample i is decided on the absolute instants it was read at:
            # the relative difference can round the other way (±1e-16 s late in a session), and the sample
            # would jump to the level after the step while the filters' response had not begun.
            taken = instants_s[np.minimum(idx, points - 1)] >= step_t[lo:lo + batch, None]
            effect = np.where(taken, kernel.step_error(np.maximum(instant, 0.0)), 0.0)
        else:
            effect = (kernel.integral(instant + dt / 2) - kernel.integral(instant - dt / 2)) / dt
        weights = effect * step_w[lo:lo + batch, None]
        correction += np.bincount(idx[valid], weights=weights[valid], minlength=points)
    return base + correction


def ripple_samples(ripple: LoadRipple, t0_s: float, sample_interval_s: float, points: int,
                   taus: tuple[float, ...], *, point_sampled: bool) -> np.ndarray:
    """The load's ripple (`LoadRipple`) as the samples at t_i = t0 + i·dt see it (W, shape (points,)): through
    the low-passes `taus` in steady state (each first-order stage multiplies the phasor by 1/(1 + jωτ)), then
    the mean over [t_i − dt/2, t_i + dt/2] (× sin(ωdt/2)/(ωdt/2)) or the value at t_i if `point_sampled`.
    A ripple that has run since long before the window is settled; added to `filtered_samples` (linear)."""
    omega = 2 * math.pi * ripple.frequency_hz
    gain = complex(ripple.amplitude_w)
    for tau in taus:
        gain /= 1 + 1j * omega * tau
    if not point_sampled:
        half = omega * sample_interval_s / 2
        gain *= math.sin(half) / half if half > 0 else 1.0
    phase = omega * (t0_s + np.arange(points) * sample_interval_s)
    return gain.real * np.sin(phase) + gain.imag * np.cos(phase)  # Im(gain · e^(jωt))


class _Kernel:
    """E(u) and D(u) = ∫₀ᵘ E of the cascade (both 0 for u ≤ 0), vectorised."""

    def __init__(self, taus: tuple[float, ...]) -> None:
        if len(taus) not in (1, 2) or min(taus) <= 0:
            raise ValueError(f"supply path: one or two positive time constants expected, got {taus}")
        self.double = len(taus) == 2 and abs(taus[0] - taus[1]) <= _EQUAL_REL * max(taus)
        if self.double:
            self.tau = (taus[0] + taus[1]) / 2
        else:
            self.taus = np.array(taus)
            self.c = np.array([math.prod(t / (t - k) for j, k in enumerate(taus) if j != i) for i, t in enumerate(taus)])

    def step_error(self, u: np.ndarray) -> np.ndarray:
        pos = np.maximum(u, 0.0)
        if self.double:
            out = -(1 + pos / self.tau) * np.exp(-pos / self.tau)
        else:
            out = -sum(c * np.exp(-pos / t) for c, t in zip(self.c, self.taus))
        # From the step's instant on (u = 0 included, E(0) = −1): the samples' base level already has the step
        # there, and a low-pass's output is continuous, so a sample at that very instant reads the old level.
        return np.where(u >= 0, out, 0.0)

    def integral(self, u: np.ndarray) -> np.ndarray:
        pos = np.maximum(u, 0.0)
        if self.double:
            return -2 * self.tau + (2 * self.tau + pos) * np.exp(-pos / self.tau)
        return -sum(c * t * -np.expm1(-pos / t) for c, t in zip(self.c, self.taus))


def _steps(spans: list[StageSpan], idle_power_w: float, start_s: float, end_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(instants s, heights W) of the power's steps in (start_s, end_s); zero-height ones dropped. A span
    open at start_s sets the settled level there (no step)."""
    times: list[float] = []
    heights: list[float] = []
    level = idle_power_w
    first = bisect.bisect_right(spans, start_s, key=lambda s: s.end_s)
    for span in spans[first:]:
        if span.start_s >= end_s:
            break
        if span.start_s > start_s:
            times.append(span.start_s)
            heights.append(span.power_w - level)
        level = span.power_w
        if span.end_s < end_s:  # back to idle (an adjacent span steps up again at the same instant)
            times.append(span.end_s)
            heights.append(idle_power_w - level)
            level = idle_power_w
    t, w = np.array(times, dtype=np.float64), np.array(heights, dtype=np.float64)
    keep = w != 0
    return t[keep], w[keep]


def _levels_at(spans: list[StageSpan], idle_power_w: float, instants_s: np.ndarray) -> np.ndarray:
    """The unfiltered power (W) at each instant: a span's power inside it, idle outside."""
    if not spans:
        return np.full(instants_s.shape, float(idle_power_w))
    starts = np.array([s.start_s for s in spans])
    ends = np.array([s.end_s for s in spans])
    powers = np.array([s.power_w for s in spans])
    k = np.clip(np.searchsorted(starts, instants_s, side="right") - 1, 0, None)
    inside = (instants_s >= starts[k]) & (instants_s < ends[k])
    return np.where(inside, powers[k], float(idle_power_w))
