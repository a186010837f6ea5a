"""`edgehil agent` with a model whose input leaves height and width open (shared case dynamic-shape).

The agent runs the model at the shape it is fed, as the device twin does (tests/test_case_dynamic_shape.py):
SET_INPUT, EVAL and EVAL_BATCH take any shape the input's signature allows, and each image of one
EVAL_BATCH runs and is timed at its own shape. Before any input is set there is no size to run at: a RUN
is refused, never timed at the file's 1x1 placeholder (its figures must never pass for the model's cost).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from pytest_edgehil.agent.litert_device import LiteRTDevice
from pytest_edgehil.link import messages as p
from pytest_edgehil.model.runtime import ModelRunner

from .conftest import REPO

MODEL = (REPO / "tests" / "data" / "cases" / "dynamic-shape" / "dyn_conv_int8.tflite").read_bytes()
SHAPES = [(1, 8, 8, 8), (1, 16, 4, 8), (1, 3, 5, 8)]


def expected(x: np.ndarray) -> np.ndarray:
    runner = ModelRunner(MODEL)
    runner.resize_inputs([x.shape])
    return runner.run_raw([x])[0]


@pytest.fixture
def agent() -> LiteRTDevice:
    device = LiteRTDevice(name="dyn-agent", extra_capabilities=())
    sha = hashlib.sha256(MODEL).digest()
    for message in (p.LoadBegin(len(MODEL), sha, "dyn_conv_int8"), p.LoadChunk(0, MODEL), p.LoadEnd(sha)):
        assert isinstance(device.handle(message), p.Ack)
    return device


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [rng.integers(-128, 128, size=shape, dtype=np.int8) for shape in SHAPES]


def test_a_run_before_any_input_is_refused_not_timed_at_the_placeholder(agent):
    reply = agent.handle(p.Run(1))
    assert isinstance(reply, p.Error) and reply.code == p.ErrorCode.BAD_INPUT
    assert "dynamic" in reply.text and "SET_INPUT" in reply.text


def test_set_input_and_run_at_shapes_the_signature_allows(agent):
    for x in _inputs():
        assert isinstance(agent.handle(p.SetInput(0, x)), p.Ack)
        result = agent.handle(p.Run(2))
        assert isinstance(result, p.Result), result
        np.testing.assert_array_equal(result.outputs[0], expected(x))


def test_one_eval_batch_runs_each_image_at_its_own_shape(agent):
    xs = _inputs()
    reply = agent.handle(p.EvalBatch((0,), tuple((x,) for x in xs)))
    assert isinstance(reply, p.BatchResult), reply
    for x, outputs in zip(xs, reply.outputs):
        assert outputs[0].shape == (*x.shape[:3], 16)
        np.testing.assert_array_equal(outputs[0], expected(x))
    single = agent.handle(p.Eval(((0, xs[1]),)))
    assert isinstance(single, p.Result)
    np.testing.assert_array_equal(single.outputs[0], expected(xs[1]))


@pytest.mark.parametrize(("tensor", "why"), [
    (np.zeros((1, 8, 8, 3), np.int8), r"int8\[1, 8, 8, 3\].*\[1, -1, -1, 8\]"),  # a fixed dim differs
    (np.zeros((1, 8, 8), np.int8), r"\[1, -1, -1, 8\]"),                           # another rank
    (np.zeros((1, 8, 8, 8), np.uint8), r"uint8.*int8"),                           # another dtype
])
def test_a_shape_or_dtype_the_signature_does_not_allow_is_refused_naming_it(agent, tensor, why):
    reply = agent.handle(p.SetInput(0, tensor))
    assert isinstance(reply, p.Error) and reply.code == p.ErrorCode.BAD_INPUT
    assert re.search(why, reply.text), reply.text


def test_a_model_whose_only_open_dimension_is_the_batch_runs_at_batch_1_without_set_input():
    """Keras's default signature [-1, 8, 8, 4]: the boards (and the twins, and the analysis) run it at batch
    1, so a RUN before any SET_INPUT is the batch-1 inference, not a refusal."""
    from .test_footprint_shapes import batch_model

    data = batch_model()
    device = LiteRTDevice(name="batch-agent", extra_capabilities=())
    sha = hashlib.sha256(data).digest()
    for message in (p.LoadBegin(len(data), sha, "keras_default"), p.LoadChunk(0, data), p.LoadEnd(sha)):
        assert isinstance(device.handle(message), p.Ack)
    result = device.handle(p.Run(1))
    assert isinstance(result, p.Result), result
    (want,) = ModelRunner(data).run_raw([np.zeros((1, 8, 8, 4), np.float32)])
    assert result.outputs[0].shape == (1, 8, 8, 6)
    np.testing.assert_array_equal(result.outputs[0], want)
