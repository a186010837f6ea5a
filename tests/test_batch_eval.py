"""EVAL_BATCH / BATCH_RESULT: codec, the `batch=N` capability, the twin's offer, and batched evaluation
giving the very outputs of SET_INPUT + RUN per image. Faults on batched evaluation: test_batch_eval_faults.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link import device_side
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.batch_messages import MAX_IMAGES
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.device_side import batch_images
from pytest_edgehil.link.pipeline import BATCH_BYTES, MAX_BATCH, REPLY_BYTES, evaluate
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles
from pytest_edgehil.sim.pty_link import REPLY_CACHE, serve_pty

from .batch_device import BatchDevice, images, sums
from .conftest import MODELS

INT8_2x3 = np.arange(6, dtype=np.int8).reshape(2, 3)


def batch_message() -> p.EvalBatch:
    return p.EvalBatch((0, 2), ((INT8_2x3, np.ones(4, np.float32)), (INT8_2x3[::-1].copy(), np.zeros(4, np.float32)),
                                (-INT8_2x3, np.full(4, 0.5, np.float32))))


def result_message(crc: int = 0xDEADBEEF) -> p.BatchResult:
    timings = (p.StageTiming(0.0, 1.0, 2.0, 3.0), p.StageTiming(7.5, 1.0, 2.5, 3.0))
    return p.BatchResult(bytes(range(32)), crc, timings, ((np.array([1, 2], np.int8), np.array([0.5], np.float32)),
                                                          (np.array([3, 4], np.int8), np.array([-0.5], np.float32))))


# -- codec ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("message", [batch_message(), result_message(), result_message(crc=0)])
def test_eval_batch_and_batch_result_round_trip_through_the_codec(message):
    wire = p.encode_message(message, 0x1234)
    frame = p.decode_frame(wire[:-1])
    assert (frame.seq, frame.msg_type) == (0x1234, message.msg_type)
    assert frame.message() == message


def test_the_request_crc32_is_that_of_the_payload_sent_and_of_the_payload_received():
    sent = batch_message()
    payload = sent.encode_payload()
    received = p.EvalBatch.decode_payload(payload)
    assert sent.payload_crc32 == received.payload_crc32 == p.payload_crc32(payload)
    other = p.EvalBatch(sent.indices, sent.images[::-1])  # the same images in another order: other request
    assert other.payload_crc32 != sent.payload_crc32
    reply = result_message(crc=sent.payload_crc32)
    assert p.BatchResult.peek_request_crc32(reply.encode_payload()) == sent.payload_crc32
    assert p.BatchResult.peek_request_crc32(reply.encode_payload()[:35]) is None


def eval_batch_payload(k: int, indices: tuple[int, ...], n: int, tensors: bytes = b"") -> bytes:
    return struct.pack(f"<B{len(indices)}HH", k, *indices, n) + tensors


ONE_TENSOR = p.encode_tensor(np.array([1, 2, 3], np.int8), "t")


@pytest.mark.parametrize(("payload", "field"), [
    (eval_batch_payload(1, (0,), 0), "no image"),
    (eval_batch_payload(0, (), 1, ONE_TENSOR), r"inputs \[\]; it needs 1..255 distinct indices"),
    (eval_batch_payload(2, (1, 1), 1, ONE_TENSOR * 2), r"inputs \[1, 1\]; it needs 1..255 distinct indices"),
    (eval_batch_payload(1, (0,), 2, ONE_TENSOR + ONE_TENSOR[:-1]), "image 1 input 0 data"),
    (eval_batch_payload(1, (0,), 1, ONE_TENSOR)[:-len(ONE_TENSOR) - 1], "image count"),
    (eval_batch_payload(1, (0,), 1, ONE_TENSOR + b"\x00\x00"), "2 unexpected trailing bytes"),
])
def test_a_malformed_eval_batch_payload_is_refused_naming_the_field(payload, field):
    with pytest.raises(ProtocolError, match=rf"EVAL_BATCH.*{field}"):
        p.EvalBatch.decode_payload(payload)


def test_a_malformed_batch_result_payload_is_refused_naming_the_field():
    good = result_message().encode_payload()
    no_image = bytes(32) + struct.pack("<IIB", 0, 0, 0)
    with pytest.raises(ProtocolError, match="BATCH_RESULT reports no image"):
        p.BatchResult.decode_payload(no_image)
    with pytest.raises(ProtocolError, match="BATCH_RESULT payload too short: BATCH_RESULT image 1 output 1 data"):
        p.BatchResult.decode_payload(good[:-1])
    with pytest.raises(ProtocolError, match="BATCH_RESULT payload has 1 unexpected trailing bytes"):
        p.BatchResult.decode_payload(good + b"\x00")
    with pytest.raises(ProtocolError, match="model_sha256 needs 32 bytes"):
        p.BatchResult.decode_payload(good[:20])


@pytest.mark.parametrize(("message", "match"), [
    (p.EvalBatch((0,), ()), "1..65535 images, got 0"),
    (p.EvalBatch((), ((),)), r"1..255 distinct inputs per image, got indices \[\]"),
    (p.EvalBatch((0, 0), ((INT8_2x3, INT8_2x3),)), r"distinct inputs per image, got indices \[0, 0\]"),
    (p.EvalBatch((0, 1), ((INT8_2x3, INT8_2x3), (INT8_2x3,))), "image 1 carries 1 tensors for 2 inputs"),
    (p.BatchResult(bytes(32), 0, (), ()), "answers at least one image"),
    (p.BatchResult(bytes(32), 0, (p.StageTiming(0, 1, 1, 1),), ()), "1 timings and 0 images' outputs"),
])
def test_what_the_decoder_refuses_cannot_be_encoded_either(message, match):
    with pytest.raises(ProtocolError, match=match):
        message.encode_payload()


# -- the capability --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("caps", "size"), [((), 0), (("eval", "pipeline=3"), 0), (("eval", "batch=1"), 1),
                                            (("batch=8", "eval"), 8), (("eval", f"batch={MAX_IMAGES}"), MAX_IMAGES)])
def test_batch_size_is_read_from_the_hello_capabilities(caps, size):
    assert p.batch_size(caps) == size


@pytest.mark.parametrize("cap", ["batch=0", "batch=x", "batch=", "batch=70000", "batch=-1", "batch=²", "batch= 4"])
def test_a_malformed_batch_capability_is_a_protocol_error_naming_it(cap):
    with pytest.raises(ProtocolError, match=f"capability '{cap}'.*from 1 to {MAX_IMAGES}"):
        p.batch_size(("eval", cap))


@pytest.mark.parametrize("cap", ["pipeline=²", "pipeline=0"])
def test_a_malformed_pipeline_depth_is_a_protocol_error_not_a_crash(cap):
    with pytest.raises(ProtocolError, match=f"capability '{cap}'"):
        p.pipeline_depth(("eval", cap))


# -- the twin's offer ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["cortex-m4", "imx500"])
def test_a_twin_offers_the_batch_its_ram_buffers_and_refuses_a_larger_one(kind):
    profile = load_profiles()[kind]
    # A quarter of RAM for the requests in flight (one per reply-cache entry), 32 KiB per image, 1..16.
    per_request = profile.ram_bytes / device_side.BATCH_RAM_SHARE / REPLY_CACHE
    expected = int(min(device_side.MAX_BATCH_IMAGES, max(1, per_request // device_side.BATCH_IMAGE_BYTES)))
    assert batch_images(profile.ram_bytes, REPLY_CACHE) == expected
    twin = DeviceTwin(profile, kind)  # answered directly: the refusal comes before any model is needed
    (hello,) = twin.handle(p.Hello())
    assert isinstance(hello, p.HelloReply) and p.batch_size(hello.capabilities) == expected
    one = (np.zeros(4, np.int8),)
    (refusal,) = twin.handle(p.EvalBatch((0,), (one,) * (expected + 1)))
    assert isinstance(refusal, p.Error) and refusal.code == p.ErrorCode.BAD_PAYLOAD
    assert f"EVAL_BATCH of {expected + 1} images" in refusal.text and f"batch={expected}" in refusal.text
    (no_model,) = twin.handle(p.EvalBatch((0,), (one,) * expected))  # the offered size is taken (and needs a model)
    assert isinstance(no_model, p.Error) and no_model.code == p.ErrorCode.NO_MODEL


def test_the_cortex_m4_and_imx500_offers_differ_as_their_ram_does():
    profiles = load_profiles()
    assert batch_images(profiles["cortex-m4"].ram_bytes, REPLY_CACHE) < batch_images(profiles["imx500"].ram_bytes, REPLY_CACHE)


# -- request sizes ---------------------------------------------------------------------------------------
def expected_sizes(count: int, batch: int, image_bytes: int) -> list[int]:
    """The ramp as specified: 1, 2, 4, ... capped at `batch` (and MAX_BATCH) images and BATCH_BYTES."""
    fits = max(1, BATCH_BYTES // image_bytes)
    sizes: list[int] = []
    while sum(sizes) < count:
        sizes.append(min(2 ** len(sizes), batch, MAX_BATCH, fits, count - sum(sizes)))
    return sizes


@pytest.mark.parametrize(("count", "batch", "size"), [(31, 16, 100), (9, 8, 100), (200, 100, 10), (13, 8, 20_000)])
def test_request_sizes_ramp_1_2_4_up_to_the_batch_and_64_kib(count, batch, size):
    device = BatchDevice(batch=max(batch, 8))
    data = images(count, size=size)
    with serve_pty(device, name="b0") as endpoint, DeviceClient(endpoint.port, timeout_s=5) as client:
        before = client.stats.requests
        results = evaluate(client, ((x,) for x in data), depth=REPLY_CACHE, batch=batch)
        requests = client.stats.requests - before
    assert [int(r.outputs[0][0]) for r in results] == sums(data)
    assert device.sizes == expected_sizes(count, batch, size)
    assert requests == len(device.sizes)
    assert device.sizes[:3] == [1, 2, min(4, BATCH_BYTES // size)]  # the ramp's start, in every case here


@pytest.mark.parametrize("per_image", [REPLY_BYTES // 3, REPLY_BYTES, 4 * REPLY_BYTES])
def test_a_request_holds_no_more_images_than_their_outputs_fit_reply_bytes(per_image):
    # An upsampling model's outputs outgrow its inputs: the reply, not the request, is what must fit a frame.
    device = BatchDevice(batch=16)
    data = images(20, size=100)
    with serve_pty(device, name="b0") as endpoint, DeviceClient(endpoint.port, timeout_s=5) as client:
        results = evaluate(client, ((x,) for x in data), depth=REPLY_CACHE, batch=16, reply_bytes=per_image)
    assert [int(r.outputs[0][0]) for r in results] == sums(data)
    fits = max(1, REPLY_BYTES // per_image)  # 3, 1, and one image at least when one does not fit
    assert max(device.sizes) == fits and sum(device.sizes) == 20


# -- against a real model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tinytracker():
    return ModelCatalog(MODELS).get("tinytracker")


@pytest.mark.parametrize("count", [1, 5, 21])
def test_batched_evaluation_gives_the_outputs_of_set_input_and_run_per_image(tinytracker, count):
    spec = tinytracker.info.inputs[0]
    rng = np.random.default_rng([23, count])
    data = [rng.integers(-128, 128, size=spec.shape, dtype=spec.dtype) for _ in range(count)]
    image_bytes = data[0].nbytes
    with DeviceTwin(load_profiles()["imx500"], "imx500", seed=1) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(tinytracker.data, tinytracker.name)
        hello = client.hello()
        batch = p.batch_size(hello.capabilities)
        # 16 images of 9 KiB do not fit 64 KiB: a full-size request is split by the byte cap.
        assert batch * image_bytes > BATCH_BYTES
        before = client.stats.requests
        batched = evaluate(client, ((x,) for x in data), depth=p.pipeline_depth(hello.capabilities), batch=batch)
        assert client.stats.requests - before == len(expected_sizes(count, batch, image_bytes))
        one_by_one = []
        for x in data:
            client.set_input(0, x)
            one_by_one.append(client.run(1))
    assert len(batched) == count
    for got, want in zip(batched, one_by_one):
        assert got.model_sha256 == want.model_sha256 and len(got.timings) == 1
        assert len(got.outputs) == len(want.outputs)
        for a, b in zip(got.outputs, want.outputs):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
