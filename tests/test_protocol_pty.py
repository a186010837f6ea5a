"""Round trips over a real pseudo-terminal (and over TCP via socket://), faults included."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import serial

from pytest_edgehil.errors import DeviceTimeout, FrameCorrupt, ProtocolVersionMismatch
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.sim.pty_link import PtyEndpoint, serve_pty


class EchoDevice:
    """A minimal firmware: identifies itself, stores inputs and models, answers RUN with synthetic timings.

    RUN n returns n timings computed from n (so a reply to another request cannot pass as this one) and
    echoes input 0 back with its size, so a test sees exactly what arrived.
    """

    def __init__(self, hello_version: int = p.PROTOCOL_VERSION) -> None:
        self.hello_version = hello_version
        self.inputs: dict[int, np.ndarray] = {}
        self.calls: dict[str, int] = {}
        self.upload = bytearray()
        self.models: set[bytes] = set()
        self.active = bytes(32)  # what a RESULT reports as the model that ran (protocol v2)

    @staticmethod
    def timing(i: int, count: int) -> p.StageTiming:
        return p.StageTiming(start_us=1000.0 * i, readout_us=10.0 + count, inference_us=100.0 + i,
                             retrieval_us=5.0)

    def __call__(self, message: p.Message) -> list[p.Message]:
        kind = type(message).__name__
        self.calls[kind] = self.calls.get(kind, 0) + 1
        if isinstance(message, p.Hello):
            # `simulated`: its timings are synthetic, not bounded by the round trip as a board's are
            return [p.HelloReply("echo", "echo0", "test-1.0", self.hello_version,
                                 ("run", "echo", p.SIMULATED_CAPABILITY),
                                 256 * 1024, 1024 * 1024, "ECHO-0001")]
        if isinstance(message, p.SetInput):
            self.inputs[message.index] = message.tensor
            return [p.Ack(p.MsgType.SET_INPUT)]
        if isinstance(message, p.LoadBegin):
            self.upload = bytearray()
            return [p.Ack(p.MsgType.LOAD_BEGIN)]
        if isinstance(message, p.LoadChunk):
            self.upload += message.data
            return [p.Ack(p.MsgType.LOAD_CHUNK)]
        if isinstance(message, p.LoadEnd):
            if hashlib.sha256(self.upload).digest() != message.sha256:
                return [p.Error(p.ErrorCode.HASH_MISMATCH, "upload does not match its SHA-256")]
            self.models.add(message.sha256)
            self.active = message.sha256
            return [p.Ack(p.MsgType.LOAD_END)]
        if isinstance(message, p.Run):
            tensor = self.inputs.get(0, np.zeros(1, np.int8))
            return [p.Result(tuple(self.timing(i, message.count) for i in range(message.count)),
                             (np.array([tensor.nbytes], np.int32), tensor), self.active)]
        return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, f"echo device has no {kind}")]


@pytest.fixture
def echo() -> Iterator[tuple[EchoDevice, PtyEndpoint]]:
    device = EchoDevice()
    with serve_pty(device, name="echo0") as endpoint:
        yield device, endpoint


def image_64k() -> np.ndarray:
    return np.random.default_rng(3).integers(-128, 128, size=(1, 256, 256, 1), dtype=np.int8)


def test_hello_set_input_64k_and_run(echo):
    device, endpoint = echo
    with DeviceClient(endpoint.port, name="echo0", timeout_s=5) as client:
        hello = client.hello()
        assert (hello.device_kind, hello.protocol_version, hello.serial_number) == ("echo", p.PROTOCOL_VERSION, "ECHO-0001")
        tensor = image_64k()
        assert tensor.nbytes == 65536
        client.set_input(0, tensor)
        result = client.run(5)
    np.testing.assert_array_equal(device.inputs[0], tensor)
    assert result.timings == tuple(EchoDevice.timing(i, 5) for i in range(5))
    assert int(result.outputs[0][0]) == 65536
    np.testing.assert_array_equal(result.outputs[1], tensor)
    assert endpoint.corrupt_frames == 0 and endpoint.replays == 0


def test_load_model_sends_every_chunk_and_returns_its_digest(echo):
    device, endpoint = echo
    model = os.urandom(100_000)
    with DeviceClient(endpoint.port, name="echo0") as client:
        sha = client.load_model(model, "random", chunk_size=30_000)
    assert sha == hashlib.sha256(model).hexdigest()
    assert bytes(device.upload) == model
    assert device.calls["LoadChunk"] == 4  # ceil(100000 / 30000)
    assert device.models == {hashlib.sha256(model).digest()}


def test_corrupt_reply_is_retransmitted_and_never_taken_as_a_value(echo):
    device, endpoint = echo
    with DeviceClient(endpoint.port, name="echo0", timeout_s=5) as client:
        client.run(1)
        endpoint.corrupt_next_reply()
        result = client.run(3)
    assert result.timings == tuple(EchoDevice.timing(i, 3) for i in range(3))
    assert endpoint.replays == 1  # the retransmission was answered from the reply cache...
    assert device.calls["Run"] == 2  # ...so the handler ran once per command, not once per frame
    assert any("corrupt frame" in line for line in client.traffic_log.lines())


def test_more_corrupt_replies_than_retries_raise_frame_corrupt_then_the_link_recovers(echo):
    _, endpoint = echo
    with DeviceClient(endpoint.port, name="echo0", timeout_s=5, retries=2) as client:
        endpoint.corrupt_next_reply(3)
        with pytest.raises(FrameCorrupt) as excinfo:
            client.run(2)
        message = str(excinfo.value)
        assert "echo0" in message and endpoint.port in message and "3 corrupt" in message
        assert client.run(4).timings == tuple(EchoDevice.timing(i, 4) for i in range(4))


def test_dropped_reply_is_recovered_by_retransmission_after_silence(echo):
    device, endpoint = echo
    with DeviceClient(endpoint.port, name="echo0", timeout_s=1.5, retries=2) as client:
        endpoint.drop_next_reply()
        result = client.run(2)
    assert result.timings == tuple(EchoDevice.timing(i, 2) for i in range(2))
    assert endpoint.replays == 1 and device.calls["Run"] == 1


def test_corrupt_request_is_dropped_and_counted_by_the_device(echo):
    _, endpoint = echo
    port = serial.serial_for_url(endpoint.port, timeout=1)
    good = bytearray(p.encode_message(p.Run(1), 77))
    good[3] ^= 0x40  # a flipped bit on the host → device direction
    port.write(bytes(good))
    with DeviceClient(port, name="echo0", timeout_s=5) as client:  # an already-open pyserial object
        assert client.hello().device_name == "echo0"
    assert endpoint.corrupt_frames == 1


def test_late_reply_is_skipped_not_taken_for_the_next_command():
    release = threading.Event()
    device = EchoDevice()

    def late_first_run(message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Run) and message.count == 7:
            release.wait(5)  # answers only after the host has given up on this request
        return device(message)

    with serve_pty(late_first_run, name="slow") as endpoint, \
            DeviceClient(endpoint.port, name="slow", timeout_s=0.3, retries=0) as client:
        with pytest.raises(DeviceTimeout):
            client.run(7)
        release.set()
        client.timeout_s = 5
        assert client.run(2).timings == tuple(EchoDevice.timing(i, 2) for i in range(2))
        assert any("skipped stale reply" in line for line in client.traffic_log.lines())


NEWER = p.PROTOCOL_VERSION + 1


@pytest.mark.parametrize(("frame_version", "hello_version"), [(NEWER, NEWER), (p.PROTOCOL_VERSION, NEWER)])
def test_version_mismatch_names_both_versions(frame_version, hello_version):
    device = EchoDevice(hello_version=hello_version)
    with (serve_pty(device, name="future", protocol_version=frame_version) as endpoint,
          DeviceClient(endpoint.port, name="future", timeout_s=2) as client,
          pytest.raises(ProtocolVersionMismatch) as excinfo):
        client.hello()
    message = str(excinfo.value)
    assert f"version {NEWER}" in message and f"version {p.PROTOCOL_VERSION}" in message and "future" in message


def test_non_hello_command_to_a_newer_device_is_a_version_mismatch():
    with (serve_pty(EchoDevice(hello_version=NEWER), name="future", protocol_version=NEWER) as endpoint,
          DeviceClient(endpoint.port, name="future", timeout_s=2) as client,
          pytest.raises(ProtocolVersionMismatch, match=f"version {NEWER}")):
        client.run(1)


class TcpBridge:
    """A ser2net-style bridge: one TCP client ↔ the pty, byte for byte, on loopback."""

    def __init__(self, pty_port: str) -> None:
        self.serial = serial.serial_for_url(pty_port, timeout=0)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while not self.stop.is_set():
                ready, _, _ = select.select([conn, self.serial.fileno()], [], [], 0.05)
                if conn in ready:
                    data = conn.recv(65536)
                    if not data:
                        return
                    self.serial.write(data)
                if self.serial.fileno() in ready:
                    conn.sendall(self.serial.read(65536))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.listener.close()
        self.serial.close()


def test_socket_url_reaches_the_same_handler_over_tcp(echo):
    device, endpoint = echo
    bridge = TcpBridge(endpoint.port)
    try:
        with DeviceClient(f"socket://127.0.0.1:{bridge.port}", name="echo0", timeout_s=5) as client:
            assert client.hello().device_kind == "echo"
            tensor = image_64k()
            client.set_input(0, tensor)
            result = client.run(3)
    finally:
        bridge.close()
    np.testing.assert_array_equal(result.outputs[1], tensor)
    assert result.timings == tuple(EchoDevice.timing(i, 3) for i in range(3))
    assert device.calls["Hello"] == 1


def test_endpoint_close_is_idempotent_and_releases_the_pty():
    endpoint = serve_pty(EchoDevice(), name="tmp")
    port = endpoint.port
    assert os.path.exists(port)
    endpoint.close()
    endpoint.close()
    assert endpoint.closed and not os.path.exists(port)


def exchange_raw(port: str, wire: bytes, n_replies: int) -> list[p.Frame | FrameCorrupt]:
    """Write bytes to the port with plain os calls (no pyserial, no termios changes) and collect replies."""
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, wire)
        decoder, replies = p.FrameDecoder(), []
        deadline = time.monotonic() + 5
        while len(replies) < n_replies and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                replies += decoder.feed(os.read(fd, 65536))
        return replies
    finally:
        os.close(fd)


def test_pty_is_raw_before_any_host_configures_it():
    """The link sets raw mode itself: a host that opens the port without touching termios (or bytes
    that arrive before pyserial configures it) must see no echo, no CR/LF translation, no line buffering."""
    device = EchoDevice()
    with serve_pty(device, name="raw") as endpoint:
        tensor = np.frombuffer(b"\r\n\x03\x04\x11\x13\x7f\n\r", dtype=np.uint8)  # CR, LF, ^C, ^D, XON/XOFF
        wire = p.encode_message(p.SetInput(0, tensor), 1) + p.encode_message(p.Run(1), 2)
        replies = exchange_raw(endpoint.port, wire, 2)
        assert [type(r) for r in replies] == [p.Frame, p.Frame]
        assert replies[0].message() == p.Ack(p.MsgType.SET_INPUT)
        np.testing.assert_array_equal(replies[1].message().outputs[1], tensor)
        # No echo: the device never saw its own replies come back as requests.
        assert device.calls == {"SetInput": 1, "Run": 1} and endpoint.corrupt_frames == 0


@pytest.mark.parametrize(("request_frame", "code"), [
    (p.Frame(p.PROTOCOL_VERSION, 0x42, 11, b""), p.ErrorCode.UNKNOWN_MESSAGE),
    (p.Frame(p.PROTOCOL_VERSION, p.MsgType.RUN, 12, b"\x01\x00\x00"), p.ErrorCode.BAD_PAYLOAD),
    (p.Frame(p.PROTOCOL_VERSION + 1, p.MsgType.RUN, 13, b"\x01\x00\x00\x00"), p.ErrorCode.BAD_PAYLOAD),
])
def test_link_answers_undecodable_requests_with_an_error_carrying_their_seq(request_frame, code):
    device = EchoDevice()
    with serve_pty(device, name="strict") as endpoint:
        (reply,) = exchange_raw(endpoint.port, request_frame.encode(), 1)
    assert reply.seq == request_frame.seq
    error = reply.message()
    assert isinstance(error, p.Error) and error.code == code and "strict" in error.text
    assert device.calls == {}  # the handler never saw a request it could not decode


def test_hello_of_another_version_is_still_answered():
    """HELLO is how a host learns the device's version, so the link answers it in any version."""
    with serve_pty(EchoDevice(), name="any") as endpoint:
        (reply,) = exchange_raw(endpoint.port, p.Frame(9, p.MsgType.HELLO, 5, b"").encode(), 1)
    assert reply.version == p.PROTOCOL_VERSION and reply.message().device_kind == "echo"
