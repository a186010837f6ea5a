"""Model outputs are scored in the targets' shape only when they differ from it by size-1 dimensions.

A blind reshape scored an output with as many elements in another layout as scrambled pixels, and a
two-channel softmax crashed with numpy's ValueError instead of a typed error naming the shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError
from pytest_edgehil.measure.metrics import to_target_shape


def test_size_one_dimensions_are_dropped_and_values_keep_their_pixels():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 2, size=(3, 4, 5))
    prob = rng.random((3, 1, 4, 5, 1))
    shaped = to_target_shape(prob, masks, "model 'm'")
    assert shaped.shape == masks.shape
    assert np.array_equal(shaped[2, 3, 4], prob[2, 0, 3, 4, 0]) and np.array_equal(shaped[1], prob[1, 0, :, :, 0])
    gaze = to_target_shape(rng.random((3, 1, 2)), rng.random((3, 2)), "model 'g'")
    assert gaze.shape == (3, 2)


@pytest.mark.parametrize(("pred_shape", "said"), [
    ((3, 8, 8, 2), r"outputs of shape \[8, 8, 2\] for 3 targets of shape \[8, 8\]"),  # two-channel softmax
    ((3, 4, 16, 1), r"outputs of shape \[4, 16, 1\] for 3 targets of shape \[8, 8\]"),  # as many pixels, scrambled
    ((2, 8, 8), r"2 outputs of shape \[8, 8\] for 3 targets"),  # one image short
])
def test_outputs_of_another_shape_are_refused_naming_both(pred_shape, said):
    with pytest.raises(MeasurementError, match=said) as info:
        to_target_shape(np.zeros(pred_shape), np.zeros((3, 8, 8)), "model 'seg2'")
    assert "model 'seg2'" in str(info.value) and "output.name" in str(info.value)
