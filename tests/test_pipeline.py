"""EVAL and pipelined evaluation: codec, capability negotiation, order, faults, old boards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ConfigError, DeviceRejected, ProtocolError
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.measure.latency import infer, infer_many
from pytest_edgehil.sim.device_faults import DeviceFault
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"


class EvalDevice:
    """A firmware that serves EVAL: the RESULT echoes the input's sum and a per-request counter, so a
    reply matched to the wrong request, or a request run twice, shows."""

    def __init__(self, caps: tuple[str, ...] = (p.EVAL_CAPABILITY, "pipeline=3")) -> None:
        self.caps = caps
        self.runs = 0

    def __call__(self, message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Hello):
            return [p.HelloReply("echo", "e0", "t", p.PROTOCOL_VERSION, self.caps, 1, 1, "E-1")]
        if isinstance(message, p.Eval):
            self.runs += 1
            if len(message.inputs) != 1 or message.inputs[0][0] != 0:
                return [p.Error(p.ErrorCode.BAD_INPUT, f"inputs {[i for i, _ in message.inputs]}; the model has 1")]
            tensor = message.inputs[0][1]
            total = np.array([int(tensor.astype(np.int64).sum())], np.int64).astype(np.int32)
            return [p.Result((p.StageTiming(0.0, 1.0, 2.0, 3.0),), (total,), bytes(32))]
        return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, type(message).__name__)]


def images(n: int, size: int = 40_000) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.integers(-128, 128, size=(1, size), dtype=np.int8) for _ in range(n)]


def sums(batch: list[np.ndarray]) -> list[int]:
    return [int(b.astype(np.int64).sum()) for b in batch]


def test_eval_round_trips_through_the_codec():
    message = p.Eval(((0, np.arange(6, dtype=np.int8).reshape(2, 3)), (2, np.ones(4, np.float32))))
    assert p.decode_frame(p.encode_message(message, 9)[:-1]).message() == message
    with pytest.raises(ProtocolError, match="at least one"):
        p.Eval.decode_payload(b"\x00")
    with pytest.raises(ProtocolError, match="1..255 inputs"):
        p.Eval(()).encode_payload()


@pytest.mark.parametrize(("caps", "depth"), [((), 0), (("run",), 0), (("eval",), 1), (("eval", "pipeline=4"), 4),
                                             (("pipeline=4",), 0)])
def test_pipeline_depth_is_read_from_the_hello_capabilities(caps, depth):
    assert p.pipeline_depth(caps) == depth


@pytest.mark.parametrize("cap", ["pipeline=0", "pipeline=x", "pipeline="])
def test_a_malformed_pipeline_depth_is_a_protocol_error(cap):
    with pytest.raises(ProtocolError, match=cap):
        p.pipeline_depth(("eval", cap))


@pytest.mark.parametrize("depth", [1, 3])
def test_pipelined_replies_come_back_in_request_order(depth):
    device = EvalDevice()
    batch = images(9)  # 40 KB each: several requests fill the pty while the device writes replies
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=5) as client:
        results = evaluate(client, ((b,) for b in batch), depth=depth)
    assert [int(r.outputs[0][0]) for r in results] == [np.int32(s) for s in sums(batch)]
    assert device.runs == 9 and endpoint.replays == 0


def test_a_corrupt_reply_in_flight_is_retransmitted_and_answered_from_the_reply_cache():
    device = EvalDevice()
    batch = images(6, size=100)
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=5) as client:
        endpoint.corrupt_next_reply()
        results = evaluate(client, ((b,) for b in batch), depth=REPLY_CACHE)
    assert [int(r.outputs[0][0]) for r in results] == sums(batch)
    assert client.stats.corrupt_frames == 1 and client.stats.retransmissions >= 1
    assert device.runs == 6  # every retransmission was a replay, nothing ran twice
    assert endpoint.replays == client.stats.retransmissions


def test_an_error_reply_names_the_image_and_the_device():
    device = EvalDevice()
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=5) as client:
        ok = images(1, size=10)[0]
        with pytest.raises(DeviceRejected, match=r"evaluate \(image 1\).*BAD_INPUT"):
            evaluate(client, [(np.zeros(3, np.int8), ok)], depth=2)  # input 1 set: the device refuses
        with pytest.raises(ConfigError, match="depth"):
            evaluate(client, [(ok,)], depth=0)


@pytest.fixture(scope="module")
def tinytracker():
    return ModelCatalog(MODELS).get("tinytracker")


class _Dut:
    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.hello = client.hello()


def test_infer_many_gives_the_same_outputs_pipelined_and_one_by_one(tinytracker):
    rng = np.random.default_rng(5)
    shape = tinytracker.info.inputs[0].shape[1:]
    batch = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(5)]
    with DeviceTwin(load_profiles()["imx500"], "imx500", seed=1) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(tinytracker.data, tinytracker.name)
        dut = _Dut(client)
        assert p.pipeline_depth(dut.hello.capabilities) == REPLY_CACHE
        assert p.batch_size(dut.hello.capabilities) == 16  # the IMX500 twin's 8 MiB
        requests_before = client.stats.requests
        batched = infer_many(dut, tinytracker, batch)
        assert client.stats.requests - requests_before == 3  # EVAL_BATCH of 1, 2, then 2 images
        dut.hello = p.HelloReply(**{**dut.hello.__dict__, "capabilities": tuple(
            c for c in dut.hello.capabilities if not c.startswith(p.BATCH_CAPABILITY))})  # a board without it
        requests_before = client.stats.requests
        pipelined = infer_many(dut, tinytracker, batch)
        assert client.stats.requests - requests_before == len(batch)  # one EVAL per image
        one_by_one = np.stack([infer(dut, tinytracker, image) for image in batch])
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(pipelined, one_by_one)


def test_an_old_board_without_eval_gets_set_input_and_run(tinytracker):
    rng = np.random.default_rng(6)
    batch = [rng.integers(0, 256, size=tinytracker.info.inputs[0].shape[1:], dtype=np.uint8) for _ in range(3)]
    with DeviceTwin(load_profiles()["imx500"], "imx500", seed=1) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(tinytracker.data, tinytracker.name)
        dut = _Dut(client)
        new = infer_many(dut, tinytracker, batch)
        dut.hello = p.HelloReply(**{**dut.hello.__dict__, "capabilities": ("run",)})  # what an old board says
        before = client.stats.requests
        old = infer_many(dut, tinytracker, batch)
        assert client.stats.requests - before == 2 * len(batch)  # SET_INPUT + RUN per image
    np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("first", ["mislabelled", "genuine", "lost"])
def test_a_reply_stamped_with_another_in_flight_request_s_seq_is_refused_not_taken(first):
    # The first EVAL's reply is lost (corrupt) and the second's carries the first's seq: the host must not
    # take image 2's result for image 1's. The first's genuine reply (replayed for its retransmission)
    # then carries the same seq with another payload: two different answers to one request, refused.
    # `first`: whether the mislabelled reply or the genuine one reaches the host first; "lost": the first's
    # reply is lost on the line (silence), so only the second's retransmission, answered from the cache
    # with the frame already taken for image 1, shows it.
    device = EvalDevice()
    batch = images(4, size=100)
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=2) as client:
        if first == "mislabelled":
            endpoint.faults.inject(DeviceFault("corrupt", direction="reply", on="EVAL"))
        elif first == "lost":
            endpoint.faults.inject(DeviceFault("drop-frame", direction="reply", on="EVAL"))
        else:
            endpoint.faults.inject(DeviceFault("duplicate", on="EVAL"))  # the same frame twice: no conflict
        endpoint.faults.inject(DeviceFault("stale-seq", on="EVAL"))
        pattern = (r"evaluate \(image 2\).* is the frame taken for evaluate \(image 1\)" if first == "lost" else
                   r"two different replies carry seq \d+ \(evaluate \(image 1\)\)")
        with pytest.raises(ProtocolError, match=pattern):
            evaluate(client, ((b,) for b in batch), depth=REPLY_CACHE)
        assert endpoint.faults.pending() == 0
        # The link is usable after: the next batch comes back right.
        results = evaluate(client, ((b,) for b in batch), depth=REPLY_CACHE)
    assert [int(r.outputs[0][0]) for r in results] == sums(batch)


@pytest.mark.parametrize("fault", ["corrupt", "drop-frame"])
def test_two_images_with_identical_replies_are_not_refused_after_a_retransmission(fault):
    # Two different images whose outputs (and, on a coarse device timer, timings) are identical give
    # byte-identical RESULTs: a saturated mask, a constant gaze. A corrupt first reply makes the host
    # retransmit both requests; the second is then answered "only after a retransmission" with a frame
    # equal to the first's, but no reply was mislabelled: the evaluation must come back, not be refused.
    device = EvalDevice()  # the RESULT is the input's sum, timings constant
    base = np.arange(100, dtype=np.int8).reshape(1, 100)
    batch = [base, base[:, ::-1].copy(), np.roll(base, 7, axis=1)]  # different inputs, one sum
    assert len({b.tobytes() for b in batch}) == 3 and len(set(sums(batch))) == 1
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=2) as client:
        endpoint.faults.inject(DeviceFault(fault, direction="reply", on="EVAL"))
        results = evaluate(client, ((b,) for b in batch), depth=REPLY_CACHE)
        assert endpoint.faults.pending() == 0 and client.stats.retransmissions >= 1
    assert [int(r.outputs[0][0]) for r in results] == sums(batch)


def test_identical_replies_after_the_second_reply_was_lost_are_not_refused():
    # The second image's reply is lost (silence); its retransmission is answered from the cache with a frame
    # equal to the one taken for the first image (identical outputs and timings). On the wire this looks
    # like a mislabelled reply, so the host asks the first request again: its cached reply is the same
    # frame, no reply was mislabelled, and the evaluation comes back.
    device = EvalDevice()
    base = np.arange(100, dtype=np.int8).reshape(1, 100)
    batch = [base, base[:, ::-1].copy(), np.roll(base, 7, axis=1)]
    with serve_pty(device, name="e0") as endpoint, DeviceClient(endpoint.port, timeout_s=2) as client:
        endpoint.faults.inject(DeviceFault("delay", delay_s=0.0, direction="reply", on="EVAL"))  # reply 1 as is
        endpoint.faults.inject(DeviceFault("drop-frame", direction="reply", on="EVAL"))  # reply 2 lost
        results = evaluate(client, ((b,) for b in batch), depth=REPLY_CACHE)
        assert endpoint.faults.pending() == 0 and client.stats.retransmissions >= 1
    assert [int(r.outputs[0][0]) for r in results] == sums(batch)
    assert device.runs == 3  # the check was answered from the reply cache
