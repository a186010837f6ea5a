"""The gate's statistics: new/base ratio estimates, their confidence intervals, one-sided tests, drift.

Pure functions over sample arrays (numpy and scipy, no pytest). `ratio_test` is what the decision in
`gate.py` uses; why these estimators and not others is written there and in docs/gate.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType


def _stats() -> ModuleType:
    """scipy.stats, imported on first use: it takes seconds to import, and every pytest process (each
    xdist worker too) imports this module while only a run that compares against a baseline needs it."""
    from scipy import stats

    return stats


CONFIDENCE = 0.95  # of the reported ratio interval
MAX_SAMPLES_PAIRWISE = 2000  # per side for HL: 4 M pairwise ratios at most (long latency records are thinned)
BLOCKS = 5  # consecutive blocks per side for the drift check ...
MIN_BLOCK_SAMPLES = 5  # ... each with at least this many samples
DRIFT_ALPHA = 0.01  # blocks count as drifted only when they differ this significantly


@dataclass(frozen=True)
class RatioTest:
    """new/base ratio estimate, its CI and one-sided p-values, from the samples of both sides."""

    ratio: float
    ci_low: float
    ci_high: float
    p_greater: float  # H1: new is stochastically larger than base
    p_less: float  # H1: new is stochastically smaller
    method: str  # "per-inference" | "window medians"
    n_base: int
    n_new: int
    drift: float = 0.0  # largest within-run spread of block medians (max/min - 1), either side


def _thin(x: np.ndarray, limit: int) -> np.ndarray:
    """At most `limit` evenly spaced order statistics: keeps the distribution's shape for HL."""
    if x.size <= limit:
        return x
    return np.sort(x)[np.linspace(0, x.size - 1, limit).round().astype(int)]


def hodges_lehmann_shift(base: np.ndarray, new: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """HL shift estimate of new − base with Moses' distribution-free confidence interval."""
    b, n = _thin(base, MAX_SAMPLES_PAIRWISE), _thin(new, MAX_SAMPLES_PAIRWISE)
    diffs = (n[:, None] - b[None, :]).ravel()
    total = diffs.size
    z = float(_stats().norm.ppf(0.5 + confidence / 2))
    k = math.floor(total / 2 - z * math.sqrt(b.size * n.size * (b.size + n.size + 1) / 12.0))
    k = min(max(k, 0), (total - 1) // 2)
    mid_lo, mid_hi = (total - 1) // 2, total // 2
    part = np.partition(diffs, sorted({k, mid_lo, mid_hi, total - 1 - k}))
    return float((part[mid_lo] + part[mid_hi]) / 2), float(part[k]), float(part[total - 1 - k])


def hodges_lehmann_ratio(base: np.ndarray, new: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, low, high) of new over base: HL on log samples when all are positive, else the HL shift
    relative to the baseline median."""
    if np.all(base > 0) and np.all(new > 0):
        est, lo, hi = hodges_lehmann_shift(np.log(base), np.log(new), confidence)
        return math.exp(est), math.exp(lo), math.exp(hi)
    scale = float(np.median(base))
    if scale == 0.0:
        return math.nan, math.nan, math.nan
    est, lo, hi = hodges_lehmann_shift(base, new, confidence)
    ordered = sorted((1 + lo / scale, 1 + hi / scale))
    return 1 + est / scale, ordered[0], ordered[1]


def block_medians(x: np.ndarray) -> np.ndarray:
    """Medians of up to BLOCKS consecutive blocks (samples are in acquisition order: blocks ≈ windows)."""
    count = min(BLOCKS, x.size // MIN_BLOCK_SAMPLES)
    if count < 2:
        return np.empty(0)
    return np.array([np.median(block) for block in np.array_split(x, count)])


def drift_of(x: np.ndarray) -> float:
    """How far a run's consecutive blocks disagree (max/min of block medians − 1), counted only when the
    blocks differ beyond sampling noise (Kruskal–Wallis p < DRIFT_ALPHA): medians of a few samples
    scatter by themselves, and that scatter must not pass for drift."""
    count = min(BLOCKS, x.size // MIN_BLOCK_SAMPLES)
    if count < 2 or np.ptp(x) == 0:
        return 0.0
    blocks = np.array_split(x, count)
    medians = np.array([np.median(block) for block in blocks])
    if np.min(medians) <= 0 or _stats().kruskal(*blocks).pvalue >= DRIFT_ALPHA:
        return 0.0
    return float(np.max(medians) / np.min(medians) - 1.0)


def _mann_whitney(base: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    if np.ptp(np.concatenate([base, new])) == 0:
        return 1.0, 1.0  # all samples equal: no evidence either way (scipy would return NaN)
    greater = _stats().mannwhitneyu(new, base, alternative="greater").pvalue
    less = _stats().mannwhitneyu(new, base, alternative="less").pvalue
    return float(np.nan_to_num(greater, nan=1.0)), float(np.nan_to_num(less, nan=1.0))


def ratio_test(base: Sequence[float], new: Sequence[float], *, drift_limit: float = math.inf) -> RatioTest:
    """Compare per-inference samples; falls back to block medians when a side drifted past `drift_limit`."""
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    drift = max(drift_of(b), drift_of(n))
    method = "per-inference"
    if drift > drift_limit:
        b_blocks, n_blocks = block_medians(b), block_medians(n)
        if b_blocks.size >= 2 and n_blocks.size >= 2:  # too few samples on a side to block: stay pooled
            b, n, method = b_blocks, n_blocks, "window medians"
    ratio, lo, hi = hodges_lehmann_ratio(b, n)
    p_greater, p_less = _mann_whitney(b, n)
    return RatioTest(ratio, lo, hi, p_greater, p_less, method, b.size, n.size, drift)
