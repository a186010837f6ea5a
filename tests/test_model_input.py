"""The host's image → raw input conversion: the 256-entry table for uint8 images gives exactly the bytes
of the per-pixel arithmetic, for int8, uint8 and float inputs; other images take the arithmetic."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelError
from pytest_edgehil.measure.latency import _convert, to_model_input

from .conftest import MODELS


@pytest.mark.parametrize(("name", "input_range"), [
    ("tinytracker", None), ("qsegment", None), ("lowres_seg", None), ("tinytracker_float", None),
    ("tinytracker", [0.0, 0.8]),  # an int8 table that is no byte offset (round(0.8 p) - 128): the gather
])
def test_the_uint8_table_gives_the_arithmetic_bytes_exactly(name, input_range):
    model = ModelCatalog(MODELS).get(name)
    if input_range is not None:
        model = replace(model, card={**model.card, "input": {**model.card.get("input", {}), "range": input_range}})
    spec = model.info.inputs[0]
    lo, hi = model.input_range
    image = np.random.default_rng(3).integers(0, 256, size=spec.shape[1:], dtype=np.uint8)
    image.flat[:256] = np.arange(256)  # every pixel value at least once, whatever the draw
    expected = _convert(spec, lo, hi, image).reshape(spec.shape)
    got = to_model_input(model, image)
    assert got.dtype == expected.dtype == spec.dtype and got.shape == tuple(spec.shape)
    assert got.tobytes() == expected.tobytes()
    got.flat[0] = 1  # the caller's copy: the shared table is not written through it
    assert to_model_input(model, image).tobytes() == expected.tobytes()


def test_a_float_image_takes_the_arithmetic_and_nan_is_refused():
    model = ModelCatalog(MODELS).get("tinytracker")
    spec = model.info.inputs[0]
    image = np.random.default_rng(4).uniform(0, 255, size=spec.shape[1:]).astype(np.float32)
    lo, hi = model.input_range
    assert to_model_input(model, image).tobytes() == _convert(spec, lo, hi, image).reshape(spec.shape).tobytes()
    image[0, 0, 0] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        to_model_input(model, image)


@pytest.mark.parametrize("shape", [(48, 192), (192, 48, 1), (9216,), (64, 64)])
def test_an_image_that_is_not_the_input_s_shape_is_refused_not_reshaped(shape):
    # (48, 192) holds the 9,216 pixels of a 96x96 input: reshaped, it would run as a scrambled image and
    # give a plausible output. Only the input's own shape, with or without its size-1 dims, is taken.
    model = ModelCatalog(MODELS).get("tinytracker")
    for dtype in (np.uint8, np.float32):
        with pytest.raises(ModelError, match=rf"tinytracker.*{list(shape)}.*\[1, 96, 96, 1\]"):
            to_model_input(model, np.zeros(shape, dtype))
    for ok in [(96, 96), (96, 96, 1), (1, 96, 96, 1)]:
        assert to_model_input(model, np.zeros(ok, np.uint8)).shape == (1, 96, 96, 1)
