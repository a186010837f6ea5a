"""Accuracy and sample-statistics math, checked against closed forms and direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.metrics import (
    bootstrap_ci,
    distinct_values,
    gaze_errors_cm,
    gaze_scores,
    quantization_gap_cm,
    segmentation_scores,
    summarize,
)


def pairwise_auc(prob: np.ndarray, mask: np.ndarray) -> float:
    """AUC by its definition: P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = prob[mask == 1].reshape(-1, 1), prob[mask == 0].reshape(1, -1)
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


# ------------------------------------------------------------------------------------------ segmentation


def test_perfect_prediction_scores_one():
    mask = (np.arange(64).reshape(8, 8) % 3 == 0).astype(np.uint8)
    scores = segmentation_scores(mask.astype(np.float32) * 0.9 + 0.05, mask)
    assert scores.roc_auc == 1.0
    assert scores.binary_accuracy == 1.0
    assert scores.pixels == 64


def test_inverted_prediction_scores_zero():
    mask = (np.arange(64).reshape(8, 8) % 3 == 0).astype(np.uint8)
    scores = segmentation_scores(1.0 - mask, mask)
    assert scores.roc_auc == 0.0
    assert scores.binary_accuracy == 0.0


def test_hand_computed_auc_and_accuracy():
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: of the 4 (pos, neg) pairs, 3 are ordered
    # right (0.35 < 0.4 is the one wrong), so AUC = 3/4. At 0.5, only 0.8 is foreground: 3 of 4 right.
    scores = segmentation_scores(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert scores.roc_auc == pytest.approx(0.75)
    assert scores.binary_accuracy == pytest.approx(0.75)


def test_ties_count_half_and_threshold_is_strict():
    scores = segmentation_scores(np.array([0.5, 0.5]), np.array([0, 1]))
    assert scores.roc_auc == pytest.approx(0.5)
    assert scores.binary_accuracy == pytest.approx(0.5)
    # prob == threshold is background (prob > threshold is foreground, as Keras' binary accuracy)
    at_threshold = segmentation_scores(np.array([0.5, 0.9, 0.1]), np.array([0, 1, 0]))
    assert at_threshold.binary_accuracy == 1.0
    assert segmentation_scores(np.array([0.5, 0.5]), np.array([0, 1]), threshold=0.4).binary_accuracy == 0.5
    assert segmentation_scores(np.array([0.2, 0.6]), np.array([0, 1]), threshold=0.7).binary_accuracy == 0.5


def test_scores_pool_pixels_of_all_images():
    rng = np.random.default_rng(7)
    mask = (rng.random((3, 16, 16)) < 0.2).astype(np.uint8)
    # A different offset per image makes the pooled AUC differ from the mean of per-image AUCs.
    prob = np.clip(0.3 * mask + rng.random((3, 16, 16)) * 0.6 + np.array([0.0, 0.2, 0.4])[:, None, None], 0, 1)
    scores = segmentation_scores(prob, mask)
    per_image_mean = np.mean([pairwise_auc(prob[i], mask[i]) for i in range(3)])
    assert scores.roc_auc == pytest.approx(pairwise_auc(prob, mask), abs=1e-12)
    assert scores.roc_auc != pytest.approx(per_image_mean, abs=1e-3)
    assert scores.binary_accuracy == pytest.approx(np.mean((prob > 0.5) == mask))
    assert scores.pixels == mask.size


def test_bool_mask_is_accepted():
    mask = np.array([[True, False], [False, True]])
    assert segmentation_scores(np.array([[0.9, 0.2], [0.1, 0.7]]), mask).roc_auc == 1.0


@pytest.mark.parametrize("value", [0, 1])
def test_single_class_mask_is_named(value):
    with pytest.raises(MeasurementError, match=rf"single class \({value}\).*ROC AUC is undefined"):
        segmentation_scores(np.full((4, 4), 0.3), np.full((4, 4), value, dtype=np.uint8))


@pytest.mark.parametrize(("prob", "mask", "message"), [
    (np.zeros((2, 3)), np.array([[0, 1], [1, 0]]), r"shape \(2, 3\).*\(2, 2\)"),
    (np.array([0.1, np.nan]), np.array([0, 1]), "NaN"),
    (np.array([0.1, 0.9]), np.array([0, 255]), "binary"),
    (np.zeros(0), np.zeros(0), "no pixels"),
])
def test_bad_segmentation_inputs_raise(prob, mask, message):
    with pytest.raises(MeasurementError, match=message):
        segmentation_scores(prob, mask)


# -------------------------------------------------------------------------------------------------- gaze


def test_gaze_errors_are_euclidean_3_4_5():
    true = np.array([[0.0, 0.0], [1.0, -2.0], [-5.0, -10.0]])
    pred = true + np.array([[3.0, 4.0], [-4.0, 3.0], [0.0, -5.0]])
    np.testing.assert_allclose(gaze_errors_cm(pred, true), [5.0, 5.0, 5.0])


def test_gaze_scores_summarize_errors():
    true = np.zeros((5, 2))
    pred = np.array([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0], [0.0, 2.0], [0.0, 0.0]])  # errors 5, 1, 10, 2, 0
    scores = gaze_scores(pred, true)
    assert scores.mean_cm == pytest.approx(18 / 5)
    assert scores.median_cm == pytest.approx(2.0)
    assert scores.p95_cm == pytest.approx(5 + 0.8 * (10 - 5))  # linear interpolation at rank 0.95 * 4
    assert scores.n == 5


def test_quantization_gap_is_mean_distance():
    pred_float = np.array([[1.0, 1.0], [2.0, -3.0]])
    pred_int8 = pred_float + np.array([[0.06, 0.08], [0.0, -0.3]])  # distances 0.1 and 0.3
    assert quantization_gap_cm(pred_int8, pred_float) == pytest.approx(0.2)
    assert quantization_gap_cm(pred_float, pred_float) == 0.0


@pytest.mark.parametrize(("pred", "true"), [
    (np.zeros((3, 2)), np.zeros((2, 2))),
    (np.zeros((3, 3)), np.zeros((3, 3))),
    (np.zeros((0, 2)), np.zeros((0, 2))),
    (np.array([[np.inf, 0.0]]), np.zeros((1, 2))),
])
def test_bad_gaze_inputs_raise(pred, true):
    with pytest.raises(MeasurementError, match="gaze"):
        gaze_errors_cm(pred, true)


# ----------------------------------------------------------------------------------------------- samples


def test_ci_contains_median_and_shrinks_with_n():
    # For normal data the median's standard error is sqrt(pi/2) sigma / sqrt(n): the 95 % CI is about
    # 2 * 1.96 * 1.2533 * sigma / sqrt(n) wide, so 16x the samples make it 4x narrower.
    rng = np.random.default_rng(3)
    sigma = 0.2
    mean_widths = []
    for n in (25, 100, 400):
        widths = []
        for _ in range(6):
            x = rng.normal(1.0, sigma, n)
            lo, hi = bootstrap_ci(x)
            assert lo <= np.median(x) <= hi
            widths.append(hi - lo)
        mean_widths.append(float(np.mean(widths)))
        assert mean_widths[-1] == pytest.approx(2 * 1.96 * np.sqrt(np.pi / 2) * sigma / np.sqrt(n), rel=0.35)
    assert mean_widths[0] > mean_widths[1] > mean_widths[2]


def test_ci_is_repeatable_for_a_seed():
    x = np.random.default_rng(4).normal(10.0, 1.0, 40)
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)
    # Another seed draws other resamples. Shown on the mean, which takes a new value with every resample: the
    # median's interval ends are sample values (or midpoints of two), and seeds 1 and 2 gave the same median
    # interval for 48 samples in 200 (this one's included, once the data were drawn from another seed).
    assert bootstrap_ci(x, statistic=np.mean, seed=1) != bootstrap_ci(x, statistic=np.mean, seed=2)


def test_ci_of_the_median_covers_the_true_median():
    # 95 % intervals over 80 independent normal samples: coverage near 0.95 (binomial sd ~ 0.025).
    rng = np.random.default_rng(5)
    covered = [lo <= 0.0 <= hi for lo, hi in (bootstrap_ci(rng.normal(0.0, 1.0, 41), n_resamples=1000)
                                               for _ in range(80))]
    assert 0.85 <= np.mean(covered) <= 1.0


def test_bca_and_other_statistics():
    x = np.random.default_rng(6).exponential(1.0, 60)
    lo, hi = bootstrap_ci(x, statistic=np.mean, method="BCa")
    assert lo < x.mean() < hi
    # Closed form for the mean: the CI is about mean +- 1.96 s/sqrt(n).
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert (hi - lo) == pytest.approx(2 * half, rel=0.3)


@pytest.mark.parametrize("values", [[7.5], [7.5, 9.0], [7.5] * 10])
def test_degenerate_samples_give_zero_width_ci(values):
    lo, hi = bootstrap_ci(values)
    assert lo == hi == float(np.median(values))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"values": []}, "no samples"),
    ({"values": [1.0, np.nan, 2.0]}, "NaN"),
    ({"values": [1.0, 2.0, 3.0], "confidence": 1.0}, "confidence"),
    ({"values": [1.0, 2.0, 3.0], "method": "basic-ish"}, "method"),
])
def test_bad_bootstrap_inputs_raise(kwargs, message):
    with pytest.raises(MeasurementError, match=message):
        bootstrap_ci(**kwargs)


def test_summarize_matches_numpy():
    x = np.random.default_rng(8).gamma(4.0, 0.5, 51)
    s = summarize(x)
    assert s.median == pytest.approx(np.median(x))
    assert s.mean == pytest.approx(x.mean())
    assert s.std == pytest.approx(x.std(ddof=1))
    assert s.n == 51
    assert s.ci_low < s.median < s.ci_high


def test_summarize_degenerate_cases():
    one = summarize([0.23])
    assert (one.median, one.ci_low, one.ci_high, one.n, one.std) == (0.23, 0.23, 0.23, 1, 0.0)
    same = summarize([1.5, 1.5, 1.5, 1.5])
    assert same.ci_low == same.ci_high == same.median == 1.5
    assert same.std == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=60))
def test_median_ci_lies_within_the_data(values):
    s = summarize(values)
    ulps = 1e-12 * max(abs(v) for v in values)  # the percentile interpolation may round past an end
    assert min(values) - ulps <= s.ci_low <= s.ci_high <= max(values) + ulps
    assert min(values) <= s.median <= max(values)


@pytest.mark.parametrize("quantized", [True, False])
def test_pooled_segmentation_scores_equal_scikit_learn_on_every_pixel(quantized):
    # The scores are computed on the distinct probabilities weighted by their pixel counts; they must be
    # exactly scikit-learn's over the raw pixels (a quantized output's 256 levels, and continuous floats
    # where every value is distinct), ties included.
    from sklearn.metrics import accuracy_score, roc_auc_score

    rng = np.random.default_rng(11)
    raw = rng.integers(0, 256, size=(3, 64, 64)) if quantized else rng.random((3, 64, 64))
    prob = raw / 255.0 if quantized else raw
    mask = rng.random(prob.shape) < prob  # foreground more likely where the model says so
    scores = segmentation_scores(prob, mask)
    assert scores.roc_auc == roc_auc_score(mask.reshape(-1), prob.reshape(-1))
    assert scores.binary_accuracy == accuracy_score(mask.reshape(-1), prob.reshape(-1) > 0.5)
    assert scores.pixels == prob.size


def _assert_unique_equal(flat: np.ndarray) -> None:
    values, inverse = distinct_values(flat)
    expected_values, expected_inverse = np.unique(flat, return_inverse=True)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))


@pytest.mark.parametrize("scale, zero_point, dtype", [(1 / 256, -128, np.int8), (1 / 255, 0, np.uint8),
                                                      (0.0123, 7, np.int8), (3e-5, 0, np.int16)])
def test_distinct_values_of_a_dequantized_output_equal_numpy_unique(scale, zero_point, dtype):
    # The grid fast path (the output of a quantized model): float32 dequantization as LiteRT does it,
    # then float64, as infer_many hands it over.
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    codes = rng.integers(info.min, int(info.max) + 1, size=200_000).astype(np.float32)
    _assert_unique_equal(((codes - np.float32(zero_point)) * np.float32(scale)).astype(np.float64))


@given(st.lists(st.integers(0, 255), min_size=1, max_size=400), st.integers(0, 2000),
       st.sampled_from([0.0, 0.5, 1e-9, -0.25]))
@settings(max_examples=150, deadline=None)
def test_distinct_values_equal_numpy_unique_on_and_off_the_grid(codes, repeat, nudge):
    # Grids with missing codes (the probe sees a coarser step), single values, and one element moved off
    # the grid (by half a step, by a hair, or below the lowest value): all must come out as np.unique's.
    grid = np.repeat(np.array(codes, dtype=np.float64) / 255.0, 1 + repeat // max(1, len(codes)))
    grid[len(grid) // 2] += nudge / 255.0
    _assert_unique_equal(grid)


def test_distinct_values_of_continuous_floats_fall_back_to_the_sort():
    rng = np.random.default_rng(5)
    _assert_unique_equal(rng.random(50_000))
    _assert_unique_equal(np.concatenate([np.arange(1000) / 7.0, [np.pi]]).repeat(20))


@pytest.mark.parametrize("rare", [1, 5, 40, 300])
def test_distinct_values_of_a_skewed_output_equal_numpy_unique(rare):
    # A segmentation output is mostly one code (background) with rare codes between: the sample the grid
    # is guessed from misses most of them, so the step guessed is too coarse until they are added.
    rng = np.random.default_rng(rare)
    codes = np.full(300_000, -128, dtype=np.int8)
    where = rng.choice(codes.size, size=rare, replace=False)
    codes[where] = rng.integers(-127, 128, size=rare)
    codes[: 3000] = 127  # some foreground
    _assert_unique_equal(((codes.astype(np.float32) + 128) * np.float32(1 / 256)).astype(np.float64))


@pytest.mark.parametrize("flat", [
    np.array([-1.7e308, 1.7e308] * 600),  # finite values whose span overflows to infinity
    np.array([-1.7e308, 0.0, 1.7e308] * 600),
    (np.arange(1200) % 7 / 8).astype(np.float32),  # a float32 grid: float32 values back, as np.unique's
    (np.arange(1200) % 7 + 2**62).astype(np.int64),  # integers a float64 grid cannot tell apart
], ids=["span-overflow-2", "span-overflow-3", "float32", "int64-near-2**62"])
def test_distinct_values_at_the_edges_of_the_grid_fast_path_equal_numpy_unique(flat):
    values, _ = distinct_values(flat)
    assert values.dtype == np.unique(flat).dtype
    _assert_unique_equal(flat)
