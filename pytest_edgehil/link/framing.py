"""Framing of the wire protocol: COBS byte stuffing, the packet header and CRC, a streaming decoder.

Codec only, no I/O. A frame on the wire is COBS(packet) followed by one 0x00 delimiter; a packet is the
header `<BBHI` (version, message type, sequence number, payload length), the payload, then the CRC32
(zlib.crc32, little-endian u32) of header + payload. Decoding never yields a frame from damaged bytes:
bad COBS, a length mismatch or a CRC mismatch is `FrameCorrupt`. The message dataclasses carried in the
payload live in `protocol.py`, which re-exports everything here.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from cobs import cobs as _cobs

from pytest_edgehil.errors import FrameCorrupt, ProtocolError

if TYPE_CHECKING:
    from pytest_edgehil.link.messages import Message

# 2: RESULT starts with the active model's SHA-256 (docs/protocol.md, "Version history").
PROTOCOL_VERSION = 2
MAX_PAYLOAD = 4 * 1024 * 1024  # 4 MiB: bounds what garbage on the wire can make a receiver buffer
HEADER = struct.Struct("<BBHI")
CRC = struct.Struct("<I")
MAX_PACKET = HEADER.size + MAX_PAYLOAD + CRC.size
# COBS adds one code byte per 254 data bytes, plus one.
MAX_ENCODED = MAX_PACKET + MAX_PACKET // 254 + 1


# -- COBS ------------------------------------------------------------------------------------------------
# The `cobs` package (C extension) does the byte stuffing: a 64 KB tensor was a third of a SET_INPUT
# round trip in pure Python. It is the reference algorithm (Cheshire & Baker), so firmware using a
# standard COBS library produces byte-identical frames (tests/test_framing.py checks known vectors).


def cobs_encode(data: bytes) -> bytes:
    """Consistent-overhead byte stuffing: the result holds no 0x00, so 0x00 delimits frames.

    Each zero-free run is emitted as blocks: 0xFF + 254 bytes (no implied zero) while the run is that
    long, then (len + 1) + the rest; every block but the last implies a zero after it; data ending in a
    full 0xFF block gets no trailing 0x01 (as the reference encoder).
    """
    return _cobs.encode(data)


def cobs_decode(encoded: bytes) -> bytes:
    """Inverse of `cobs_encode`; raises FrameCorrupt for a zero byte or a block running past the end."""
    try:
        return _cobs.decode(encoded)
    except _cobs.DecodeError as exc:
        view = bytes(encoded)
        if 0 in view:
            raise FrameCorrupt(f"COBS frame of {len(view)} bytes has a 0x00 at offset {view.index(0)} "
                               "(a delimiter inside a frame)") from None
        raise FrameCorrupt(f"COBS frame of {len(view)} bytes: {exc} (a block runs past the end: bytes "
                           "dropped on the wire?)") from None


# -- frames ------------------------------------------------------------------------------------------------
class MsgType(IntEnum):
    HELLO = 0x01
    LOAD_BEGIN = 0x02
    LOAD_CHUNK = 0x03
    LOAD_END = 0x04
    SELECT_MODEL = 0x05
    SET_INPUT = 0x06
    RUN = 0x07
    RESET = 0x08
    EVAL = 0x09  # inputs + one inference in one request, pipelined (capability `eval`)
    EVAL_BATCH = 0x0A  # N images in one request (capability `batch=N`, link/batch_messages.py)
    # 0x0B free. Optional, behind HELLO capability `energy_read` (link/energy_messages.py).
    ENERGY_READ = 0x0C
    ACK = 0x80
    HELLO_REPLY = 0x81
    RESULT = 0x87
    BATCH_RESULT = 0x8A
    ENERGY_COUNTERS = 0x8C
    ERROR = 0xFF


def type_name(msg_type: int) -> str:
    """MsgType name, or the hex code of a type this version does not know."""
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"0x{msg_type:02X}"


@dataclass(frozen=True)
class Frame:
    """One decoded packet: header fields and the raw payload (CRC already checked)."""

    version: int
    msg_type: int
    seq: int
    payload: bytes

    def encode(self) -> bytes:
        """Wire bytes: COBS(header + payload + CRC32) + 0x00."""
        if not 0 <= self.seq <= 0xFFFF:
            raise ProtocolError(f"sequence number {self.seq} does not fit the u16 header field")
        if not (0 <= self.version <= 0xFF and 0 <= self.msg_type <= 0xFF):
            raise ProtocolError(f"version {self.version} / type {self.msg_type} do not fit u8 header fields")
        if len(self.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"{type_name(self.msg_type)} payload of {len(self.payload)} bytes exceeds "
                                f"MAX_PAYLOAD ({MAX_PAYLOAD}); send it in smaller pieces")
        header = HEADER.pack(self.version, self.msg_type, self.seq, len(self.payload))
        crc = zlib.crc32(self.payload, zlib.crc32(header))  # CRC of header + payload, without joining them first
        return cobs_encode(b"".join((header, self.payload, CRC.pack(crc)))) + b"\x00"

    def message(self) -> Message:
        """The payload decoded to its message dataclass; ProtocolError for unknown types or bad payloads."""
        from pytest_edgehil.link.messages import MESSAGE_TYPES  # the registry imports this module

        cls = MESSAGE_TYPES.get(self.msg_type)
        if cls is None:
            raise ProtocolError(f"frame seq {self.seq} has unknown message type 0x{self.msg_type:02X}")
        return cls.decode_payload(self.payload)

    @property
    def type_name(self) -> str:
        return type_name(self.msg_type)


def decode_frame(encoded: bytes) -> Frame:
    """One frame's COBS bytes (without the 0x00 delimiter) to a Frame; FrameCorrupt if anything is off."""
    if len(encoded) > MAX_ENCODED:
        raise FrameCorrupt(f"frame of {len(encoded)} bytes exceeds the largest legal frame ({MAX_ENCODED})")
    packet = cobs_decode(encoded)
    size = len(packet) - CRC.size  # header + payload
    if size < HEADER.size:
        raise FrameCorrupt(f"frame of {len(packet)} bytes is shorter than header + CRC "
                           f"({HEADER.size + CRC.size} bytes)")
    (crc,) = CRC.unpack_from(packet, size)
    version, msg_type, seq, length = HEADER.unpack_from(packet)
    if length != size - HEADER.size:
        raise FrameCorrupt(f"frame header says {length} payload bytes but the frame holds "
                           f"{size - HEADER.size} (bytes dropped or inserted on the wire?)")
    computed = zlib.crc32(memoryview(packet)[:size])  # read in place: the payload is copied once, below
    if computed != crc:
        raise FrameCorrupt(f"frame CRC32 mismatch: computed 0x{computed:08X}, frame says 0x{crc:08X} "
                           "(bits flipped on the wire?)")
    return Frame(version, msg_type, seq, packet[HEADER.size:size])


class FrameDecoder:
    """Streaming splitter: feed it bytes as they arrive, get back frames and corrupt-frame errors.

    Partial frames are kept until their delimiter arrives. Empty frames (0x00 0x00) are ignored, so a
    sender may emit a lone 0x00 to flush a receiver's partial garbage. A run of more than MAX_ENCODED
    bytes without a delimiter is discarded (reported once) instead of being buffered.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._overflowing = False
        self.frames_ok = 0
        self.frames_corrupt = 0

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        self._buffer.clear()
        self._overflowing = False

    def feed(self, data: bytes) -> list[Frame | FrameCorrupt]:
        data = bytes(data)
        if (not self._buffer and not self._overflowing and 0 < len(data) - 1 <= MAX_ENCODED
                and data.find(b"\x00") == len(data) - 1):
            # Exactly one whole frame and nothing pending (how replies and requests mostly arrive): decoded
            # without passing through the buffer; the loop below gives the same outcome, with two copies more.
            return [self._decode(data[:-1])]
        out: list[Frame | FrameCorrupt] = []
        start = 0
        while True:
            zero = data.find(b"\x00", start)
            piece = data[start:] if zero < 0 else data[start:zero]
            if self._overflowing:
                pass  # still inside an over-long run: drop until its delimiter
            elif len(self._buffer) + len(piece) > MAX_ENCODED:
                self._buffer.clear()
                self._overflowing = True
                self.frames_corrupt += 1
                out.append(FrameCorrupt(f"more than {MAX_ENCODED} bytes without a frame delimiter; "
                                        "discarding until the next 0x00"))
            else:
                self._buffer += piece
            if zero < 0:
                return out
            if self._buffer:
                out.append(self._decode(bytes(self._buffer)))
            self._buffer.clear()
            self._overflowing = False
            start = zero + 1

    def _decode(self, encoded: bytes) -> Frame | FrameCorrupt:
        try:
            frame = decode_frame(encoded)
        except FrameCorrupt as exc:
            self.frames_corrupt += 1
            return exc
        self.frames_ok += 1
        return frame
