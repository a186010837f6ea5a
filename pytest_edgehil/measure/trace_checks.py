"""A power trace and its windows, checked before any math reads them: shapes, span, order, resolution.

A trace is two equal-length 1-D arrays: `time_s` (seconds, strictly increasing, uniformly sampled) and
`power_w` (watts). A window is `[t0_s, t1_s]` on that time axis. Every check raises MeasurementError naming
what was seen and what to acquire instead; the energy math (`energy`), the trace's own latency
(`active_window`) and the tests' reference integrators share them, so a user meets one message per fault.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError

# Edges this close (in sample intervals) outside the trace are float round-off, not a wrong window.
_EDGE_TOLERANCE_SAMPLES = 1e-6


def as_trace(time_s: ArrayLike, power_w: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(time_s, power_w) as float64 arrays, checked: 1-D, equal length, >= 2 samples, the span increasing."""
    t = np.asarray(time_s, dtype=np.float64)
    p = np.asarray(power_w, dtype=np.float64)
    if t.ndim != 1 or p.shape != t.shape:
        raise MeasurementError(
            f"trace arrays must be 1-D and of equal length, got time_s {t.shape} and power_w {p.shape}; "
            "pass one sample per element (power_w = current_a * voltage_v)")
    if t.size < 2:
        raise MeasurementError(f"a trace needs at least 2 samples to integrate, got {t.size}; "
                               "acquire more points (SENS:SWE:POIN)")
    if not t[-1] > t[0]:  # O(1) guard; the samples a window uses are checked one by one where they are read
        check_increasing(np.array([t[-1] - t[0]]))
    return t, p


def trace_sample_interval_s(time_s: ArrayLike) -> float:
    """Mean sample interval of a trace (its digitizer setting, for a uniformly sampled trace)."""
    t = np.asarray(time_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2:
        raise MeasurementError(f"a trace needs at least 2 samples to have a sample interval, got {t.shape}")
    return float(t[-1] - t[0]) / (t.size - 1)


def check_windows(t: np.ndarray, windows_s: np.ndarray) -> np.ndarray:
    """Validate [t0, t1] rows against the trace span and resolution; return them clipped to the span."""
    dt_s = trace_sample_interval_s(t)
    tol_s = _EDGE_TOLERANCE_SAMPLES * dt_s
    span = f"[{t[0]:.9g}, {t[-1]:.9g}] s"
    if windows_s.size == 0:
        return windows_s.reshape(0, 2)
    if not np.all(np.isfinite(windows_s)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(windows_s), axis=1))[0])
        raise MeasurementError(f"window {bad} {windows_s[bad].tolist()} has a non-finite edge; "
                               "check the device timings it was built from")
    outside = (windows_s[:, 0] < t[0] - tol_s) | (windows_s[:, 1] > t[-1] + tol_s)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise MeasurementError(
            f"window {i} [{windows_s[i, 0]:.9g}, {windows_s[i, 1]:.9g}] s lies outside the trace span {span} "
            f"({int(outside.sum())} of {len(windows_s)} windows do); acquire more pre-trigger samples "
            "(SENS:SWE:OFFS:POIN) or a longer sweep so the trace covers every window")
    length_s = windows_s[:, 1] - windows_s[:, 0]
    short = length_s < 2.0 * dt_s * (1.0 - 1e-9)
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise MeasurementError(
            f"window {i} [{windows_s[i, 0]:.9g}, {windows_s[i, 1]:.9g}] s is {length_s[i]:.3g} s long, "
            f"shorter than 2 sample intervals of {dt_s:.3g} s ({int(short.sum())} of {len(windows_s)} "
            "windows are); the trace cannot resolve it: a faster digitizer setting (shorter SENS:SWE:TINT) "
            "is needed")
    return np.clip(windows_s, t[0], t[-1])


def check_increasing(dt_s: np.ndarray) -> None:
    """Raise MeasurementError unless every sample step in `dt_s` (s) is positive (a NaN is not)."""
    if dt_s.size and not dt_s.min() > 0:  # a reduction, no temporary; a NaN fails it too
        i = int(np.flatnonzero(~(dt_s > 0))[0])
        raise MeasurementError(f"trace time_s must be strictly increasing, but sample {i + 1} (of the ones "
                               f"read) is not after sample {i}; build it as (arange(n) - trigger_index) * sample_interval_s")
