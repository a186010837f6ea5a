"""Accuracy and sample-statistics math: pure functions over arrays (no pytest, no I/O).

- Segmentation: ROC AUC and binary accuracy over the pooled pixels of all images, as Q-Segment reports
  CHASE_DB1 (one AUC over every pixel of the test set, not a mean of per-image AUCs).
- Gaze: Euclidean error in cm on the screen per sample, and the TinyTracker float-vs-int8 gap.
- Samples (latency, energy): median with a bootstrap confidence interval.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, roc_auc_score

from pytest_edgehil.errors import MeasurementError

# Keep one vectorized bootstrap batch around this many elements (resamples x n) so long latency
# records (1e5 samples) don't allocate gigabytes at once.
_BOOTSTRAP_BATCH_ELEMENTS = 4_000_000


# ------------------------------------------------------------------------------------------ segmentation


@dataclass(frozen=True)
class SegmentationScores:
    roc_auc: float
    binary_accuracy: float  # fraction of pixels with (prob > threshold) == mask
    pixels: int  # how many pixels were pooled


def segmentation_scores(prob: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> SegmentationScores:
    """Pooled-pixel ROC AUC and binary accuracy of probabilities `prob` against binary `mask`.

    `prob` and `mask` have the same shape (any: one image or a stack); a pixel counts as foreground when
    `prob > threshold`, as Keras' binary accuracy does.
    """
    prob = np.asarray(prob, dtype=np.float64)
    mask = np.asarray(mask)
    if prob.shape != mask.shape:
        raise MeasurementError(f"segmentation scores: probabilities have shape {prob.shape} but the mask has "
                               f"{mask.shape}; reshape the model output to the mask's shape")
    if prob.size == 0:
        raise MeasurementError("segmentation scores: no pixels to score (empty arrays)")
    if not np.all(np.isfinite(prob)):
        raise MeasurementError(f"segmentation scores: {int(np.sum(~np.isfinite(prob)))} probabilities are "
                               "NaN or infinite; check the model output and its dequantization")
    classes = np.unique(mask)
    if not np.all(np.isin(classes, (0, 1))):
        raise MeasurementError(f"segmentation scores: the mask must be binary (0/1 or bool); found values "
                               f"{classes[:8].tolist()}; binarize it first")
    truth, scores = mask.reshape(-1).astype(np.uint8), prob.reshape(-1)
    if len(classes) < 2:
        raise MeasurementError(f"segmentation scores: the mask has a single class ({int(classes[0])}) over all "
                               f"{truth.size} pixels, so ROC AUC is undefined; score a set with both "
                               "foreground and background pixels")
    return SegmentationScores(
        roc_auc=float(roc_auc_score(truth, scores)),
        binary_accuracy=float(accuracy_score(truth, (scores > threshold).astype(np.uint8))),
        pixels=int(truth.size),
    )


# -------------------------------------------------------------------------------------------------- gaze


@dataclass(frozen=True)
class GazeScores:
    mean_cm: float
    median_cm: float
    p95_cm: float
    n: int


def _gaze_pair(pred: np.ndarray, true: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
        raise MeasurementError(f"{what}: need two non-empty [N, 2] arrays of (x_cm, y_cm) of equal shape; "
                               f"got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise MeasurementError(f"{what}: gaze points contain NaN or infinity; check the model output")
    return a, b


def gaze_errors_cm(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Euclidean distance on the screen between predicted and true gaze points, one per sample [N]."""
    a, b = _gaze_pair(pred, true, "gaze errors")
    return np.linalg.norm(a - b, axis=1)


def gaze_scores(pred: np.ndarray, true: np.ndarray) -> GazeScores:
    errors = gaze_errors_cm(pred, true)
    return GazeScores(mean_cm=float(errors.mean()), median_cm=float(np.median(errors)),
                      p95_cm=float(np.percentile(errors, 95)), n=int(errors.size))


def quantization_gap_cm(pred_int8: np.ndarray, pred_float: np.ndarray) -> float:
    """Mean distance between the int8 and the float model's gaze points for the same inputs.

    TinyTracker reports this gap as at most 0.16 cm: quantization costs little next to the model error.
    """
    a, b = _gaze_pair(pred_int8, pred_float, "quantization gap")
    return float(np.linalg.norm(a - b, axis=1).mean())


# ----------------------------------------------------------------------------------------------- samples


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
