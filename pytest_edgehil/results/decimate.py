"""Peak-detect decimation of a power trace, as a digital oscilloscope draws a long record on few pixels.

Averaging N samples into one hides a 0.23 ms dip on a 200 ms trace (Q-Segment's 68 mW inference read as
145–190 mW on the 260 mW plateau); keeping each bucket's minimum and maximum, at the times they
occurred, keeps every dip and spike at its true depth. Pure numpy, no pytest.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def peak_decimate(time_s: ArrayLike, power_w: ArrayLike, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` samples of the trace: the lowest and highest of each of `max_points // 2`
    consecutive buckets, in time order (a bucket's one sample when both are the same).

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
    step = -(-n // (max_points // 2))
    buckets = -(-n // step)
    padded = np.full(buckets * step, np.nan)
    padded[:n] = p
    rows = padded.reshape(buckets, step)
    offset = np.arange(buckets) * step
    lowest = offset + np.nanargmin(rows, axis=1)
    highest = offset + np.nanargmax(rows, axis=1)
    keep = np.unique(np.concatenate([lowest, highest]))  # sorted: time order
    return t[keep], p[keep]
