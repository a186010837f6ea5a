"""Reference oracles for the energy math: plain-trapezoid integrators kept for comparison only.

Production energy is step-aware (`pytest_edgehil.measure.stage_edges`, used by `energy_from_trace`).
These read the trace as the piecewise-linear curve through its samples, with window edges between
samples interpolated linearly, and are exact for power that is linear between samples. The tests use
them as closed-form checks on ramps and sines, and to show where step-aware edges beat them.
They share the production validation (`as_trace`, `check_windows`), so their error messages are
the ones a user sees from `active_window_s`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.trace_checks import as_trace, check_increasing, check_windows

__all__ = ["integrate_energy_j", "integration_error_bound_j", "window_energies_j"]


def _interp_at(t: np.ndarray, p: np.ndarray, k: np.ndarray | int, at_s: np.ndarray | float) -> Any:
    """Linear interpolation of p at `at_s`, which lies in [t[k], t[k+1]]."""
    return p[k] + (p[k + 1] - p[k]) * ((at_s - t[k]) / (t[k + 1] - t[k]))


def integrate_energy_j(time_s: ArrayLike, power_w: ArrayLike, t0_s: float, t1_s: float) -> float:
    """Energy in joules over [t0_s, t1_s]: trapezoids, with the partial first and last sample interpolated.

    Exact for power that is linear between samples. Cost is proportional to the samples inside the window.
    """
    t, p = as_trace(time_s, power_w)
    (t0_s, t1_s), = check_windows(t, np.array([[t0_s, t1_s]], dtype=np.float64))
    # Samples strictly inside the window: t[i0:i1]. Edges are interpolated within [t[i0-1], t[i0]] and
    # [t[i1-1], t[i1]]; t0 >= t[0] and t1 <= t[-1] keep both pairs inside the array.
    i0 = int(np.searchsorted(t, t0_s, side="right"))
    i1 = int(np.searchsorted(t, t1_s, side="left"))
    i0, i1 = max(i0, 1), min(i1, t.size - 1)
    p0 = float(_interp_at(t, p, i0 - 1, t0_s))
    p1 = float(_interp_at(t, p, i1 - 1, t1_s))
    if i1 <= i0:  # no sample strictly inside (only reachable for non-uniform traces)
        return 0.5 * (p0 + p1) * (t1_s - t0_s)
    ti, pi = t[i0:i1], p[i0:i1]
    dti = np.diff(ti)
    check_increasing(dti)
    # In-place products and numpy's pairwise sum (not BLAS dot: its threads fight on a busy CI box).
    twice_areas_j = pi[:-1] + pi[1:]
    twice_areas_j *= dti
    interior_j = 0.5 * float(twice_areas_j.sum())
    return (interior_j + 0.5 * (p0 + pi[0]) * (ti[0] - t0_s)
            + 0.5 * (pi[-1] + p1) * (t1_s - ti[-1]))


def window_energies_j(time_s: ArrayLike, power_w: ArrayLike, windows_s: ArrayLike) -> np.ndarray:
    """Energy in joules of each [t0, t1] row of `windows_s` (shape (m, 2)), all at once.

    A cumulative trapezoid over the samples the windows span, evaluated at each edge. Between two samples
    that integral is quadratic (the integral of a linear piece), so it is evaluated exactly rather than
    linearly interpolated: the result equals `integrate_energy_j` per window.
    The running sum is taken of power minus a reference level, which keeps its magnitude (and so its
    round-off) near a window's own energy even over 10 M samples.
    """
    t, p = as_trace(time_s, power_w)
    windows = np.asarray(windows_s, dtype=np.float64)
    if windows.size == 0:
        return np.zeros(0)
    if windows.ndim != 2 or windows.shape[1] != 2:
        raise MeasurementError(f"windows_s must have shape (m, 2) rows of [t0_s, t1_s], got {windows.shape}")
    windows = check_windows(t, windows)
    # Only the samples that the windows touch take part in the running sum.
    lo = max(int(np.searchsorted(t, windows[:, 0].min(), side="right")) - 1, 0)
    hi = min(int(np.searchsorted(t, windows[:, 1].max(), side="left")) + 1, t.size)
    hi = max(hi, lo + 2)
    ts, ps = t[lo:hi], p[lo:hi]
    dts = np.diff(ts)
    check_increasing(dts)
    ref_w = float(np.mean(ps[:: max(1, ps.size // 4096)]))
    # Twice the trapezoid areas of (power - ref_w), in place to keep passes over 10 M samples few.
    twice_steps_j = ps[:-1] + ps[1:]
    twice_steps_j -= 2.0 * ref_w
    twice_steps_j *= dts

    edges_s = windows.reshape(-1)
    k = np.clip(np.searchsorted(ts, edges_s, side="right") - 1, 0, ts.size - 2)
    # The cumulative integral is only needed at the sample before each edge: sum the steps between those
    # samples (reduceat, vectorized) and accumulate the few segment sums, instead of a full-length cumsum
    # (a serial loop that costs more than all the other passes together at 10 M samples).
    sample_k, edge_to_sample = np.unique(k, return_inverse=True)
    segments_j = np.add.reduceat(twice_steps_j, sample_k)[:-1]
    head_j = float(twice_steps_j[: sample_k[0]].sum())
    cumulative_j = 0.5 * np.concatenate([[head_j], head_j + np.cumsum(segments_j)])[edge_to_sample]
    into_s = edges_s - ts[k]
    p_edge = _interp_at(ts, ps, k, edges_s)
    at_edge_j = cumulative_j + 0.5 * into_s * ((ps[k] - ref_w) + (p_edge - ref_w))
    at_edge_j = at_edge_j.reshape(-1, 2)
    energies_j = at_edge_j[:, 1] - at_edge_j[:, 0] + ref_w * (windows[:, 1] - windows[:, 0])
    for poisoned in np.flatnonzero(~np.isfinite(energies_j)):
        # A non-finite sample poisons the running sum for every later window too: recompute those from
        # their own samples, and fail only for a window that really holds one.
        energies_j[poisoned] = integrate_energy_j(t, p, windows[poisoned, 0], windows[poisoned, 1])
    if not np.all(np.isfinite(energies_j)):
        i = int(np.flatnonzero(~np.isfinite(energies_j))[0])
        raise MeasurementError(f"window {i} {windows[i].tolist()} s integrates to {energies_j[i]}: the trace "
                               "holds non-finite samples there (an overload or a dropped transfer); re-acquire")
    return energies_j


def integration_error_bound_j(power_step_w: ArrayLike, sample_interval_s: float) -> float:
    """Worst-case error in joules of the integrals above for a trace of flat levels joined by steps.

    A step of height S that happens between two samples is seen by the trapezoid as a linear ramp across
    that one sample interval dt, so the integral is off by S·(dt/2 − time from the step to the next
    sample): at most S·dt/2 per step, either sign. Linear edge interpolation keeps that same bound when a
    window edge falls in the interval holding the step, including the trigger-delimited case where the
    edge *is* the step (the interpolated edge value is then a mix of the two levels; the error is
    −S·u²/(2·dt) for an edge u before the next sample, never more than S·dt/2). Within flat or linear
    stretches linear interpolation is exact, so the edges add nothing else. `power_step_w` is one step or
    an array of the steps inside the window; the bound is Σ|S|·dt/2, shrinking in proportion to dt.
    """
    steps_w = np.abs(np.asarray(power_step_w, dtype=np.float64))
    return float(steps_w.sum()) * float(sample_interval_s) / 2.0
