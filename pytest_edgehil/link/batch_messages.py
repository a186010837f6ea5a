"""EVAL_BATCH → BATCH_RESULT: several images evaluated in one request, the reply tied to its request.

Optional, behind the HELLO capability `batch=N` (docs/protocol.md, "Batched evaluation"): a host sends
EVAL_BATCH only to a device that advertises it, so a version 2 board without it never sees the type and
the protocol version stays 2. Codec only, no I/O; registered in `messages.MESSAGE_TYPES` like the rest.

Why a batch: with one EVAL per image, the host's and the device's per-request work (framing, decoding,
the reply, the thread hand-overs on a twin) recurs for every image; for a small model it is as long as
the inference itself. One request carrying N images pays it once.

Why the reply carries `request_crc32`: with requests in flight, a reply is matched to its request by
sequence number alone, and a reply stamped with another request's seq (a firmware bug, a reply and its
retransmission both lost) would pass for the answer to other images. BATCH_RESULT echoes the CRC-32 of
the EVAL_BATCH payload it answers, so the host refuses a reply that was not computed from the images it
is taken for.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pytest_edgehil.errors import ProtocolError
from pytest_edgehil.link.framing import MsgType
from pytest_edgehil.link.message_base import Message, register
from pytest_edgehil.link.payload import (
    PayloadReader,
    StageTiming,
    decode_tensor,
    decode_timings,
    digest_field,
    same_tensor,
    tensor_fields,
    timing_fields,
)

__all__ = ["BATCH_CAPABILITY", "MAX_IMAGES", "BatchResult", "EvalBatch", "batch_size", "payload_crc32"]

# HELLO_REPLY capability: "batch=N", N >= 1 images per EVAL_BATCH (each buffered request holds N images).
BATCH_CAPABILITY = "batch="
MAX_IMAGES = 0xFFFF  # the u16 image count


def payload_crc32(payload: bytes | bytearray | memoryview) -> int:
    """The CRC-32 (zlib, as the frame CRC) of an EVAL_BATCH payload: what its BATCH_RESULT echoes."""
    return zlib.crc32(payload)


def batch_size(capabilities: Sequence[str]) -> int:
    """Images per EVAL_BATCH a device takes, from its HELLO_REPLY capabilities: N of `batch=N`, 0 when it
    does not advertise EVAL_BATCH. ProtocolError for a malformed count."""
    for cap in capabilities:
        if cap.startswith(BATCH_CAPABILITY):
            text = cap[len(BATCH_CAPABILITY):]
            # ASCII digits only: str.isdigit() also admits '²', which int() then refuses with a ValueError.
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_IMAGES:
                raise ProtocolError(f"HELLO_REPLY capability {cap!r}: the image count must be an integer "
                                    f"from 1 to {MAX_IMAGES}")
            return int(text)
    return 0


@register(MsgType.EVAL_BATCH)
@dataclass(frozen=True, eq=False)
class EvalBatch(Message):
    """Evaluate N images in order: for each, its tensors set the model inputs `indices` (as SET_INPUT does,
    same checks), then one inference runs (as RUN 1). Answered by one BATCH_RESULT (or one ERROR: the
    images before the refused one may have run; none of their outputs is sent).

    Payload: u8 k (inputs per image, 1..255), k × u16 input index (distinct), u16 N (images, >= 1), then
    N × k tensors, image by image. Inputs not in `indices` keep what was set before. `payload_crc32` is
    the CRC-32 of its payload.
    """

    indices: tuple[int, ...]
    images: tuple[tuple[np.ndarray, ...], ...]  # per image, one tensor per index
    payload: bytes | None = field(default=None, compare=False, repr=False)  # as decoded (None: built to send)

    @property
    def payload_crc32(self) -> int:
        """The CRC-32 its BATCH_RESULT echoes: of the payload it was decoded from (computed when asked: a
        device computes it after the inferences, off the way to the first one), else of its encoding."""
        return payload_crc32(self.payload if self.payload is not None else self.encode_payload())

    def encode_payload(self) -> bytes:
        k = len(self.indices)
        if not 1 <= k <= 0xFF or len(set(self.indices)) != k:
            raise ProtocolError(f"EVAL_BATCH sets 1..255 distinct inputs per image, got indices {list(self.indices)}")
        if not 1 <= len(self.images) <= MAX_IMAGES:
            raise ProtocolError(f"EVAL_BATCH carries 1..{MAX_IMAGES} images, got {len(self.images)}")
        fields: list[bytes | memoryview] = [struct.pack(f"<B{k}HH", k, *self.indices, len(self.images))]
        for n, tensors in enumerate(self.images):
            if len(tensors) != k:
                raise ProtocolError(f"EVAL_BATCH image {n} carries {len(tensors)} tensors for {k} inputs")
            for index, tensor in zip(self.indices, tensors):
                fields += tensor_fields(tensor, f"EVAL_BATCH image {n} input {index}")
        return b"".join(fields)

    @classmethod
    def decode_payload(cls, payload: bytes) -> EvalBatch:
        r = PayloadReader(payload, "EVAL_BATCH")
        (k,) = r.unpack("B", "input count")
        indices = r.unpack(f"{k}H", "input indices")
        if k < 1 or len(set(indices)) != k:
            raise ProtocolError(f"EVAL_BATCH sets inputs {list(indices)}; it needs 1..255 distinct indices")
        (n,) = r.unpack("H", "image count")
        if n < 1:
            raise ProtocolError("EVAL_BATCH carries no image; it needs at least one")
        images = tuple(tuple(decode_tensor(r, f"EVAL_BATCH image {i} input {index}") for index in indices)
                       for i in range(n))
        r.done()
        return cls(tuple(indices), images, payload)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, EvalBatch) and self.indices == other.indices
                and len(self.images) == len(other.images)
                and all(len(a) == len(b) and all(same_tensor(x, y) for x, y in zip(a, b))
                        for a, b in zip(self.images, other.images)))


@register(MsgType.BATCH_RESULT)
@dataclass(frozen=True, eq=False)
class BatchResult(Message):
    """The answer to one EVAL_BATCH: the model that ran (SHA-256), the CRC-32 of the request payload it
    answers, one timing per image (`start_us` relative to the first image's trigger, as RUN N reports) and
    each image's outputs.

    Payload: 32 B model SHA-256, u32 request CRC-32, u32 N, N × timing (`<4d` µs), u8 m (outputs per
    image), then N × m tensors, image by image.
    """

    model_sha256: bytes
    request_crc32: int
    timings: tuple[StageTiming, ...]
    outputs: tuple[tuple[np.ndarray, ...], ...]  # per image, its m outputs

    def encode_payload(self) -> bytes:
        if len(self.outputs) != len(self.timings):
            raise ProtocolError(f"BATCH_RESULT has {len(self.timings)} timings and {len(self.outputs)} images' outputs")
        if not self.timings:  # what decode_payload refuses is never sent
            raise ProtocolError(f"BATCH_RESULT answers at least one image (an EVAL_BATCH carries >= 1), got "
                                f"{len(self.timings)}")
        m = len(self.outputs[0]) if self.outputs else 0
        if m > 0xFF or any(len(o) != m for o in self.outputs):
            raise ProtocolError("BATCH_RESULT: every image carries the same number (<= 255) of outputs")
        fields: list[bytes | memoryview] = [
            digest_field(self.model_sha256, "BATCH_RESULT model_sha256"),
            struct.pack("<II", self.request_crc32 & 0xFFFFFFFF, len(self.timings)),
            timing_fields(self.timings), struct.pack("<B", m)]
        for n, outputs in enumerate(self.outputs):
            for j, tensor in enumerate(outputs):
                fields += tensor_fields(tensor, f"BATCH_RESULT image {n} output {j}")
        return b"".join(fields)

    @classmethod
    def decode_payload(cls, payload: bytes) -> BatchResult:
        r = PayloadReader(payload, "BATCH_RESULT")
        model = r.take(32, "model_sha256")
        crc, n = r.unpack("II", "request CRC-32 and image count")
        if n < 1:
            raise ProtocolError("BATCH_RESULT reports no image; it answers at least one")
        timings = decode_timings(r, n)
        (m,) = r.unpack("B", "output count")
        outputs = tuple(tuple(decode_tensor(r, f"BATCH_RESULT image {i} output {j}") for j in range(m))
                        for i in range(n))
        r.done()
        return cls(model, crc, timings, outputs)

    @staticmethod
    def peek_request_crc32(payload: bytes) -> int | None:
        """The request CRC-32 of a BATCH_RESULT payload without decoding the rest (None if too short)."""
        return struct.unpack_from("<I", payload, 32)[0] if len(payload) >= 36 else None

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BatchResult) and self.model_sha256 == other.model_sha256
                and self.request_crc32 == other.request_crc32 and self.timings == other.timings
                and len(self.outputs) == len(other.outputs)
                and all(len(a) == len(b) and all(same_tensor(x, y) for x, y in zip(a, b))
                        for a, b in zip(self.outputs, other.outputs)))
