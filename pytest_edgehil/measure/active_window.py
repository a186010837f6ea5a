"""The trace's own timing of a stage: the active window between two power steps, a second latency beside
the device's timer (`active_window_s`).

Pure functions on a checked trace (`trace_checks`): time in seconds, power in watts.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.trace_checks import as_trace, check_increasing, check_windows

# A step between two power levels counts as an edge only if it stands this many noise sigmas tall.
_MIN_STEP_SIGMAS = 6.0


def _best_split(x: np.ndarray) -> tuple[int, float]:
    """Index s (1..len-1) splitting x into two constant levels with least squared error; and the gain."""
    n = x.size
    if n < 2:
        return 0, -np.inf
    cs, cs2 = np.cumsum(x), np.cumsum(x * x)
    left_n = np.arange(1, n, dtype=np.float64)
    right_n = n - left_n
    left_s, right_s = cs[:-1], cs[-1] - cs[:-1]
    sse = (cs2[-1] - left_s ** 2 / left_n - right_s ** 2 / right_n)
    s = int(np.argmin(sse)) + 1
    total_sse = cs2[-1] - cs[-1] ** 2 / n
    return s, float(total_sse - sse[s - 1])


def _three_levels(x: np.ndarray) -> tuple[int, int]:
    """Two change points c1 < c2 splitting x into before / active / after (binary segmentation + refit)."""
    s, _ = _best_split(x)
    s_left, gain_left = _best_split(x[:s])
    s_right, gain_right = _best_split(x[s:])
    c1, c2 = (s_left, s) if gain_left >= gain_right else (s, s + s_right)
    for _ in range(2):  # refit each change point with the other held: corrects the greedy first split
        c1 = _best_split(x[:c2])[0] or c1
        c2 = c1 + (_best_split(x[c1:])[0] or (c2 - c1))
    return c1, c2


def _crossing_s(t: np.ndarray, p: np.ndarray, level_w: float, near: int | None) -> float | None:
    """Sub-sample instant where p crosses level_w (nearest to index `near`, else the first); None if none."""
    above = p > level_w
    k = np.flatnonzero(above[:-1] != above[1:])
    if k.size == 0:
        return None
    kk = int(k[np.argmin(np.abs(k - near))] if near is not None else k[0])
    return float(t[kk] + (level_w - p[kk]) / (p[kk + 1] - p[kk]) * (t[kk + 1] - t[kk]))


def active_window_s(time_s: ArrayLike, power_w: ArrayLike, t_search0: float, t_search1: float,
                    level_w: float | None = None) -> float:
    """Length in seconds of the active stage inside [t_search0, t_search1], measured on the trace itself.

    A second latency measurement beside the device's own timer. Each edge instant is where the power
    crosses the level halfway between the stage's level and the level next to it, located between the two
    samples around the crossing by linear interpolation (sub-sample), so a ramped edge is timed exactly
    and a sharp edge inside a sample interval to within half an interval.

    Without `level_w` the search window is read as three flat levels (before / active / after: e.g.
    readout, inference, retrieval), found by least-squares change points. The active level may be above
    *or below* its neighbours (a vision sensor can draw less while inferring than while reading out), and
    the two neighbours may differ: each edge gets its own halfway level. The search window must hold a
    few samples of the neighbouring levels on both sides. With `level_w` the active window runs from the
    first to the last crossing of that fixed level.
    """
    t, p = as_trace(time_s, power_w)
    (t0_s, t1_s), = check_windows(t, np.array([[t_search0, t_search1]], dtype=np.float64))
    i0 = max(int(np.searchsorted(t, t0_s, side="left")), 0)
    i1 = min(int(np.searchsorted(t, t1_s, side="right")), t.size)
    ts, ps = t[i0:i1], p[i0:i1]
    where = f"in the search window [{t0_s:.9g}, {t1_s:.9g}] s"
    if ts.size < 4:
        raise MeasurementError(f"{where} there are only {ts.size} samples; widen it to include the "
                               "neighbouring stages or use a faster digitizer setting")
    check_increasing(np.diff(ts))
    if level_w is not None:
        rise_s = _crossing_s(ts, ps, level_w, None)
        fall_s = _crossing_s(ts[::-1], ps[::-1], level_w, None)
        if rise_s is None or fall_s is None or fall_s <= rise_s:
            raise MeasurementError(f"{where} the power never crosses {level_w:.6g} W twice; pass a level "
                                   "between the idle and active power, or widen the window")
        return fall_s - rise_s

    c1, c2 = _three_levels(ps)
    before_w, active_w, after_w = (float(np.median(seg)) for seg in (ps[:c1], ps[c1:c2], ps[c2:]))
    residual_w = ps - np.concatenate([np.full(c1, before_w), np.full(c2 - c1, active_w),
                                      np.full(ps.size - c2, after_w)])
    noise_w = 1.4826 * float(np.median(np.abs(residual_w - np.median(residual_w))))
    floor_w = max(_MIN_STEP_SIGMAS * noise_w, 1e-9 * float(np.max(np.abs(ps))))
    for name, step_w in (("rising", active_w - before_w), ("falling", active_w - after_w)):
        if abs(step_w) <= floor_w:
            raise MeasurementError(
                f"{where} found no distinct {name} edge: levels before/active/after are "
                f"{before_w:.6g}/{active_w:.6g}/{after_w:.6g} W against noise {noise_w:.3g} W; the stage "
                "does not stand out in power here, or the search window cuts it off, so the trace cannot "
                "time it (widen the window to include its neighbours, or pass level_w)")
    rise_s = _crossing_s(ts, ps, 0.5 * (before_w + active_w), c1 - 1)
    fall_s = _crossing_s(ts, ps, 0.5 * (active_w + after_w), c2 - 1)
    if rise_s is None or fall_s is None or fall_s <= rise_s:  # pragma: no cover - levels imply crossings
        raise MeasurementError(f"{where} the edges could not be located; widen the window")
    return fall_s - rise_s
