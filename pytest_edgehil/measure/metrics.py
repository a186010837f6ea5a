"""Accuracy and sample-statistics math: pure functions over arrays (no pytest, no I/O).

- Segmentation: ROC AUC and binary accuracy over the pooled pixels of all images, as Q-Segment reports
  CHASE_DB1 (one AUC over every pixel of the test set, not a mean of per-image AUCs).
- Gaze: Euclidean error in cm on the screen per sample; what int8 costs against float (TinyTracker's
  quantization loss) and how far it moves the points.
- Samples (latency, energy): median with a bootstrap confidence interval — in `measure.sample_summary`,
  re-exported here.

scikit-learn is imported inside `segmentation_scores`, the only function that needs it, so importing
this module (or the results layer, through the sample summary) does not load it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.sample_summary import SampleSummary, bootstrap_ci, summarize

__all__ = ["GazeScores", "SampleSummary", "SegmentationScores", "bootstrap_ci", "gaze_errors_cm",
           "gaze_scores", "quantization_gap_cm", "quantization_loss_cm", "segmentation_scores", "summarize",
           "to_target_shape"]


def to_target_shape(pred: np.ndarray, targets: np.ndarray, what: str) -> np.ndarray:
    """`pred` (one output per sample: n x output shape) in the shape of `targets` (n x target shape), when
    the two differ only by size-1 dimensions (a (1, H, W, 1) mask output against (H, W) masks).

    Raises MeasurementError naming both per-sample shapes otherwise: a two-channel softmax, another
    resolution or another layout. Why not reshape: an output with as many elements in another layout
    (64 x 256 for a 128 x 128 mask) reshapes without complaint and scores scrambled pixels."""
    p, t = np.asarray(pred), np.asarray(targets)
    if p.shape[:1] != t.shape[:1] or _squeezed(p.shape[1:]) != _squeezed(t.shape[1:]):
        raise MeasurementError(
            f"{what}: the model gives {p.shape[0] if p.ndim else 0} outputs of shape {list(p.shape[1:])} for "
            f"{t.shape[0] if t.ndim else 0} targets of shape {list(t.shape[1:])}; they differ beyond size-1 "
            "dimensions (a two-channel softmax, another resolution or layout), so nothing was scored. Score an "
            "output of the targets' shape (segmentation: one foreground probability per pixel): export one, or "
            "name it as `output.name` in the model's card (docs/config-files.md)")
    return p.reshape(t.shape)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


# ------------------------------------------------------------------------------------------ segmentation


@dataclass(frozen=True)
class SegmentationScores:
    roc_auc: float
    binary_accuracy: float  # fraction of pixels with (prob > threshold) == mask
    pixels: int  # how many pixels were pooled


def segmentation_scores(prob: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> SegmentationScores:
    """Pooled-pixel ROC AUC and binary accuracy of probabilities `prob` against binary `mask`.

    `prob` and `mask` have the same shape (any: one image or a stack); a pixel counts as foreground when
    `prob > threshold`, as Keras' binary accuracy does. Raises MeasurementError for shapes that differ,
    no pixels, NaN or infinite values, values outside [0, 1] (logits are not probabilities), a mask that
    is not 0/1, and a mask of a single class (AUC undefined).
    """
    from sklearn.metrics import accuracy_score, roc_auc_score  # ≈ 0.5 s to import: only when scoring

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
    low, high = float(prob.min()), float(prob.max())
    if low < 0.0 or high > 1.0:
        # Thresholded at 0.5, a logit 0.3 (probability 0.57) is background and codes 0..255 are nearly all
        # foreground: a plausible, wrong accuracy. (AUC alone would survive any monotone map; accuracy not.)
        raise MeasurementError(f"segmentation scores: the outputs span [{low:.4g}, {high:.4g}], outside [0, 1], so "
                               f"they are not probabilities (logits, or codes not dequantized); binary accuracy "
                               f"thresholds probabilities at {threshold:g}, so nothing was scored. Score the "
                               "model's sigmoid output (its card's `output.name`), or apply the sigmoid first")
    truth = mask.reshape(-1)
    not_binary = (truth != 0) & (truth != 1)
    if not_binary.any():
        raise MeasurementError(f"segmentation scores: the mask must be binary (0/1 or bool); found values "
                               f"{np.unique(truth[not_binary])[:8].tolist()}; binarize it first")
    truth = truth.astype(np.uint8)
    positives = int(np.count_nonzero(truth))
    if positives in (0, truth.size):
        raise MeasurementError(f"segmentation scores: the mask has a single class ({int(positives > 0)}) over all "
                               f"{truth.size} pixels, so ROC AUC is undefined; score a set with both "
                               "foreground and background pixels")
    # Pixels pooled by distinct probability (a quantized output has at most 256), each value's foreground
    # and background counts as weights: scikit-learn's ROC AUC and accuracy over the weighted values are
    # exactly those over the pixels (ties are grouped by value either way, the counts are exact sums), and
    # its input checks and stable sort then run on hundreds of points instead of millions (2-3x faster).
    values, index = distinct_values(prob.reshape(-1))
    foreground = np.bincount(index, weights=truth, minlength=values.size)
    background = np.bincount(index, minlength=values.size) - foreground
    labels = np.repeat(np.array([1, 0], dtype=np.uint8), values.size)
    scores, weights = np.concatenate([values, values]), np.concatenate([foreground, background])
    return SegmentationScores(
        roc_auc=float(roc_auc_score(labels, scores, sample_weight=weights)),
        binary_accuracy=float(accuracy_score(labels, (scores > threshold).astype(np.uint8), sample_weight=weights)),
        pixels=int(truth.size),
    )


def distinct_values(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(flat, return_inverse=True)` for a 1-D float array, exactly: the sorted distinct values and
    each element's index into them.

    Fast path for what a quantized model outputs, at most a few hundred values on an even grid (scale x
    code): the grid is guessed from the distinct values of a sample, each element's grid index computed
    in a few vectorised passes, and every element checked to equal the value at its index. Elements that
    fail (a value the sample missed, so the step guessed was too coarse) are few: their distinct values
    join the sample and the grid is guessed again. Off any grid, or with many failures, `np.unique` sorts
    every element (~10x slower on a million pixels). The check makes the answer the sort's, never an
    approximation.
    """
    probe = np.unique(flat[::max(1, flat.size // 4096)])
    for _ in range(_GRID_ATTEMPTS):
        # Floats only: the table is of flat's own type (np.unique's values), and NaN marks its holes.
        if flat.dtype.kind != "f" or not (2 <= probe.size <= _GRID_MAX and flat.size > 4 * probe.size):
            break
        with np.errstate(over="ignore"):  # values a float64 span apart: an infinite step, no grid
            step = float(np.min(np.diff(probe)))
        codes = (float(probe[-1]) - float(probe[0])) / step if step > 0 else 0.0
        if not (math.isfinite(codes) and 0 < round(codes) <= _GRID_MAX):
            break
        span = round(codes)
        table = np.full(span + 1, np.nan, dtype=flat.dtype)
        table[np.rint((probe - probe[0]) / step).astype(np.intp)] = probe
        with np.errstate(over="ignore", invalid="ignore"):  # far off the grid: clipped, then failed below
            code = np.clip(np.rint((flat - probe[0]) / step), 0, span).astype(np.intp)
        wrong = table[code] != flat  # NaN never equals: a grid value the probe missed is wrong too
        misses = int(np.count_nonzero(wrong))
        if misses == 0:
            present = ~np.isnan(table)
            return table[present], (np.cumsum(present) - 1)[code]
        if misses > flat.size // 16:
            break
        probe = np.union1d(probe, flat[wrong])
    values, inverse = np.unique(flat, return_inverse=True)
    return values, inverse.reshape(-1)


_GRID_ATTEMPTS = 3
# A quantized output has 256 (int8) or 65,536 (int16) codes; a grid wider than this is not one.
_GRID_MAX = 65_536


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
    """Mean distance in cm between the int8 and the float model's gaze points for the same inputs [N, 2].

    How far quantization moves the points, not what it costs in accuracy: it is at least the rise in mean
    error (`quantization_loss_cm`, triangle inequality) and can be far more (points moved around the label
    at the same distance lose nothing). Not TinyTracker's published figure.
    """
    a, b = _gaze_pair(pred_int8, pred_float, "quantization gap")
    return float(np.linalg.norm(a - b, axis=1).mean())


def quantization_loss_cm(pred_int8: np.ndarray, pred_float: np.ndarray, true: np.ndarray) -> float:
    """The gaze accuracy quantization costs, in cm: the int8 model's mean error minus the float model's, both
    against the labels `true` (all [N, 2], the same inputs); 0 when the int8 model is as accurate or more
    (no accuracy is lost, and a score is never negative in a results file: `results/schema.py`).

    TinyTracker's "without significant loss in gaze estimation accuracy (maximum of 0.16 cm when fully
    quantized)" bounds this. Raises MeasurementError for shapes that differ or non-finite points.
    """
    a, t = _gaze_pair(pred_int8, true, "quantization loss (int8 against labels)")
    b, _ = _gaze_pair(pred_float, true, "quantization loss (float against labels)")
    return max(0.0, float(np.linalg.norm(a - t, axis=1).mean() - np.linalg.norm(b - t, axis=1).mean()))
