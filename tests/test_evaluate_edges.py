"""`evaluate` and `infer_many` at their edges: no image, images carrying different numbers of inputs, and a
device whose active model changes in the middle of one evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ModelMismatch
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.measure.latency import infer_many
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

from .batch_device import images, sums

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
MODEL_A, MODEL_B = bytes(range(32)), bytes(range(1, 33))


class SumDevice:
    """EVAL and EVAL_BATCH (batch=8): each image's output is the sum of its first input (int32), plus the
    number of inputs it carries × 10**6. Requests from `swap_at` on (0-based) report MODEL_B as the model
    that ran, those before MODEL_A: a board whose model was switched under the host."""

    def __init__(self, swap_at: int | None = None) -> None:
        self.swap_at, self.received = swap_at, 0
        self.caps = (p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{REPLY_CACHE}", f"{p.BATCH_CAPABILITY}8")

    def _model(self) -> bytes:
        n, self.received = self.received, self.received + 1
        return MODEL_B if self.swap_at is not None and n >= self.swap_at else MODEL_A

    @staticmethod
    def _output(tensors: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return (np.array([int(tensors[0].astype(np.int64).sum()) + 10**6 * len(tensors)], np.int32),)

    def __call__(self, message: p.Message) -> list[p.Message]:
        timing = p.StageTiming(0.0, 1.0, 2.0, 3.0)
        if isinstance(message, p.Hello):
            return [p.HelloReply("sum", "s0", "t", p.PROTOCOL_VERSION, self.caps, 1, 1, "S-1")]
        if isinstance(message, p.Eval):
            return [p.Result((timing,), self._output(tuple(t for _, t in message.inputs)), self._model())]
        if isinstance(message, p.EvalBatch):
            outputs = tuple(self._output(tensors) for tensors in message.images)
            timings = tuple(p.StageTiming(10.0 * i, 1.0, 2.0, 3.0) for i in range(len(outputs)))
            return [p.BatchResult(self._model(), message.payload_crc32, timings, outputs)]
        return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, type(message).__name__)]


@pytest.mark.parametrize("batch", [0, 8])
def test_a_model_that_changes_within_one_evaluation_is_refused_even_with_none_selected(batch):
    # No load/select on this client, so any model is accepted (as for RUN); but the images of one
    # evaluation must all have run one model, or the scores mix two models' outputs.
    data = images(12)
    with serve_pty(SumDevice(swap_at=2), name="s0") as endpoint, \
            DeviceClient(endpoint.port, name="swapping-board", timeout_s=2) as client:
        with pytest.raises(ModelMismatch, match=r"'swapping-board' on /dev/.*ran model SHA-256 0102030405") as refused:
            evaluate(client, ((x,) for x in data), depth=REPLY_CACHE, batch=batch)
        assert "0001020304" in str(refused.value)  # the model the evaluation's first images ran
        unchanged = evaluate(client, ((x,) for x in data[:3]), depth=REPLY_CACHE, batch=batch)  # all MODEL_B now
    assert [int(r.outputs[0][0]) for r in unchanged] == [s + 10**6 for s in sums(data[:3])]


@pytest.mark.parametrize("batch", [0, 8])
def test_images_carrying_different_numbers_of_inputs_are_evaluated_as_with_eval(batch):
    # EVAL carries each image's own inputs; EVAL_BATCH one count for all its images: a change of count
    # starts a new request rather than failing to encode one mid-evaluation.
    data = images(7)
    items = [(x,) if i % 3 else (x, x) for i, x in enumerate(data)]
    with serve_pty(SumDevice(), name="s0") as endpoint, DeviceClient(endpoint.port, timeout_s=2) as client:
        results = evaluate(client, items, depth=REPLY_CACHE, batch=batch)
    assert [int(r.outputs[0][0]) for r in results] == [s + 10**6 * len(t) for s, t in zip(sums(data), items)]


@pytest.mark.parametrize("caps", ["batch", "eval", "run"])
def test_infer_many_of_no_image_is_an_empty_array_of_the_output_shape(caps):
    model = ModelCatalog(MODELS).get("tinytracker")
    with DeviceTwin(load_profiles()["imx500"], "imx500", seed=1) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(model.data, model.name)

        class Dut:
            hello = client.hello()
        Dut.client = client  # type: ignore[attr-defined]
        keep = {"batch": lambda c: True, "eval": lambda c: not c.startswith(p.BATCH_CAPABILITY),
                "run": lambda c: c == "run"}[caps]
        Dut.hello = p.HelloReply(**{**Dut.hello.__dict__,
                                    "capabilities": tuple(c for c in Dut.hello.capabilities if keep(c))})
        before = client.stats.requests
        out = infer_many(Dut, model, [])  # type: ignore[arg-type]
        assert client.stats.requests == before
    assert out.shape == (0, *model.info.outputs[0].shape) and out.dtype == np.float32
