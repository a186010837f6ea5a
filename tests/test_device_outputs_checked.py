"""A device's outputs are checked against the model's output spec before they are dequantized and scored.

A CRC proves the bytes arrived as sent, the model SHA-256 that the right model was named; neither proves
that the firmware packed the outputs the model has. A firmware that sends an int8 output as uint8 (the
same bytes, another type code) gives every value off by 256 × scale after dequantization, and one that
drops an element shifts every later value: plausible numbers an accuracy gate would score. Each way a
board is asked (SET_INPUT + RUN 1, pipelined EVAL, EVAL_BATCH) must refuse such outputs with a typed error
naming the device, the port, the output, what came and what the model has, never return them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import CatalogModel, ModelCatalog
from pytest_edgehil.errors import InvalidPayload
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.latency import infer, infer_many, to_model_input
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
Outputs = tuple[np.ndarray, ...]


class LiteRTFirmware:
    """A firmware running the model with LiteRT; `mutate(outputs, n)` rewrites the n-th inference's outputs
    (0-based) before they are sent. `modes`: "run" (SET_INPUT + RUN only), "eval" (EVAL, pipeline=3),
    "batch" (EVAL and EVAL_BATCH, batch=8)."""

    def __init__(self, model: CatalogModel, mode: str, mutate: Callable[[Outputs, int], Outputs]) -> None:
        self.runner, self.sha = ModelRunner(model.data), hashlib.sha256(model.data).digest()
        self.inputs = [np.zeros(s.shape, s.dtype) for s in self.runner.inputs]
        self.caps = {"run": ("run",), "eval": ("eval", f"pipeline={REPLY_CACHE}"),
                     "batch": ("eval", f"pipeline={REPLY_CACHE}", "batch=8")}[mode]
        self.mutate, self.count = mutate, 0

    def _infer(self, inputs: list[tuple[int, np.ndarray]]) -> Outputs:
        for index, tensor in inputs:
            self.inputs[index] = tensor
        outputs = self.mutate(tuple(self.runner.run_raw(self.inputs)), self.count)
        self.count += 1
        return outputs

    def __call__(self, message: p.Message) -> list[p.Message]:
        timing = p.StageTiming(0.0, 1.0, 2.0, 3.0)
        if isinstance(message, p.Hello):
            return [p.HelloReply("lite", "l0", "t", p.PROTOCOL_VERSION, self.caps, 1, 1, "L-1")]
        if isinstance(message, p.SetInput):
            self.inputs[message.index] = message.tensor
            return [p.Ack(message.msg_type)]
        if isinstance(message, p.Run):
            timings = tuple(p.StageTiming(10.0 * i, 1.0, 2.0, 3.0) for i in range(message.count))
            return [p.Result(timings, self._infer([]), self.sha)]
        if isinstance(message, p.Eval):
            return [p.Result((timing,), self._infer(list(message.inputs)), self.sha)]
        if isinstance(message, p.EvalBatch):
            outputs = tuple(self._infer(list(zip(message.indices, tensors))) for tensors in message.images)
            timings = tuple(p.StageTiming(10.0 * i, 1.0, 2.0, 3.0) for i in range(len(outputs)))
            return [p.BatchResult(self.sha, message.payload_crc32, timings, outputs)]
        return [p.Ack(message.msg_type)]  # LOAD_*, SELECT_MODEL


class _Dut:
    def __init__(self, client: DeviceClient) -> None:
        self.client, self.hello = client, client.hello()


@pytest.fixture(scope="module")
def tinytracker() -> CatalogModel:
    return ModelCatalog(MODELS).get("tinytracker")


def _images(model: CatalogModel, n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(8)
    return [rng.integers(0, 256, size=model.info.inputs[0].shape[1:], dtype=np.uint8) for _ in range(n)]


def _outputs(model: CatalogModel, mode: str, mutate: Callable[[Outputs, int], Outputs],
             images: list[np.ndarray]) -> np.ndarray:
    """What `infer_many` (or, for "run", `infer` per image) returns from a LiteRTFirmware doing `mutate`."""
    with serve_pty(LiteRTFirmware(model, mode, mutate), name="l0") as endpoint, \
            DeviceClient(endpoint.port, name="lite-board", timeout_s=5) as client:
        client.load_model(model.data, model.name)
        dut = _Dut(client)
        if mode == "run":
            return np.stack([infer(dut, model, image) for image in images])  # type: ignore[arg-type]
        return infer_many(dut, model, images)  # type: ignore[arg-type]


def _as_uint8(outputs: Outputs) -> Outputs:
    return tuple(o.view(np.uint8) if o.dtype == np.int8 else o for o in outputs)


BAD_OUTPUTS: dict[str, tuple[Callable[[Outputs, int], Outputs], str]] = {
    # int8 bytes labelled uint8: dequantized 256 × scale off wherever the value is negative
    "uint8 for int8": (lambda o, n: _as_uint8(o), r"output 0 is uint8\[1, 2\].*int8\[1, 2\]"),
    "uint8 for int8 in one image": (lambda o, n: _as_uint8(o) if n == 3 else o, r"output 0 is uint8"),
    "float32 for int8": (lambda o, n: tuple(x.astype(np.float32) for x in o), r"output 0 is float32"),
    "flattened": (lambda o, n: tuple(x.ravel() for x in o), r"output 0 is int8\[2\].*int8\[1, 2\]"),
    "one element short": (lambda o, n: tuple(x.ravel()[:-1].reshape(1, -1) for x in o), r"int8\[1, 1\]"),
    "no output": (lambda o, n: (), r"0 outputs.*has 1"),
    "an extra output": (lambda o, n: (*o, o[0]), r"2 outputs.*has 1"),
}


@pytest.mark.parametrize("mode", ["run", "eval", "batch"])
@pytest.mark.parametrize("bad", list(BAD_OUTPUTS))
def test_outputs_that_are_not_the_model_s_are_refused_naming_device_output_and_spec(tinytracker, mode, bad):
    mutate, what = BAD_OUTPUTS[bad]
    with pytest.raises(InvalidPayload, match=what) as refused:
        _outputs(tinytracker, mode, mutate, _images(tinytracker))
    text = str(refused.value)
    assert "'lite-board' on /dev/" in text and "tinytracker" in text and "firmware" in text


@pytest.mark.parametrize("mode", ["run", "eval", "batch"])
def test_outputs_the_model_has_pass_and_equal_litert_s(tinytracker, mode):
    images = _images(tinytracker)
    got = _outputs(tinytracker, mode, lambda o, n: o, images)
    runner, spec = ModelRunner(tinytracker.data), tinytracker.info.outputs[0]
    expected = np.stack([spec.dequantize(runner.run_raw([to_model_input(tinytracker, x)])[0]) for x in images])
    np.testing.assert_array_equal(got, expected)


def _with_non_finite(value: float) -> Callable[[Outputs, int], Outputs]:
    def mutate(outputs: Outputs, n: int) -> Outputs:
        if n != 3:
            return outputs
        bad = outputs[0].copy()
        bad.flat[1] = value
        return (bad, *outputs[1:])
    return mutate


@pytest.mark.parametrize("mode", ["run", "eval", "batch"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_float_output_that_is_nan_or_infinite_is_refused_naming_the_device(mode, value):
    """A float model's output holding NaN or ±inf (a firmware fault: an uninitialised buffer, a division by a
    zero scale) is no score: refused at the link, naming the device, the port, the image and the value,
    not left for a metric to refuse without saying which board sent it."""
    model = ModelCatalog(MODELS).get("tinytracker_float")
    assert model.info.outputs[0].dtype == np.float32
    with pytest.raises(InvalidPayload) as refused:
        _outputs(model, mode, _with_non_finite(value), _images(model))
    text = str(refused.value)
    assert "'lite-board' on /dev/" in text and "tinytracker_float" in text and "output 0" in text
    assert repr(float(value)) in text and "1 of 2" in text  # the value, and how many of the output's elements


@pytest.mark.parametrize("mode", ["eval", "batch"])
@pytest.mark.parametrize(("model_name", "mutate", "image"), [
    ("tinytracker", lambda o, n: _as_uint8(o) if n == 4 else o, 5),
    ("tinytracker_float", _with_non_finite(np.nan), 4),  # NaN in the fourth image only
])
def test_a_fault_in_one_image_of_an_evaluation_names_that_image(mode, model_name, mutate, image):
    """`infer_many` checks the outputs of a whole evaluation at once and, on a fault, image by image: the
    refusal names the image at fault, not the first image nor the last."""
    model = ModelCatalog(MODELS).get(model_name)
    with pytest.raises(InvalidPayload, match=rf"evaluate \(image {image}\) of model") as refused:
        _outputs(model, mode, mutate, _images(model, n=7))
    assert "'lite-board' on /dev/" in str(refused.value)
