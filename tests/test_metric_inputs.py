"""Outputs the accuracy metrics must refuse rather than score: each case's right figure is worked out here
by hand or in numpy, to show the number the unguarded metric would have published."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.metrics import segmentation_scores


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_logits_are_refused_not_thresholded_at_one_half():
    """A model output without its sigmoid: logit 0.3 is probability 0.574 (vessel), but `0.3 > 0.5` calls it
    background. Thresholded as they are, these logits score 3 of 5 pixels right; their probabilities 5 of 5."""
    logits = np.array([-3.0, -0.2, 0.3, 0.4, 2.0])
    mask = np.array([0, 0, 1, 1, 1])
    assert np.mean((sigmoid(logits) > 0.5) == mask) == 1.0  # the right figure
    assert np.mean((logits > 0.5) == mask) == 0.6  # what scoring the logits would publish
    with pytest.raises(MeasurementError, match=r"span \[-3, 2\].*not probabilities.*sigmoid"):
        segmentation_scores(logits, mask)
    assert segmentation_scores(sigmoid(logits), mask).binary_accuracy == 1.0


@pytest.mark.parametrize("prob", [np.array([0.0, 0.2, 0.7, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])])
def test_probabilities_at_zero_and_one_are_scored(prob):
    assert segmentation_scores(prob, np.array([0, 0, 1, 1])).binary_accuracy == 1.0


def test_an_output_scaled_to_the_byte_range_is_refused():
    """A probability left in 0..255 (an int8 output read as uint8 codes, or never dequantized): every pixel
    above 0.5 is foreground, so the accuracy is the foreground fraction of the codes > 0, not the model's."""
    codes = np.array([0, 30, 100, 200, 255], dtype=np.float64)
    with pytest.raises(MeasurementError, match=r"span \[0, 255\]"):
        segmentation_scores(codes, np.array([0, 0, 0, 1, 1]))
