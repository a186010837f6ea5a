"""What a pipelined evaluation leaves on the link when it ends in an error that is not a timeout.

An ERROR reply, a refused reply (NaN timing) or the caller's image iterator raising ends an evaluation with
requests still in flight: the device runs what it buffered (up to `pipeline=` requests of `batch=` images)
and answers each. The next command on the link must not wait behind that work with only its own timeout and
then time out blaming the cable ("Nothing came back"): the evaluation waits those replies out before it
raises, so the error it raises is the one the caller sees, and the link is idle for the next command.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from pytest_edgehil.errors import DeviceRejected, InvalidPayload
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

from .batch_device import BatchDevice, images, sums

IMAGE_S = 0.05  # what each image takes on the slow device: 8 images outlast the client's timeout_s
TIMEOUT_S = 0.3


class SlowDevice(BatchDevice):
    """A BatchDevice whose images take IMAGE_S each (slept, and reported as the inference time); `fail`
    says what the n-th request received (0-based) gets instead: "error" (ERROR BAD_INPUT), "nan" (a NaN
    stage time). With `batch=0` it serves EVAL (one image per request) the same way."""

    def __init__(self, fail: dict[int, str], batch: int = 8) -> None:
        super().__init__(batch=max(batch, 1))
        if not batch:
            self.caps = (p.EVAL_CAPABILITY, f"{p.PIPELINE_CAPABILITY}{REPLY_CACHE}")
        self.fail, self.received = fail, 0

    def __call__(self, message: p.Message) -> list[p.Message]:
        if not isinstance(message, (p.EvalBatch, p.Eval)):
            return super().__call__(message)
        n, self.received = self.received, self.received + 1
        tensors = ([t for t, *_ in message.images] if isinstance(message, p.EvalBatch)
                   else [message.inputs[0][1]])
        time.sleep(IMAGE_S * len(tensors))
        if self.fail.get(n) == "error":
            return [p.Error(p.ErrorCode.BAD_INPUT, f"request {n} refused")]
        timings = [p.StageTiming(IMAGE_S * 1e6 * i, 1.0, IMAGE_S * 1e6, 1.0) for i in range(len(tensors))]
        if self.fail.get(n) == "nan":
            timings[0] = p.StageTiming(0.0, math.nan, IMAGE_S * 1e6, 1.0)
        outputs = tuple((np.array([int(t.astype(np.int64).sum())], np.int32),) for t in tensors)
        if isinstance(message, p.Eval):
            return [p.Result(tuple(timings), outputs[0], bytes(32))]
        return [p.BatchResult(bytes(32), message.payload_crc32, tuple(timings), outputs)]


def _broken_after(data: list[np.ndarray], n: int):
    for i, x in enumerate(data):
        if i == n:
            raise KeyError("the caller's image loader failed")
        yield (x,)


@pytest.mark.parametrize(("batch", "fail", "raised"), [
    (8, {3: "error"}, DeviceRejected),      # requests 4 and 5 (8 images each) still in flight
    (8, {3: "nan"}, InvalidPayload),
    (8, {}, KeyError),                      # the iterator fails while the 8-image requests are in flight
    (0, {4: "error"}, DeviceRejected),      # plain EVAL: 2 images behind it
])
def test_after_an_evaluation_ends_in_an_error_the_next_one_runs_and_is_right(batch, fail, raised):
    data = images(40)
    device = SlowDevice(fail, batch=batch)
    with serve_pty(device, name="s0") as endpoint, \
            DeviceClient(endpoint.port, name="slow-board", timeout_s=TIMEOUT_S) as client:
        client.run_wait.expect(IMAGE_S, "the slow scripted device")
        source = _broken_after(data, 25) if raised is KeyError else ((x,) for x in data)
        with pytest.raises(raised):
            evaluate(client, source, depth=REPLY_CACHE, batch=batch)
        again = data[:5]
        results = evaluate(client, ((x,) for x in again), depth=REPLY_CACHE, batch=batch)
    assert [int(r.outputs[0][0]) for r in results] == sums(again)
