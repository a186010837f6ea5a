"""The clock map's line: trace time = offset + ratio · device time, fitted to the located stage edges.

`measure.trace_windows` places every stage edge by this map; these are its two fits. Pure functions on lists
of seconds.
"""

from __future__ import annotations

import numpy as np

# How far (relative) the device's clock may run off the analyzer's where no located edge pins it: an RC
# oscillator's 0.5 %. The edge locator searches that far, and a run window's start is placed within it.
CLOCK_TOLERANCE = 5e-3
# The clock ratio is fitted only once the located edges pin it to better than this; until then the
# device's clock is taken as true (its own error, tens of ppm, is below what a short fit could tell).
_RATIO_RESOLUTION = 5e-6


def weighted_map(xs: list[float], ys: list[float], us: list[float]) -> tuple[float, float, float]:
    """(offset, ratio, ratio's standard error) of the line through the located edges weighted by each one's
    uncertainty `us` (s): a noisy small step counts for little. The standard error is the fit's own, scaled up
    when the edges scatter about the line more than their uncertainties say (per-op structure beside a step
    moves its centroid more than the noise does). Fewer than two distinct edges: the offset alone, ratio 1."""
    x, y = np.asarray(xs), np.asarray(ys)
    w = 1.0 / np.square(np.asarray(us))
    x_mean = float(np.sum(w * x) / np.sum(w))
    sxx = float(np.sum(w * (x - x_mean) ** 2))
    if x.size < 2 or sxx <= 0:
        return float(np.sum(w * (y - x)) / np.sum(w)), 1.0, 0.0
    y_mean = float(np.sum(w * y) / np.sum(w))
    ratio = float(np.sum(w * (x - x_mean) * (y - y_mean)) / sxx)
    offset = y_mean - ratio * x_mean
    chi2 = float(np.sum(w * (y - offset - ratio * x) ** 2)) / (x.size - 2) if x.size > 2 else 1.0
    return offset, ratio, float(np.sqrt(max(chi2, 1.0) / sxx))


def fit_map(xs: list[float], ys: list[float], dt: float, *, gated: bool = True) -> tuple[float, float, float, float]:
    """(offset, ratio, ratio's standard error, rms residual about the fitted line) of the located edges.

    Each position is uncertain by at least a sample's quantization (dt/√12). With `gated`, the ratio is
    used only when the edges' spread pins it better than _RATIO_RESOLUTION, else it stays 1 (and the
    offset is refitted alone); the residual is always the one about the full line fit.
    """
    x, y = np.asarray(xs), np.asarray(ys)
    if x.size == 0:
        return 0.0, 1.0, 0.0, 0.0
    spread = float(np.sqrt(np.sum((x - x.mean()) ** 2)))
    if x.size < 2 or spread == 0:
        offset = float(np.mean(y - x))
        return offset, 1.0, 0.0, float(np.sqrt(np.mean((y - x - offset) ** 2)))
    ratio, offset = np.polyfit(x, y, 1)
    res = y - offset - ratio * x
    residual = float(np.sqrt(np.mean(res ** 2)))
    ratio_u = max(residual, dt / np.sqrt(12.0)) / spread
    if gated and ratio_u >= _RATIO_RESOLUTION:
        return float(np.mean(y - x)), 1.0, 0.0, residual
    return float(offset), float(ratio), ratio_u, residual
