"""A host client written from docs/protocol.md alone, as a lab engineer would write one to check a board:
COBS as the doc describes it (code byte c, c - 1 data bytes, an implied zero after every block but the
last and after no 0xFF block), the "<BBHI" header, CRC-32 over header + payload, and the payloads of
HELLO, LOAD_*, SELECT_MODEL, SET_INPUT, RUN, ACK, HELLO_REPLY, RESULT and ERROR field by field.

Nothing here imports pytest_edgehil: tests compare its bytes with the host's and the twins', so a slip
shared by the host and the twin (they import one codec) shows up as a disagreement with the document.
"""

from __future__ import annotations

import hashlib
import os
import select
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

VERSION = 2
HEADER = struct.Struct("<BBHI")  # version, type, seq, payload length
HELLO, LOAD_BEGIN, LOAD_CHUNK, LOAD_END, SELECT_MODEL, SET_INPUT, RUN, RESET = range(1, 9)
ACK, HELLO_REPLY, RESULT, ERROR = 0x80, 0x81, 0x87, 0xFF
DTYPES = {1: "<i1", 2: "<u1", 3: "<i2", 4: "<i4", 5: "<f2", 6: "<f4"}
CODES = {np.dtype(v).str: k for k, v in DTYPES.items()}


def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    ended_full = False  # whether the data's last byte completed a full (0xFF) block
    for byte in data:
        ended_full = False
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:  # a full block: code 0xFF, no implied zero after it
                out += b"\xff" + block
                block.clear()
                ended_full = True
    if not ended_full:  # the last block (empty after a trailing zero); none after a final full block
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(encoded):
        code = encoded[i]
        if code == 0 or i + code > len(encoded):
            raise ValueError(f"bad COBS at {i}")
        out += encoded[i + 1:i + code]
        if 0 in encoded[i + 1:i + code]:
            raise ValueError("zero inside a COBS frame")
        i += code
        if code != 0xFF and i < len(encoded):
            out.append(0)
    return bytes(out)


def frame(mtype: int, seq: int, payload: bytes, version: int = VERSION) -> bytes:
    header = HEADER.pack(version, mtype, seq, len(payload))
    return cobs_encode(header + payload + struct.pack("<I", zlib.crc32(header + payload))) + b"\x00"


@dataclass
class Reply:
    version: int
    mtype: int
    seq: int
    payload: bytes


def parse(encoded: bytes) -> Reply:
    """One frame without its delimiter; ValueError when it is damaged (the doc's four rules)."""
    packet = cobs_decode(encoded)
    if len(packet) < 12:
        raise ValueError("short frame")
    version, mtype, seq, length = HEADER.unpack_from(packet)
    if length != len(packet) - 12:
        raise ValueError("length field")
    if struct.unpack_from("<I", packet, len(packet) - 4)[0] != zlib.crc32(packet[:-4]):
        raise ValueError("CRC")
    return Reply(version, mtype, seq, packet[8:-4])


def string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw


def tensor(array: np.ndarray) -> bytes:
    a = np.ascontiguousarray(array)
    little = a.astype(a.dtype.newbyteorder("<"))
    return struct.pack(f"<BB{a.ndim}I", CODES[little.dtype.str], a.ndim, *a.shape) + little.tobytes()


class Reader:
    def __init__(self, payload: bytes) -> None:
        self.data, self.at = payload, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("payload too short")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        return self.take(n).decode()

    def tensor(self) -> np.ndarray:
        code, ndim = self.unpack("BB")
        dims = self.unpack(f"{ndim}I")
        dtype = np.dtype(DTYPES[code])
        return np.frombuffer(self.take(int(np.prod(dims)) * dtype.itemsize), dtype).reshape(dims)

    def done(self) -> None:
        if self.at != len(self.data):
            raise ValueError(f"{len(self.data) - self.at} bytes left over")


def hello_reply(payload: bytes) -> dict[str, object]:
    r = Reader(payload)
    (version,) = r.unpack("B")
    kind, name, firmware, serial = r.string(), r.string(), r.string(), r.string()
    ram, flash, n = r.unpack("QQB")
    caps = [r.string() for _ in range(n)]
    r.done()
    return {"version": version, "kind": kind, "name": name, "firmware": firmware, "serial": serial,
            "ram": ram, "flash": flash, "capabilities": caps}


def result(payload: bytes) -> tuple[bytes, list[tuple[float, float, float, float]], list[np.ndarray]]:
    """(model SHA-256, timings (start, readout, inference, retrieval) µs, outputs)."""
    r = Reader(payload)
    sha = r.take(32)
    (n,) = r.unpack("I")
    timings = [r.unpack("4d") for _ in range(n)]
    (m,) = r.unpack("B")
    outputs = [r.tensor() for _ in range(m)]
    r.done()
    return sha, timings, outputs


def requests_for_model(model: bytes, name: str, chunk: int = 32768) -> list[tuple[int, bytes]]:
    """The (type, payload) list of one upload, in order."""
    sha = hashlib.sha256(model).digest()
    out = [(LOAD_BEGIN, struct.pack("<I", len(model)) + sha + string(name))]
    out += [(LOAD_CHUNK, struct.pack("<I", off) + model[off:off + chunk]) for off in range(0, len(model), chunk)]
    return out + [(LOAD_END, sha)]


class PtyClient:
    """Blocking one-request-at-a-time client on a tty path (no retries: a test wants to see every byte)."""

    def __init__(self, path: str, seq: int = 100) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        import tty
        tty.setraw(self.fd)
        self.seq = seq
        self.pending = bytearray()
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        os.write(self.fd, b"\x00")

    def close(self) -> None:
        os.close(self.fd)

    def request(self, mtype: int, payload: bytes, timeout_s: float = 10.0) -> Reply:
        wire = frame(mtype, self.seq, payload)
        self.sent.append(wire)
        view = memoryview(wire)
        while view:
            view = view[os.write(self.fd, view):]
        deadline = time.monotonic() + timeout_s
        while True:
            if b"\x00" in self.pending:
                raw, _, rest = bytes(self.pending).partition(b"\x00")
                self.pending = bytearray(rest)
                if not raw:
                    continue
                self.received.append(raw + b"\x00")
                reply = parse(raw)
                if reply.seq == self.seq:
                    self.seq = (self.seq + 1) & 0xFFFF
                    return reply
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to type {mtype:#x}; bytes pending {bytes(self.pending[:32]).hex()}")
            if select.select([self.fd], [], [], left)[0]:
                self.pending += os.read(self.fd, 65536)
