"""Framing of the wire protocol: COBS byte stuffing, the packet header and CRC, a streaming decoder.

Codec only, no I/O. A frame on the wire is COBS(packet) followed by one 0x00 delimiter; a packet is the
header `<BBHI` (version, message type, sequence number, payload length), the payload, then the CRC32
(zlib.crc32, little-endian u32) of header + payload. Decoding never yields a frame from damaged bytes:
bad COBS, a length mismatch or a CRC mismatch is `FrameCorrupt`. The message dataclasses carried in the
payload live in `protocol.py`, which re-exports everything here.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

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
_NONZERO_RUN = re.compile(rb"[^\x00]+")
_NOT_CODE_ONE = re.compile(rb"[^\x01]")


def cobs_encode(data: bytes) -> bytes:
    """Consistent-overhead byte stuffing (Cheshire & Baker): the result holds no 0x00, so 0x00 delimits.

    Each zero-free run of the data is emitted as blocks: 0xFF + 254 bytes (no implied zero) while the
    run is that long, then (len + 1) + the rest; every block but the last implies a zero after it. As in
    the reference encoder, data ending in a full 0xFF block gets no trailing 0x01, so firmware using a
    standard COBS library produces byte-identical frames.
    """
    data = bytes(data)
    n = len(data)
    out = bytearray()
    cursor = 0  # start of the current run
    # Loop over the non-empty runs only (regex in C): k zeros in a row are k empty runs, i.e. k 0x01
    # codes, so zero-heavy tensors (masks, blank images) cost no more than sparse ones.
    for match in _NONZERO_RUN.finditer(data):
        start, end = match.span()
        out += b"\x01" * (start - cursor)
        for block in range(start, end - 253, 254):
            out.append(0xFF)
            out += data[block:block + 254]
        tail = data[end - (end - start) % 254:end]
        if tail or end < n:  # a last run ending in a full block gets no trailing 0x01
            out.append(len(tail) + 1)
            out += tail
        cursor = end + 1  # past the zero that ends this run
    if cursor <= n:
        out += b"\x01" * (n - cursor + 1)  # trailing zeros: empty runs, the last one unterminated
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Inverse of `cobs_encode`; raises FrameCorrupt for a zero byte or a block running past the end."""
    encoded = bytes(encoded)
    n = len(encoded)
    if 0 in encoded:
        raise FrameCorrupt(f"COBS frame of {n} bytes has a 0x00 at offset {encoded.index(0)} "
                           "(a delimiter inside a frame)")
    out = bytearray()
    i = 0
    while i < n:
        code = encoded[i]
        if code == 1:
            # A row of empty blocks, each standing for one zero (none after the frame's last block).
            found = _NOT_CODE_ONE.search(encoded, i)
            j = found.start() if found else n
            out += bytes(j - i if j < n else j - i - 1)
            i = j
            continue
        end = i + code
        if end > n:
            raise FrameCorrupt(f"COBS block at offset {i} needs {code - 1} bytes but the frame ends after "
                               f"{n - i - 1} (bytes dropped on the wire?)")
        out += encoded[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


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
    # 0x09-0x0B left free (0x09: EVAL, another branch). Optional, behind HELLO capability `energy_read`.
    ENERGY_READ = 0x0C
    ACK = 0x80
    HELLO_REPLY = 0x81
    RESULT = 0x87
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
        body = HEADER.pack(self.version, self.msg_type, self.seq, len(self.payload)) + bytes(self.payload)
        return cobs_encode(body + CRC.pack(zlib.crc32(body))) + b"\x00"

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
    if len(packet) < HEADER.size + CRC.size:
        raise FrameCorrupt(f"frame of {len(packet)} bytes is shorter than header + CRC "
                           f"({HEADER.size + CRC.size} bytes)")
    body, (crc,) = packet[:-CRC.size], CRC.unpack(packet[-CRC.size:])
    version, msg_type, seq, length = HEADER.unpack(body[:HEADER.size])
    if length != len(body) - HEADER.size:
        raise FrameCorrupt(f"frame header says {length} payload bytes but the frame holds "
                           f"{len(body) - HEADER.size} (bytes dropped or inserted on the wire?)")
    if zlib.crc32(body) != crc:
        raise FrameCorrupt(f"frame CRC32 mismatch: computed 0x{zlib.crc32(body):08X}, frame says 0x{crc:08X} "
                           "(bits flipped on the wire?)")
    return Frame(version, msg_type, seq, body[HEADER.size:])


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
                try:
                    out.append(decode_frame(bytes(self._buffer)))
                    self.frames_ok += 1
                except FrameCorrupt as exc:
                    self.frames_corrupt += 1
                    out.append(exc)
            self._buffer.clear()
            self._overflowing = False
            start = zero + 1
