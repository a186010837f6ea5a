"""Payload field codecs of the wire protocol: a checked field reader, strings, digests and tensors.

Shared by every message in `messages.py`; no I/O. A shortfall or a bad field is a ProtocolError that
names the message and the field.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pytest_edgehil.errors import InvalidPayload, ProtocolError

__all__ = ["DTYPE_CODES", "MAX_NDIM", "MAX_TENSOR_BYTES", "PayloadReader", "StageTiming", "check_dims", "decode_tensor",
           "decode_timings", "digest_field", "encode_tensor", "same_tensor", "string_field", "tensor_fields",
           "timing_fields"]


_STRUCTS: dict[str, struct.Struct] = {}  # compiled field formats, by format string


# -- payload helpers ----------------------------------------------------------------------------------
class PayloadReader:
    """Reads fields off a payload; every shortfall is a ProtocolError naming the message and field."""

    def __init__(self, payload: bytes, what: str) -> None:
        self.data, self.pos, self.what = memoryview(bytes(payload)), 0, what

    def take(self, n: int, field: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"{self.what} payload too short: {field} needs {n} bytes at offset "
                                f"{self.pos}, payload has {len(self.data)}")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def view(self, n: int, field: str) -> memoryview:
        """Like `take`, without the copy: a view into the payload (for numpy to copy once)."""
        if self.pos + n > len(self.data):
            self.take(n, field)  # raises the shortfall error
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, field: str) -> tuple:
        s = _STRUCTS.get(fmt)
        if s is None:
            s = _STRUCTS[fmt] = struct.Struct("<" + fmt)
        if self.pos + s.size > len(self.data):
            self.take(s.size, field)  # raises the shortfall error
        values = s.unpack_from(self.data, self.pos)  # no intermediate copy (every reply decodes several)
        self.pos += s.size
        return values

    def string(self, field: str) -> str:
        (n,) = self.unpack("H", field)
        try:
            return self.take(n, field).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{self.what}: {field} is not valid UTF-8 ({exc})") from exc

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos, "rest")

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.what} payload has {len(self.data) - self.pos} unexpected trailing bytes")


def string_field(text: str, field: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ProtocolError(f"{field} is {len(raw)} bytes of UTF-8; the protocol allows 65535")
    return struct.pack("<H", len(raw)) + raw


def digest_field(value: bytes, what: str) -> bytes:
    if len(value) != 32:
        raise ProtocolError(f"{what}: a SHA-256 digest is 32 bytes, got {len(value)}")
    return bytes(value)


# Tensor element types on the wire (little-endian).
DTYPE_CODES: dict[np.dtype, int] = {np.dtype(t): code for code, t in enumerate(
    ("int8", "uint8", "int16", "int32", "float16", "float32"), start=1)}
_CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}
MAX_NDIM = 8
_LITTLE = {code: dtype.newbyteorder("<") for code, dtype in _CODE_DTYPES.items()}  # the wire's byte order
_DIMS_FORMATS = [f"{n}I" for n in range(MAX_NDIM + 1)]
_TENSOR_HEADERS = [struct.Struct(f"<BB{n}I") for n in range(MAX_NDIM + 1)]  # dtype code, ndim, dims
# A tensor's data never exceeds one frame's payload (4 MiB, framing.MAX_PAYLOAD); stated here as well so
# that a header is bounded before any byte of its data is read.
MAX_TENSOR_BYTES = 4 * 1024 * 1024


def check_dims(dims: tuple[int, ...], itemsize: int, what: str) -> int:
    """Validate a tensor header's dims; returns the data size in bytes.

    Every dimension must be >= 1 (a model tensor never has zero elements, and a zero dimension beside huge
    ones is how a header asks numpy for an impossible array), and the byte count, computed with Python
    ints so it cannot wrap, must fit MAX_TENSOR_BYTES. Raises InvalidPayload naming the tensor, the dims
    and the limit. (That the bytes are actually there is PayloadReader.take's check: "payload too short".)
    """
    if any(d < 1 for d in dims):
        raise InvalidPayload(f"{what}: tensor header has dims {list(dims)}; every dimension must be >= 1 "
                             "(a zero-size or garbled tensor header)")
    nbytes = math.prod(dims) * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise InvalidPayload(f"{what}: tensor header has dims {list(dims)} = {nbytes:,} bytes of data, more than "
                             f"one frame carries ({MAX_TENSOR_BYTES:,}); the header is garbled or the sender "
                             "packs tensors differently from docs/protocol.md")
    return nbytes


def encode_tensor(tensor: np.ndarray, what: str) -> bytes:
    """dtype code (u8), ndim (u8), dims (u32 each), then the raw little-endian elements."""
    return b"".join(tensor_fields(tensor, what))


def tensor_fields(tensor: np.ndarray, what: str) -> tuple[bytes, memoryview]:
    """A tensor field as its header and its little-endian, contiguous elements: a message joins them with
    its other fields, so the data is copied once into the payload. ProtocolError as `encode_tensor`."""
    array = np.asarray(tensor)
    code = DTYPE_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        names = ", ".join(str(d) for d in DTYPE_CODES)
        raise ProtocolError(f"{what}: dtype {array.dtype} cannot be sent; supported: {names}. "
                            "Convert it (e.g. tensor.astype(np.float32)) or quantize it first.")
    if array.ndim > MAX_NDIM:
        raise ProtocolError(f"{what}: {array.ndim} dimensions; the protocol allows {MAX_NDIM}")
    if array.size == 0:
        raise ProtocolError(f"{what}: shape {list(array.shape)} has no elements; the protocol carries only "
                            "tensors whose every dimension is >= 1")
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return _TENSOR_HEADERS[array.ndim].pack(code, array.ndim, *array.shape), little.data


def decode_tensor(reader: PayloadReader, what: str) -> np.ndarray:
    """A tensor field (see `encode_tensor`) as a native-order array that owns its data (one copy)."""
    code, ndim = reader.unpack("BB", f"{what} dtype/ndim")
    dtype = _CODE_DTYPES.get(code)
    if dtype is None or ndim > MAX_NDIM:
        raise ProtocolError(f"{what}: unknown dtype code {code} or ndim {ndim} > {MAX_NDIM}")
    dims = reader.unpack(_DIMS_FORMATS[ndim], f"{what} dims")
    raw = reader.view(check_dims(dims, dtype.itemsize, what), f"{what} data")
    return np.frombuffer(raw, dtype=_LITTLE[code]).astype(dtype).reshape(dims)


def same_tensor(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality (so NaN payloads compare equal to themselves after a round trip)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@dataclass(frozen=True)
class StageTiming:
    """One inference's stages in µs; `start_us` is its trigger edge relative to the RUN's first one."""

    start_us: float
    readout_us: float
    inference_us: float
    retrieval_us: float

    @property
    def end_to_end_us(self) -> float:
        return self.readout_us + self.inference_us + self.retrieval_us


_TIMING = struct.Struct("<4d")  # start, readout, inference, retrieval: f64 µs each
TIMING_BYTES = _TIMING.size  # one StageTiming on the wire (RESULT, BATCH_RESULT)


def timing_fields(timings: Iterable[StageTiming]) -> bytes:
    """Stage timings as consecutive `<4d` records (RESULT, BATCH_RESULT); the count is the caller's field."""
    return b"".join(_TIMING.pack(t.start_us, t.readout_us, t.inference_us, t.retrieval_us) for t in timings)


def decode_timings(reader: PayloadReader, count: int) -> tuple[StageTiming, ...]:
    """`count` `<4d` timing records; ProtocolError (payload too short) when they are not all there."""
    return tuple(StageTiming(*values) for values in _TIMING.iter_unpack(reader.view(count * _TIMING.size, "timings")))
