"""Peak-detect decimation of a power trace, as a digital oscilloscope draws a long record on few pixels.

Averaging N samples into one hides a 0.23 ms dip on a 200 ms trace (Q-Segment's 68 mW inference read as
145–190 mW on the 260 mW plateau); keeping each bucket's minimum and maximum, at the times they
occurred, keeps every dip and spike at its true depth. Pure numpy, no pytest.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def peak_decimate(time_s: ArrayLike, power_w: ArrayLike, max_points: int,
                  breaks_s: ArrayLike = ()) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` samples of the trace: the lowest and highest of each bucket of consecutive
    samples, in time order (a bucket's one sample when both are the same).

    Buckets never straddle a time in `breaks_s` (e.g. the stage edges): a 0.23 ms inference dip that
    shares a bucket with idle power would otherwise be drawn at the idle level, since only the bucket's
    minimum survives. With breaks, each stage keeps its own minimum and maximum. Breaks are ignored when
    there are too many for `max_points` (more than `max_points // 2 - 1`).

    The result's minimum and maximum are the input's, sample for sample (times included). A trace with
    at most `max_points` samples comes back unchanged. Raises ValueError when the arrays differ in length
    or `max_points` < 2.
    """
    t = np.asarray(time_s, dtype=float)
    p = np.asarray(power_w, dtype=float)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"time_s {t.shape} and power_w {p.shape} must be 1-D arrays of one length")
    if max_points < 2:
        raise ValueError(f"max_points = {max_points}: a min/max pair needs at least 2 points")
    n = len(p)
    if n <= max_points:
        return t.copy(), p.copy()
    breaks = np.unique(np.asarray(breaks_s, dtype=float).ravel())
    if len(breaks) > max_points // 2 - 1:
        breaks = np.zeros(0)
    # Groups = buckets of `step` samples, split further at each break: at most buckets + breaks groups.
    buckets = max(1, max_points // 2 - len(breaks))
    step = -(-n // buckets)
    key = np.arange(n) // step * (len(breaks) + 1) + np.searchsorted(breaks, t, side="right")
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    lowest = np.empty(len(starts), dtype=np.intp)
    highest = np.empty(len(starts), dtype=np.intp)
    ends = np.r_[starts[1:], n]
    for i, (a, b) in enumerate(zip(starts, ends)):  # ≤ max_points / 2 groups: a short loop
        lowest[i] = a + int(np.argmin(p[a:b]))
        highest[i] = a + int(np.argmax(p[a:b]))
    keep = np.unique(np.concatenate([lowest, highest]))  # sorted: time order
    return t[keep], p[keep]
