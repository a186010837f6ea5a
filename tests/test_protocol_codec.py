"""Properties of the wire codec: round trips, and damaged bytes never decoding into a wrong frame."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_edgehil.errors import FrameCorrupt, ProtocolError
from pytest_edgehil.link import messages as p

frames = st.builds(p.Frame, version=st.integers(0, 255), msg_type=st.integers(0, 255),
                   seq=st.integers(0, 0xFFFF), payload=st.binary(max_size=3000))


def feed_in_pieces(data: bytes, cuts: list[int]) -> list[p.Frame | FrameCorrupt]:
    decoder = p.FrameDecoder()
    points = sorted({c % (len(data) + 1) for c in cuts})
    out: list[p.Frame | FrameCorrupt] = []
    for lo, hi in zip([0, *points], [*points, len(data)]):
        out += decoder.feed(data[lo:hi])
    return out


# -- COBS ------------------------------------------------------------------------------------------------
# Published vectors (Cheshire & Baker; the examples every COBS library tests against).
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (bytes.fromhex("11220033"), bytes.fromhex("0311220233")),
    (bytes.fromhex("11223344"), bytes.fromhex("0511223344")),
    (bytes.fromhex("11000000"), bytes.fromhex("0211010101")),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_VECTORS)
def test_cobs_matches_published_vectors(raw, encoded):
    assert p.cobs_encode(raw) == encoded == reference_cobs_encode(raw)
    assert p.cobs_decode(encoded) == raw


@settings(deadline=None)  # CI machines are slow and shared; speed lives in benchmarks/
@given(st.binary(max_size=2000) | st.lists(st.sampled_from([b"\x00", b"\x01" * 253, b"\x02" * 254, b"\x03"]),
                                           max_size=12).map(b"".join))
def test_cobs_round_trip_has_no_zero_and_bounded_overhead(data):
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(encoded) == data


def reference_cobs_encode(data: bytes) -> bytes:
    """Byte-at-a-time transcription of the reference C encoder (Cheshire & Baker), for comparison."""
    out, code_at, code = bytearray(b"\x00"), 0, 1
    for k, byte in enumerate(data):
        if byte:
            out.append(byte)
            code += 1
        if not byte or code == 0xFF:
            out[code_at], code = code, 1
            code_at = len(out)
            if not byte or k < len(data) - 1:
                out.append(0)
    if code_at < len(out):
        out[code_at] = code
    return bytes(out)


zero_heavy = st.lists(st.sampled_from([b"\x00", b"\x00" * 300, b"\x05", b"\x07" * 253, b"\x09" * 254,
                                       b"\x0b" * 255, b"\x0d" * 508]), max_size=10).map(b"".join)


@settings(deadline=None)  # CI machines are slow and shared; speed lives in benchmarks/
@given(st.binary(max_size=1200) | zero_heavy)
def test_cobs_matches_the_reference_encoder(data):
    assert p.cobs_encode(data) == reference_cobs_encode(data)


def test_packet_layout_follows_the_spec():
    """Header <BBHI, payload, CRC32 LE over header+payload — computed here from the spec, not the codec."""
    wire = p.encode_message(p.Run(7), 0x1234)
    assert wire.endswith(b"\x00") and wire.count(0) == 1
    body = struct.pack("<BBHI", p.PROTOCOL_VERSION, 0x07, 0x1234, 4) + struct.pack("<I", 7)
    assert p.cobs_decode(wire[:-1]) == body + struct.pack("<I", zlib.crc32(body))


# -- frames ------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(frames, min_size=1, max_size=4), st.lists(st.integers(0, 20000), max_size=8))
def test_frames_survive_any_split_of_the_stream(sent, cuts):
    stream = b"".join(f.encode() for f in sent)
    assert feed_in_pieces(stream, cuts) == sent


@settings(max_examples=200, deadline=None)
@given(frames, st.data())
def test_a_read_holding_one_frame_decodes_as_the_same_bytes_fed_one_at_a_time(frame, data):
    # One whole frame per read takes the decoder's short path; byte by byte goes through its buffer.
    wire = bytearray(frame.encode())
    if data.draw(st.booleans()):  # damaged, or not
        i = data.draw(st.integers(0, len(wire) - 2))
        wire[i] = data.draw(st.integers(1, 255))
    whole, pieces = p.FrameDecoder(), p.FrameDecoder()
    got_whole = whole.feed(bytes(wire))
    got_pieces = [item for b in wire for item in pieces.feed(bytes([b]))]
    assert [str(x) if isinstance(x, FrameCorrupt) else x for x in got_whole] == \
        [str(x) if isinstance(x, FrameCorrupt) else x for x in got_pieces]
    assert (whole.frames_ok, whole.frames_corrupt, whole.pending_bytes) == \
        (pieces.frames_ok, pieces.frames_corrupt, pieces.pending_bytes)


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_any_single_byte_substitution_is_detected(frame, data):
    encoded = frame.encode()[:-1]
    i = data.draw(st.integers(0, len(encoded) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != encoded[i]))
    out = p.FrameDecoder().feed(encoded[:i] + bytes([value]) + encoded[i + 1:] + b"\x00")
    assert out and all(isinstance(item, FrameCorrupt) for item in out)


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_any_dropped_byte_is_detected(frame, data):
    encoded = frame.encode()[:-1]
    i = data.draw(st.integers(0, len(encoded) - 1))
    out = p.FrameDecoder().feed(encoded[:i] + encoded[i + 1:] + b"\x00")
    assert out and all(isinstance(item, FrameCorrupt) for item in out)


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_any_inserted_byte_never_yields_a_different_frame(frame, data):
    encoded = frame.encode()[:-1]
    i = data.draw(st.integers(0, len(encoded)))
    value = data.draw(st.integers(0, 255))
    out = p.FrameDecoder().feed(encoded[:i] + bytes([value]) + encoded[i:] + b"\x00")
    decoded = [item for item in out if isinstance(item, p.Frame)]
    # A 0x00 inserted at either end is just an extra delimiter around the intact frame.
    assert all(f == frame for f in decoded)
    if value != 0 or 0 < i < len(encoded):
        assert not decoded and out


@settings(max_examples=200, deadline=None)
@given(frames, st.data())
def test_truncation_is_detected_and_the_next_frame_still_decodes(frame, data):
    encoded = frame.encode()[:-1]
    k = data.draw(st.integers(1, len(encoded) - 1))
    follower = p.Frame(p.PROTOCOL_VERSION, p.MsgType.ACK, 1, b"\x07")
    out = p.FrameDecoder().feed(encoded[:k] + b"\x00" + follower.encode())
    assert isinstance(out[0], FrameCorrupt)
    assert out[1:] == [follower]


def test_truncated_frame_without_delimiter_is_held_not_decoded():
    wire = p.encode_message(p.Run(3), 5)
    decoder = p.FrameDecoder()
    assert decoder.feed(wire[:-3]) == []
    assert decoder.pending_bytes == len(wire) - 3
    assert decoder.feed(wire[-3:]) == [p.Frame(p.PROTOCOL_VERSION, p.MsgType.RUN, 5, struct.pack("<I", 3))]
    assert decoder.pending_bytes == 0


def test_garbage_without_delimiter_is_capped_then_the_decoder_recovers():
    decoder = p.FrameDecoder()
    chunk = b"\x55" * 65536
    out: list = []
    for _ in range(p.MAX_ENCODED // len(chunk) + 2):
        out += decoder.feed(chunk)
        assert decoder.pending_bytes <= p.MAX_ENCODED
    assert len(out) == 1 and isinstance(out[0], FrameCorrupt) and "delimiter" in str(out[0])
    good = p.encode_message(p.Reset(), 9)
    assert decoder.feed(b"\x00" + good)[-1].message() == p.Reset()


def test_oversized_payload_is_refused_on_encode():
    with pytest.raises(ProtocolError, match="MAX_PAYLOAD"):
        p.Frame(p.PROTOCOL_VERSION, p.MsgType.LOAD_CHUNK, 0, bytes(p.MAX_PAYLOAD + 1)).encode()
    with pytest.raises(ProtocolError, match="u16"):
        p.Frame(p.PROTOCOL_VERSION, p.MsgType.RUN, 0x10000, b"").encode()


# -- messages ------------------------------------------------------------------------------------------------
WIRE_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.float16, np.float32]
text = st.text(max_size=40)
digests = st.binary(min_size=32, max_size=32)
tensors = st.sampled_from(WIRE_DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=6)))
timings = st.builds(p.StageTiming, *[st.floats(allow_nan=False, width=64)] * 4)
# What the host accepts from a device (link/replies.py refuses non-finite stage times).
finite_timings = st.builds(p.StageTiming, *[st.floats(allow_nan=False, allow_infinity=False, width=64)] * 4)

messages = st.one_of(
    st.builds(p.Hello),
    st.builds(p.HelloReply, text, text, text, st.integers(0, 255), st.lists(text, max_size=5).map(tuple),
              st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), text),
    st.builds(p.LoadBegin, st.integers(0, 2**32 - 1), digests, text),
    st.builds(p.LoadChunk, st.integers(0, 2**32 - 1), st.binary(max_size=2000)),
    st.builds(p.LoadEnd, digests),
    st.builds(p.SelectModel, digests),
    st.builds(p.SetInput, st.integers(0, 0xFFFF), tensors),
    st.builds(p.Run, st.integers(0, 2**32 - 1)),
    st.builds(p.Result, st.lists(timings, max_size=20).map(tuple), st.lists(tensors, max_size=3).map(tuple),
              digests),
    st.builds(p.Reset),
    st.builds(p.Ack, st.sampled_from(list(p.MsgType))),
    st.builds(p.Error, st.sampled_from(list(p.ErrorCode)), text),
)


@settings(max_examples=300, deadline=None)
@given(messages, st.integers(0, 0xFFFF), st.lists(st.integers(0, 5000), max_size=4))
def test_every_message_round_trips_through_the_wire(message, seq, cuts):
    (frame,) = feed_in_pieces(p.encode_message(message, seq), cuts)
    assert isinstance(frame, p.Frame)
    assert (frame.seq, frame.msg_type) == (seq, message.msg_type)
    decoded = frame.message()
    assert type(decoded) is type(message) and decoded == message


@pytest.mark.parametrize("dtype", WIRE_DTYPES)
def test_set_input_tensor_round_trips_each_dtype(dtype):
    rng = np.random.default_rng(7)
    info = np.finfo(dtype) if np.issubdtype(dtype, np.floating) else np.iinfo(dtype)
    tensor = rng.uniform(float(info.min) / 4, float(info.max) / 4, size=(1, 5, 4, 3)).astype(dtype)
    decoded = p.SetInput.decode_payload(p.SetInput(2, tensor).encode_payload())
    assert decoded.index == 2 and decoded.tensor.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(decoded.tensor, tensor)


def test_big_endian_and_strided_tensors_arrive_as_their_values():
    values = np.arange(24, dtype=np.int16).reshape(4, 6) - 12
    sent = values.astype(">i2")[:, ::2]  # big-endian and non-contiguous
    payload = p.SetInput(0, sent).encode_payload()
    assert payload[-2:] == struct.pack("<h", int(values[-1, 4]))  # raw bytes are little-endian
    np.testing.assert_array_equal(p.SetInput.decode_payload(payload).tensor, values[:, ::2])


def test_unsupported_dtype_is_refused_naming_the_fix():
    with pytest.raises(ProtocolError, match=r"float64.*astype"):
        p.SetInput(0, np.zeros(3)).encode_payload()


@pytest.mark.parametrize("message", [
    p.HelloReply("imx500", "cam0", "1.2", 1, ("run", "load_model"), 8 << 20, 16 << 20, "SN1"),
    p.LoadBegin(100, bytes(range(32)), "tinytracker"),
    p.SetInput(0, np.ones((2, 3), np.float32)),
    p.Result((p.StageTiming(0, 1, 2, 3),), (np.arange(4, dtype=np.int8),), bytes(range(32))),
    p.Error(p.ErrorCode.NO_MODEL, "no model"),
])
def test_truncated_or_padded_payloads_are_protocol_errors(message):
    payload = message.encode_payload()
    with pytest.raises(ProtocolError, match="too short"):
        type(message).decode_payload(payload[:-1])
    with pytest.raises(ProtocolError, match="trailing"):
        type(message).decode_payload(payload + b"\x00")


def test_digests_must_be_32_bytes():
    with pytest.raises(ProtocolError, match="32 bytes"):
        p.LoadEnd(b"\x01" * 31).encode_payload()
    with pytest.raises(ProtocolError, match="32 bytes"):
        p.SelectModel.decode_payload(b"\x01" * 33)


def test_every_message_type_has_exactly_one_class():
    assert set(p.MESSAGE_TYPES) == set(p.MsgType)
    assert all(cls.msg_type == t for t, cls in p.MESSAGE_TYPES.items())
    with pytest.raises(ProtocolError, match="already bound"):
        p.register(p.MsgType.RUN)(type("Dup", (p.Message,), {}))


def test_unknown_type_and_unknown_error_code_are_reported_not_guessed():
    with pytest.raises(ProtocolError, match="0x42"):
        p.Frame(p.PROTOCOL_VERSION, 0x42, 3, b"").message()
    error = p.Error.decode_payload(bytes([200]) + struct.pack("<H", 2) + b"hi")
    assert error.code == 200 and error.code_name == "code 200"


@settings(deadline=None)  # CI machines are slow and shared; speed lives in benchmarks/
@given(finite_timings)
def test_end_to_end_is_the_sum_of_the_stages(t):
    assert t.end_to_end_us == t.readout_us + t.inference_us + t.retrieval_us


def test_every_message_type_is_in_the_protocol_spec_table_with_its_code():
    spec = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in spec.splitlines()
            if line.startswith("| ") and line.count("|") >= 6}
    for msg_type in p.MsgType:
        assert rows.get(msg_type.name) == f"0x{msg_type.value:02X}", msg_type.name
