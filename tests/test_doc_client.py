"""The host and the twins agree byte for byte with a client written from docs/protocol.md alone
(tests/doc_client.py, no pytest_edgehil import): a slip shared by the host and the twin, which import one
codec, would pass every round trip between them and still break a board built from the document."""

from __future__ import annotations

import hashlib
import os
import select
import struct
from collections.abc import Iterator

import numpy as np
import pytest

from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.framing import FrameDecoder, cobs_decode, cobs_encode
from pytest_edgehil.sim import start_device_twin
from pytest_edgehil.sim.device_twin import DeviceTwin
from tests import doc_client as d
from tests.conftest import MODELS
from tests.raw_pty import serving_pty

MODEL = (MODELS / "tinytracker.tflite").read_bytes()

# Wikipedia's COBS examples (the doc's "standard" encoding), none computed by any code under test.
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"), (b"\x00\x00", b"\x01\x01\x01"), (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"), (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"), (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("data", "encoded"), COBS_EXAMPLES)
def test_cobs_matches_the_published_examples_on_both_sides(data: bytes, encoded: bytes) -> None:
    assert d.cobs_encode(data) == encoded
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


@pytest.fixture
def twin() -> Iterator[tuple[DeviceTwin, str]]:
    twin, port = start_device_twin("coral", "c1")
    try:
        yield twin, port
    finally:
        twin.close()


def test_the_twin_answers_a_client_built_from_the_document(twin: tuple[DeviceTwin, str]) -> None:
    _, port = twin
    client = d.PtyClient(port, seq=0xFFFE)  # the seq wraps at 65536 on the way
    try:
        hello = client.request(d.HELLO, b"")
        info = d.hello_reply(hello.payload)
        assert (hello.version, hello.mtype, info["version"], info["kind"]) == (2, d.HELLO_REPLY, 2, "coral")
        for mtype, payload in d.requests_for_model(MODEL, "tinytracker"):
            ack = client.request(mtype, payload)
            assert (ack.mtype, ack.payload) == (d.ACK, bytes([mtype]))
        image = (np.arange(96 * 96) % 251 - 125).astype(np.int8).reshape(1, 96, 96, 1)
        assert client.request(d.SET_INPUT, struct.pack("<H", 0) + d.tensor(image)).payload == bytes([d.SET_INPUT])
        reply = client.request(d.RUN, struct.pack("<I", 3))
    finally:
        client.close()
    run_seq = (0xFFFE + len(client.sent) - 1) & 0xFFFF
    assert reply.mtype == d.RESULT and reply.seq == run_seq and run_seq < 0xFFFE
    sha, timings, outputs = d.result(reply.payload)
    assert sha == hashlib.sha256(MODEL).digest()
    assert len(timings) == 3 and timings[0][0] == 0.0
    # The host's codec reads the very bytes the same way, and encodes the document client's requests alike.
    (frame,) = FrameDecoder().feed(client.received[-1])
    assert isinstance(frame, p.Frame)
    result = frame.message()
    assert isinstance(result, p.Result)
    assert [tuple(vars(t).values()) for t in result.timings] == [tuple(t) for t in timings]
    assert [o.tobytes() for o in result.outputs] == [o.tobytes() for o in outputs]
    assert p.encode_message(p.SetInput(0, image), run_seq - 1) == client.sent[-2]
    assert p.encode_message(p.Run(3), run_seq) == client.sent[-1]
    assert p.encode_message(p.LoadBegin(len(MODEL), sha, "tinytracker"), 0xFFFF) == client.sent[1]


def test_the_host_writes_what_the_document_says_byte_for_byte() -> None:
    """DeviceClient's requests on a real pty equal the document client's frames for the same seq."""
    written = bytearray()
    sha = hashlib.sha256(b"m" * 40).digest()
    answers = {d.HELLO: b"", d.SELECT_MODEL: bytes([d.SELECT_MODEL]), d.SET_INPUT: bytes([d.SET_INPUT])}

    def serve(master: int, stop: object) -> None:
        pending = bytearray()
        while not stop.is_set():  # type: ignore[attr-defined]
            if not select.select([master], [], [], 0.05)[0]:
                continue
            chunk = os.read(master, 65536)
            written.extend(chunk)
            pending += chunk
            while b"\x00" in pending:
                raw, _, rest = bytes(pending).partition(b"\x00")
                pending = bytearray(rest)
                if not raw:
                    continue
                req = d.parse(raw)
                if req.mtype == d.HELLO:
                    body = (bytes([2]) + d.string("coral") + d.string("b") + d.string("fw 1") + d.string("X1")
                            + struct.pack("<QQB", 1 << 20, 1 << 20, 0))
                    os.write(master, d.frame(d.HELLO_REPLY, req.seq, body))
                else:
                    os.write(master, d.frame(d.ACK, req.seq, answers[req.mtype]))

    image = np.array([[1.5, -2.25]], dtype=np.float32)
    with serving_pty(serve) as port:
        client = DeviceClient(port, timeout_s=3.0, retries=0)
        client._seq = 0xFFFE  # the last seq used: the next request's is 0xFFFF, then the wrap to 0
        with client:
            client.hello()
            client.select_model(sha.hex())
            client.set_input(1, image)
    expected = (b"\x00" + d.frame(d.HELLO, 0xFFFF, b"") + d.frame(d.SELECT_MODEL, 0, sha)
                + d.frame(d.SET_INPUT, 1, struct.pack("<H", 1) + d.tensor(image)))
    assert bytes(written) == expected
