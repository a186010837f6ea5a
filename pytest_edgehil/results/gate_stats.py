"""The gate's statistics: new/base ratio estimates, their confidence intervals, one-sided tests, drift.

Pure functions over sample arrays (numpy and scipy, no pytest). `ratio_test` is what the decision in
`gate.py` uses; why these estimators and not others is written there and in docs/gate.md.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=8)
def _z(confidence: float) -> float:
    """The two-sided normal quantile of `confidence` (computed once: scipy's ppf costs ~0.2 ms a call)."""
    return float(_stats().norm.ppf(0.5 + confidence / 2))


def hodges_lehmann_shift(base: np.ndarray, new: np.ndarray,
                         confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """HL shift estimate of new − base with Moses' distribution-free confidence interval."""
    b, n = _thin(base, MAX_SAMPLES_PAIRWISE), _thin(new, MAX_SAMPLES_PAIRWISE)
    diffs = (n[:, None] - b[None, :]).ravel()
    total = diffs.size
    z = _z(confidence)
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
    return ratio_tests([(base, new)], [drift_limit])[0]


def ratio_tests(pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
                drift_limits: Sequence[float]) -> list[RatioTest]:
    """`ratio_test` of every (base, new) pair, each with its drift limit: the same values as one call per
    pair, with the scipy tests (Kruskal-Wallis, Mann-Whitney) run once per group of pairs of equal sample
    counts. scipy computes each row of a batch as it computes a lone sample; its per-call overhead was
    ~95 % of `edgehil compare` on a 5,000-record file."""
    sides = [(np.asarray(b, dtype=float), np.asarray(n, dtype=float)) for b, n in pairs]
    drift_b = _drifts([b for b, _ in sides])
    drift_n = _drifts([n for _, n in sides])
    chosen: list[tuple[np.ndarray, np.ndarray, str, float]] = []
    for (b, n), db, dn, limit in zip(sides, drift_b, drift_n, drift_limits):
        drift, method = max(db, dn), "per-inference"
        if drift > limit:
            b_blocks, n_blocks = block_medians(b), block_medians(n)
            if b_blocks.size >= 2 and n_blocks.size >= 2:  # too few samples on a side to block: stay pooled
                b, n, method = b_blocks, n_blocks, "window medians"
        chosen.append((b, n, method, drift))
    p_values = _mann_whitney_all([(b, n) for b, n, _, _ in chosen])
    tests = []
    for (b, n, method, drift), (p_greater, p_less) in zip(chosen, p_values):
        ratio, lo, hi = hodges_lehmann_ratio(b, n)
        tests.append(RatioTest(ratio, lo, hi, p_greater, p_less, method, b.size, n.size, drift))
    return tests


def _by_shape(arrays: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, array in enumerate(arrays):
        groups.setdefault(array.shape, []).append(index)
    return groups


def _drifts(samples: Sequence[np.ndarray]) -> list[float]:
    """`drift_of` of each sample array, the Kruskal-Wallis test batched over arrays of one length."""
    drifts = [0.0] * len(samples)
    for (size,), indexes in _by_shape([s.reshape(-1) for s in samples]).items():
        count = min(BLOCKS, size // MIN_BLOCK_SAMPLES)
        if count < 2:
            continue
        rows = np.stack([samples[i] for i in indexes])
        varied = np.ptp(rows, axis=1) != 0
        if not varied.any():
            continue
        rows, kept = rows[varied], [i for i, v in zip(indexes, varied) if v]
        blocks = np.array_split(rows, count, axis=1)
        medians = np.stack([np.median(block, axis=1) for block in blocks], axis=1)
        p = np.atleast_1d(_stats().kruskal(*blocks, axis=1).pvalue)
        for row, index in enumerate(kept):
            if np.min(medians[row]) > 0 and p[row] < DRIFT_ALPHA:
                drifts[index] = float(np.max(medians[row]) / np.min(medians[row]) - 1.0)
    return drifts


def drifts_past(samples: Sequence[np.ndarray], limits: Sequence[float]) -> list[float]:
    """`drift_of` of each array whose drift may exceed its limit; 0.0 for the others, whose drift is at most
    their limit.

    The drift is the spread of the block medians, counted only when Kruskal-Wallis finds the blocks
    different; a spread within the limit cannot make a drift past it, whatever the test says. So the
    medians are computed for every array (one numpy call per length) and the test runs only on the arrays
    whose spread is past their limit: a nightly compare of thousands of steady records imports no scipy.
    """
    candidates: list[int] = []
    for (size,), indexes in _by_shape([s.reshape(-1) for s in samples]).items():
        count = min(BLOCKS, size // MIN_BLOCK_SAMPLES)
        if count < 2:
            continue
        rows = np.stack([samples[i].reshape(-1) for i in indexes])
        medians = np.stack([np.median(block, axis=1) for block in np.array_split(rows, count, axis=1)], axis=1)
        lowest, highest = medians.min(axis=1), medians.max(axis=1)
        for row, index in enumerate(indexes):
            if lowest[row] > 0 and highest[row] / lowest[row] - 1.0 > limits[index]:
                candidates.append(index)
    drifts = [0.0] * len(samples)
    for index, drift in zip(candidates, _drifts([samples[i] for i in candidates])):
        drifts[index] = drift
    return drifts


def _p_or_one(p: float) -> float:
    """A p-value, NaN (scipy's "cannot tell") read as 1: no evidence."""
    return 1.0 if math.isnan(p) else p


def _mann_whitney_all(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple[float, float]]:
    """`_mann_whitney` of each pair, batched over pairs of equal sample counts."""
    out = [(1.0, 1.0)] * len(pairs)  # all samples equal: no evidence either way (scipy would return NaN)
    # Grouped by sizes and by whether the samples hold ties: scipy picks the exact or the asymptotic
    # p-value from both, once per call, so each batch must be alike in them.
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for index, (b, n) in enumerate(pairs):
        both = np.concatenate([b, n])
        if np.ptp(both) != 0:
            ties = bool(np.any(np.diff(np.sort(both)) == 0))
            groups.setdefault((b.size, n.size, ties), []).append(index)
    for indexes in groups.values():
        base = np.stack([pairs[i][0] for i in indexes])
        new = np.stack([pairs[i][1] for i in indexes])
        greater = np.atleast_1d(_stats().mannwhitneyu(new, base, alternative="greater", axis=1).pvalue)
        less = np.atleast_1d(_stats().mannwhitneyu(new, base, alternative="less", axis=1).pvalue)
        for row, index in enumerate(indexes):
            out[index] = (_p_or_one(float(greater[row])), _p_or_one(float(less[row])))
    return out
