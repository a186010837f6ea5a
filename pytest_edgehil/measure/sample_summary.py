"""Summary statistics of per-inference samples (latency, energy): the median with a bootstrap CI.

Pure functions over arrays (no pytest, no I/O, no scikit-learn): the recorder and the energy meter use
them, and the results layer must stay importable without the scoring stack.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pytest_edgehil.errors import MeasurementError

# Keep one vectorized bootstrap batch around this many elements (resamples x n) so long latency
# records (1e5 samples) don't allocate gigabytes at once.
_BOOTSTRAP_BATCH_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class SampleSummary:
    median: float
    ci_low: float  # bootstrap CI of the median; equal to the median when n < 3 or the samples are all equal
    ci_high: float
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one sample


def _finite_samples(values: np.ndarray | list[float] | tuple[float, ...], what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise MeasurementError(f"{what}: no samples; collect at least one")
    if not np.all(np.isfinite(x)):
        raise MeasurementError(f"{what}: {int(np.sum(~np.isfinite(x)))} of {x.size} samples are NaN or "
                               "infinite; drop failed runs before summarizing")
    return x


def bootstrap_ci(values: np.ndarray | list[float] | tuple[float, ...],
                 statistic: Callable[..., float | np.ndarray] = np.median, confidence: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0, method: str = "percentile") -> tuple[float, float]:
    """Two-sided bootstrap confidence interval `(lo, hi)` of `statistic` over `values`.

    `method` is "percentile" (default) or "BCa". Percentile is the default because BCa's acceleration
    comes from a jackknife, which is inconsistent for the median (a non-smooth statistic) and swings
    wildly on small samples. With fewer than 3 samples, or all samples equal, there is no spread to
    resample (n = 2 has only 3 distinct resamples; equal samples give a zero-width bootstrap
    distribution on which BCa divides by zero), so the CI degenerates to the statistic itself, (s, s):
    it says "no interval information", not "exact" — read it together with n.
    """
    x = _finite_samples(values, "bootstrap CI")
    if not 0.0 < confidence < 1.0:
        raise MeasurementError(f"bootstrap CI: confidence must be in (0, 1), got {confidence}")
    if method not in ("percentile", "BCa"):
        raise MeasurementError(f"bootstrap CI: method must be 'percentile' or 'BCa', got {method!r}")
    if n_resamples < 1:
        raise MeasurementError(f"bootstrap CI: n_resamples must be positive, got {n_resamples}")
    if x.size < 3 or np.all(x == x[0]):
        point = float(statistic(x))
        return point, point
    lo, hi = _scipy_bootstrap(x, statistic, confidence, n_resamples, seed, method)
    if method == "BCa" and not (np.isfinite(lo) and np.isfinite(hi)):
        # BCa's acceleration is undefined on heavily tied data; the percentile interval still is.
        lo, hi = _scipy_bootstrap(x, statistic, confidence, n_resamples, seed, "percentile")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise MeasurementError(f"bootstrap CI: the interval of {x.size} samples came out as ({lo}, {hi}); "
                               "check that the statistic is defined on every resample")
    return lo, hi


def _scipy_bootstrap(x: np.ndarray, statistic: Callable[..., float | np.ndarray], confidence: float,
                     n_resamples: int, seed: int, method: str) -> tuple[float, float]:
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # scipy warns (and BCa divides 0/0) before returning NaN bounds; the caller handles NaN itself.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((x,), statistic, n_resamples=n_resamples, confidence_level=confidence,
                                 method=method, batch=max(1, _BOOTSTRAP_BATCH_ELEMENTS // x.size),
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(samples: np.ndarray | list[float] | tuple[float, ...], confidence: float = 0.95,
              seed: int = 0) -> SampleSummary:
    """Median with its bootstrap CI, plus n, mean and sample std: the summary of latency/energy samples."""
    x = _finite_samples(samples, "sample summary")
    lo, hi = bootstrap_ci(x, np.median, confidence=confidence, seed=seed)
    return SampleSummary(median=float(np.median(x)), ci_low=lo, ci_high=hi, n=int(x.size),
                         mean=float(x.mean()), std=float(x.std(ddof=1)) if x.size > 1 else 0.0)
