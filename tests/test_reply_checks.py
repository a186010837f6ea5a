"""Replies are data to check: impossible values from a device stop at the link as typed errors.

Every test runs over a real pty: a handler behind `serve_pty`, the device twin, or a raw responder that
writes hand-made frames (what broken firmware sends and our own encoder refuses to produce).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_edgehil.errors import (
    DeviceTimeout,
    InvalidPayload,
    ProtocolError,
    ProtocolVersionMismatch,
    SequenceMismatch,
)
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.payload import MAX_TENSOR_BYTES, PayloadReader, decode_tensor
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles
from pytest_edgehil.sim.pty_link import serve_pty

from .raw_pty import raw_pty_firmware

GOOD = p.StageTiming(start_us=0.0, readout_us=17900.0, inference_us=230.0, retrieval_us=240.0)


def result_with(**bad: float) -> Callable[[p.Message], list[p.Message]]:
    """A firmware whose RUN reply carries one bad stage field in its second inference."""
    def handler(message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Run):
            second = p.StageTiming(**{**GOOD.__dict__, "start_us": 20000.0, **bad})
            return [p.Result((GOOD, second), (np.ones(2, np.int8),), bytes(32))]
        if isinstance(message, p.Hello):
            return [p.HelloReply("fw", "fw0", "1", p.PROTOCOL_VERSION, (), 1, 1, "SN")]
        return [p.Ack(message.msg_type)]
    return handler


@pytest.mark.parametrize(("field", "value"), [
    ("inference_us", -5450.0), ("readout_us", math.nan), ("retrieval_us", math.inf), ("start_us", -1.0),
    ("inference_us", -math.inf),
])
def test_impossible_stage_time_is_a_typed_error_naming_device_port_field_value(field: str, value: float) -> None:
    with serve_pty(result_with(**{field: value}), name="fw0") as endpoint, \
            DeviceClient(endpoint.port, name="coral0", timeout_s=5) as client:
        with pytest.raises(InvalidPayload) as caught:
            client.run(2)
        message = str(caught.value)
        assert isinstance(caught.value, ProtocolError)
        assert "'coral0'" in message and endpoint.port in message and field in message
        assert repr(value) in message and "inference 2 of 2" in message
        assert "not recorded" in message and "firmware" in message  # what happened, what to check
        assert client.hello().device_name == "fw0"  # one bad reply costs one command, not the session


def test_the_issue_s_negative_inference_reads_as_milliseconds_too() -> None:
    with (serve_pty(result_with(inference_us=-5450.0), name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="coral0", timeout_s=5) as client,
          pytest.raises(InvalidPayload, match=r"inference_us = -5450\.0 µs \(inference -5\.45 ms\)")):
        client.run(2)


def test_trigger_offsets_running_backwards_are_refused() -> None:
    def coarse(message: p.Message) -> list[p.Message]:  # a 1 ms timer: 230 µs reads 1000 or 0
        tick = p.StageTiming(start_us=0.0, readout_us=18000.0, inference_us=1000.0, retrieval_us=0.0)
        return [p.Result((tick, tick), (np.ones(1, np.int8),), bytes(32))]
    with serve_pty(coarse, name="fw0") as endpoint, \
            DeviceClient(endpoint.port, name="dut", timeout_s=5) as client:
        client.run(2)  # equal offsets are fine from a timer as coarse as the run
    def backwards(message: p.Message) -> list[p.Message]:
        late = p.StageTiming(**{**GOOD.__dict__, "start_us": 500.0})
        return [p.Result((late, GOOD), (np.ones(1, np.int8),), bytes(32))]
    with (serve_pty(backwards, name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="dut", timeout_s=5) as client,
          pytest.raises(InvalidPayload, match=r"inference 2 of 2 starts at 0\.0 µs, before the previous")):
        client.run(2)


def per_inference_stamps(message: p.Message) -> list[p.Message]:
    """Firmware that stamps each inference from its own start, not from the RUN's first trigger edge."""
    if isinstance(message, p.Run):
        timings = tuple(p.StageTiming(0.0, 17900.0 + i, 230.0 + i, 240.0) for i in range(message.count))
        return [p.Result(timings, (np.ones(2, np.int8),), bytes(32))]
    return [p.Ack(message.msg_type)]


def test_trigger_pulses_that_overlap_are_refused_naming_both() -> None:
    """docs/protocol.md: one trigger line is high from `start_us` for `inference_us`; it cannot rise again
    while high. Three inferences all stamped at 0 µs (each timed from its own start) put three 230 µs pulses on
    one instant: the host would place every energy window over the first inference."""
    with (serve_pty(per_inference_stamps, name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="coral0", timeout_s=5) as client):
        with pytest.raises(InvalidPayload) as caught:
            client.run(3)
        message = str(caught.value)
        assert "'coral0'" in message and endpoint.port in message and "inference 2 of 3" in message
        assert "0.0 µs" in message and "230.0 µs" in message  # its rise, and the previous pulse's fall
        assert "RUN's first trigger" in message and "not recorded" in message
        client.run(1)  # one inference has no neighbour to overlap; the link is fine


def inference_times(*inference_us: float) -> Callable[[p.Message], list[p.Message]]:
    """Firmware whose RUN n reports these inference stage times, back to back on a 1 ms timer."""
    def handler(message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Run):
            timings = tuple(p.StageTiming(2000.0 * i, 1000.0, us, 0.0) for i, us in enumerate(inference_us))
            return [p.Result(timings, (np.ones(2, np.int8),), bytes(32))]
        return [p.Ack(message.msg_type)]
    return handler


def test_a_run_whose_every_inference_took_no_time_is_refused() -> None:
    """A RESULT that says every inference of the RUN took 0 µs: nothing ran (the firmware answered without
    invoking the model), or its timer cannot resolve one inference. A 0 µs latency would pass any budget."""
    with (serve_pty(inference_times(0.0, 0.0, 0.0), name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="cm4-1", timeout_s=5) as client):
        with pytest.raises(InvalidPayload) as caught:
            client.run(3)
        message = str(caught.value)
        assert "'cm4-1'" in message and endpoint.port in message and "inference_us" in message
        assert "all 3" in message and "not recorded" in message and "timer" in message


def test_a_coarse_timer_s_zero_among_ticks_is_a_measurement() -> None:
    """A 1 ms timer reads a 0.4 ms inference as 0 or 1000 µs: a mean over many is right, so zeros among
    ticks pass (docs/protocol.md: every value finite and >= 0)."""
    with (serve_pty(inference_times(0.0, 1000.0, 0.0), name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="cm4-1", timeout_s=5) as client):
        assert [t.inference_us for t in client.run(3).timings] == [0.0, 1000.0, 0.0]


# -- a raw responder: hand-made reply frames the package's encoder would refuse to build ------------------
@contextmanager
def raw_responder(reply: Callable[[p.Frame], bytes]) -> Iterator[str]:
    """A pty 'firmware' that answers every request frame with the wire bytes `reply(request)`."""
    decoder = p.FrameDecoder()
    with raw_pty_firmware(lambda data: b"".join(reply(item) for item in decoder.feed(data)
                                                if isinstance(item, p.Frame))) as port:
        yield port


def result_payload(dims: tuple[int, ...], data: bytes = b"") -> bytes:
    """A RESULT (any model) with one good timing and one int8 output whose header claims `dims`."""
    timing = struct.pack("<4d", GOOD.start_us, GOOD.readout_us, GOOD.inference_us, GOOD.retrieval_us)
    header = struct.pack(f"<BB{len(dims)}I", p.DTYPE_CODES[np.dtype(np.int8)], len(dims), *dims)
    return bytes(32) + struct.pack("<I", 1) + timing + struct.pack("<B", 1) + header + data  # v2: model digest first


@pytest.mark.parametrize(("dims", "match"), [
    ((0, 2**31, 2**31, 8), r"dims \[0, 2147483648, 2147483648, 8\]; every dimension must be >= 1"),
    ((2**32 - 1,) * 8, r"more than one frame carries"),
    ((1, 4096, 4096, 1), r"more than one frame carries"),
])
def test_absurd_output_tensor_header_is_invalid_payload_naming_the_device(dims, match) -> None:
    def reply(request: p.Frame) -> bytes:
        return p.Frame(p.PROTOCOL_VERSION, p.MsgType.RESULT, request.seq, result_payload(dims)).encode()
    with (raw_responder(reply) as port, DeviceClient(port, name="cam0", timeout_s=2, retries=0) as client,
          pytest.raises(InvalidPayload, match=match) as caught):
        client.run(1)
    assert "'cam0'" in str(caught.value) and port in str(caught.value) and "RESULT output 0" in str(caught.value)


def test_reply_for_another_sequence_number_is_a_sequence_mismatch() -> None:
    def reply(request: p.Frame) -> bytes:
        return p.encode_message(p.Ack(p.MsgType.RESET), (request.seq + 1) & 0xFFFF)
    with (raw_responder(reply) as port, DeviceClient(port, name="cam0", timeout_s=0.4, retries=1) as client,
          pytest.raises(SequenceMismatch) as caught):
        client.reset()
    message = str(caught.value)
    assert isinstance(caught.value, ProtocolError) and isinstance(caught.value, DeviceTimeout)
    assert "'cam0'" in message and port in message and "other sequence numbers" in message
    assert f"seq {client._seq}" in message and str((client._seq + 1) & 0xFFFF) in message
    assert "another program shares the port" in message


def test_run_reply_in_an_unknown_protocol_version_is_a_version_mismatch() -> None:
    def reply(request: p.Frame) -> bytes:
        body = p.Result((GOOD,), (np.ones(1, np.int8),), bytes(32)).encode_payload()
        return p.Frame(7, p.MsgType.RESULT, request.seq, body).encode()
    with (raw_responder(reply) as port, DeviceClient(port, name="cam0", timeout_s=2) as client,
          pytest.raises(ProtocolVersionMismatch, match=rf"'cam0'.*version 7.*version {p.PROTOCOL_VERSION}.*Flash firmware")):
        client.run(1)


# -- the twin side: a hostile SET_INPUT header must not kill the serving thread -----------------------------
def test_twin_answers_a_zero_dim_huge_header_with_an_error_and_keeps_serving() -> None:
    profile = load_profiles()["imx500"]
    with DeviceTwin(profile, "cam0") as twin:
        header = struct.pack("<BB4I", p.DTYPE_CODES[np.dtype(np.int8)], 4, 0, 2**31, 2**31, 8)
        request = p.Frame(p.PROTOCOL_VERSION, p.MsgType.SET_INPUT, 41, struct.pack("<H", 0) + header)
        port = serial.serial_for_url(twin.port, timeout=2)
        try:
            port.write(request.encode())
            decoder, frames = p.FrameDecoder(), list[p.Frame]()
            while not frames:
                chunk = port.read(1)
                assert chunk, "the twin went silent: its serving thread died"
                frames = [f for f in decoder.feed(chunk + port.read(port.in_waiting)) if isinstance(f, p.Frame)]
        finally:
            port.close()
        (frame,) = frames
        error = frame.message()
        assert frame.seq == 41 and isinstance(error, p.Error) and error.code == p.ErrorCode.BAD_PAYLOAD
        assert "every dimension must be >= 1" in error.text
        with DeviceClient(twin.port, name="cam0", timeout_s=5) as client:
            assert client.hello().device_name == "cam0"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 9), st.lists(st.integers(0, 2**32 - 1), min_size=9, max_size=9),
       st.binary(max_size=64))
def test_any_tensor_header_decodes_bounded_or_is_a_protocol_error(code, ndim, dims, data) -> None:
    payload = struct.pack("<BB", code, ndim) + struct.pack(f"<{min(ndim, 9)}I", *dims[:ndim]) + data
    try:
        tensor = decode_tensor(PayloadReader(payload, "T"), "T")
    except ProtocolError:
        return
    assert tensor.size >= 1 and tensor.nbytes <= min(len(data), MAX_TENSOR_BYTES)
