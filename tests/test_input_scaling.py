"""The card's input range must be one the model's input tensor can take, or the images are not scored.

The host maps pixel p to lo + p / 255 * (hi - lo) with the card's `input.range` (default [0, 1]) and then
to the input's raw type. Two ways that silently fed the model another image than the user's:
- an integer input without quantization (raw pixels, a CAST inside the model) took [0, 1] truncated to
  0/1: a near-black image, and Q-Segment so fed still scored binary accuracy 0.906 (0.943 right);
- a quantized input whose scale and zero point represent another range than the card's: [-1, 1] pixels
  into an input quantized for [0, 1] saturate half the pixel range (0.918 instead of 0.943), and [0, 1]
  pixels into an input quantized for [-1, 1] use half its codes.
The expected raw values are written out from the closed form, not taken from the conversion under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import CatalogModel, ModelCatalog
from pytest_edgehil.errors import ModelError
from pytest_edgehil.measure.latency import to_model_input

from .conftest import MODELS
from .test_op_costs import Net, options

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

PIXELS = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)


def _write(tmp_path: Path, name: str, data: bytes, input_range: list[float] | None) -> CatalogModel:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    if input_range is not None:
        path.with_suffix(".json").write_text(json.dumps({"input": {"range": input_range}}), encoding="utf-8")
    return ModelCatalog(tmp_path).get(str(path))


def _raw_pixels_model(dtype: str) -> bytes:
    """Input `dtype` [1, 16, 16, 1] without quantization, CAST to float: a model that takes integers as is."""
    net = Net()
    pixels, out = net.tensor("pixels", (1, 16, 16, 1), dtype), net.tensor("out", (1, 16, 16, 1))
    net.op("CAST", [pixels], [out], options("Cast", inDataType=getattr(schema.TensorType, dtype),
                                            outDataType=schema.TensorType.FLOAT32))
    return net.build([pixels], [out])


def _qsegment_input_quantized_as(scale: float, zero_point: int) -> bytes:
    model = schema.ModelT.InitFromPackedBuf((MODELS / "qsegment.tflite").read_bytes(), 0)
    sub = model.subgraphs[0]
    quantization = sub.tensors[sub.inputs[0]].quantization
    quantization.scale, quantization.zeroPoint = [scale], [zero_point]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(("dtype", "input_range", "expected"), [
    ("UINT8", [0, 255], PIXELS.astype(np.int64)),
    ("INT8", [-128, 127], PIXELS.astype(np.int64) - 128),
])
def test_an_unquantized_integer_input_takes_the_integers_its_range_gives(tmp_path, dtype, input_range, expected):
    model = _write(tmp_path, "raw", _raw_pixels_model(dtype), input_range)
    got = to_model_input(model, PIXELS[0])
    assert got.dtype == np.dtype(dtype.lower())
    np.testing.assert_array_equal(got.astype(np.int64), expected)


@pytest.mark.parametrize(("dtype", "input_range", "what"), [
    ("UINT8", None, r"0\.00392.*not whole numbers"),  # the default [0, 1]: 1/255 is no integer
    ("UINT8", [0.0, 1.0], "not whole numbers"),
    ("INT8", [0, 255], r"\[0, 255\].*int8 holds \[-128, 127\]"),  # 128..255 would wrap to negative
])
def test_an_unquantized_integer_input_refuses_a_range_it_cannot_hold(tmp_path, dtype, input_range, what):
    model = _write(tmp_path, "raw", _raw_pixels_model(dtype), input_range)
    with pytest.raises(ModelError, match=what) as refused:
        to_model_input(model, PIXELS[0])
    text = str(refused.value)
    assert "'raw'" in text and "'pixels'" in text and "input.range" in text and str(model.card_path) in text


def test_a_quantized_input_refuses_a_card_range_that_saturates_half_the_pixels(tmp_path):
    model = _write(tmp_path, "qseg", (MODELS / "qsegment.tflite").read_bytes(), [-1.0, 1.0])
    image = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(ModelError, match=r"\[-1, 1\].*represents \[0, 1\].*50 % of the pixel range") as refused:
        to_model_input(model, image)
    assert "'qseg'" in str(refused.value) and str(model.card_path) in str(refused.value)
    for too_wide in ([0.0, 255.0], [-0.5, 1.0]):
        with pytest.raises(ModelError, match="saturate"):
            to_model_input(_write(tmp_path, "qseg", (MODELS / "qsegment.tflite").read_bytes(), too_wide), image)


def test_a_quantized_input_refuses_a_range_that_uses_half_its_codes_and_takes_its_own(tmp_path):
    """An input quantized for [-1, 1] (scale 1/128, zero point 0: it represents [-1, 0.9922])."""
    data = _qsegment_input_quantized_as(1 / 128, 0)
    image = np.resize(np.arange(256, dtype=np.uint8), (128, 128, 3))  # every pixel value, many times
    with pytest.raises(ModelError, match=r"\[0, 1\].*represents \[-1, 0.9922\].*50 % of its codes"):
        to_model_input(_write(tmp_path, "signed", data, None), image)
    got = to_model_input(_write(tmp_path, "signed", data, [-1.0, 1.0]), image)
    # (-1 + 2p/255) * 128 = p + p/255 - 128: never within 0.002 of a half step, saturated at 127 from p = 255
    expected = np.clip(np.round(image.astype(np.float64) * 256 / 255 - 128), -128, 127)
    np.testing.assert_array_equal(got[0].astype(np.float64), expected)


def _input_quantized_as(data: bytes, scale: float, zero_point: int) -> bytes:
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    sub = model.subgraphs[0]
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [scale], [zero_point]
    sub.tensors[sub.inputs[0]].quantization = quantization
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("input_range", [None, [0.0, 1.0], [-1.0, 1.0]])
def test_an_int16_input_of_a_16x8_model_takes_a_range_on_one_side_of_zero(tmp_path, input_range):
    """TFLite's 16x8 mode quantizes int16 activations symmetrically (zero point 0, always): calibrated on
    [0, 1] images, the input represents [-1, 1] and a [0, 1] image can use only half its codes, so its
    quantization cannot tell a [0, 1] model from a [-1, 1] one and neither range is refused."""
    data = _input_quantized_as(_raw_pixels_model("INT16"), 1 / 32767, 0)
    got = to_model_input(_write(tmp_path, "x16", data, input_range), PIXELS[0])
    lo, hi = input_range or [0.0, 1.0]
    expected = np.round((lo + PIXELS[0].astype(np.float64) / 255 * (hi - lo)) * 32767)
    np.testing.assert_allclose(got.astype(np.float64), expected.reshape(got.shape), atol=1)  # float32 arithmetic: one step at most


def test_an_int16_input_still_refuses_a_range_that_saturates(tmp_path):
    data = _input_quantized_as(_raw_pixels_model("INT16"), 1 / 32767, 0)
    with pytest.raises(ModelError, match="saturate"):
        to_model_input(_write(tmp_path, "x16", data, [0.0, 255.0]), PIXELS[0])


def test_the_shipped_models_ranges_fit_their_inputs():
    catalog = ModelCatalog(MODELS)
    for name in catalog.names():
        model = catalog.get(name)
        image = np.zeros(model.info.inputs[0].shape[1:], np.uint8)
        assert to_model_input(model, image).shape == model.info.inputs[0].shape


def test_a_symmetric_int8_input_takes_the_range_its_card_states_and_is_refused_without_one(tmp_path):
    # Zero point 0, scale 1/127: the input represents [-1.008, 1]. Quantized symmetrically (ONNX QDQ,
    # Vitis AI), a model fed [0, 1] images has exactly this input; only its card can say so. Without a
    # card the default [0, 1] is the usual missing card for a [-1, 1] model, and stays refused.
    data = _qsegment_input_quantized_as(1 / 127, 0)
    (tmp_path / "no-card").mkdir()
    with pytest.raises(ModelError, match=r"use only 50 % of its codes.*default \[0, 1\].*gives no `input.range`"):
        to_model_input(_write(tmp_path / "no-card", "sym", data, None), PIXELS)
    stated = _write(tmp_path, "sym", data, [0.0, 1.0])
    image = np.arange(128 * 128 * 3, dtype=np.int64).reshape(128, 128, 3) % 256
    raw = to_model_input(stated, image.astype(np.uint8))
    assert raw.dtype == np.int8
    assert np.array_equal(raw.reshape(-1), np.rint(image.reshape(-1) / 255.0 * 127).astype(np.int8))
    # A stated range that saturates the input (pixels beyond what it represents) is still refused.
    with pytest.raises(ModelError, match=r"would saturate.*its card's `input.range`"):
        to_model_input(_write(tmp_path, "sym2", data, [-3.0, 1.0]), image.astype(np.uint8))
