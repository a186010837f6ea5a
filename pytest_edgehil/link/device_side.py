"""What the device side of the protocol shares, whichever program plays it (`edgehil agent` on a Linux
board, the device twins): a request it refuses becomes an ERROR frame with a code, and the device stays up;
a model upload is checked the same way on both, and both size EVAL_BATCH (`batch=N`) from their RAM alike."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pytest_edgehil.link.messages import MAX_PAYLOAD, TIMING_BYTES, ErrorCode, LoadBegin, LoadChunk, LoadEnd

if TYPE_CHECKING:
    from pytest_edgehil.model.runtime import ModelRunner

# EVAL_BATCH sizing: a board keeps a quarter of its RAM for the requests it buffers (`pipeline=` of them),
# each image counted at 32 KiB (HELLO comes before any model, so the real input size is not known yet).
BATCH_RAM_SHARE = 4
BATCH_IMAGE_BYTES = 32 * 1024
MAX_BATCH_IMAGES = 16


def batch_images(ram_bytes: int, buffered_requests: int) -> int:
    """Images per EVAL_BATCH (HELLO `batch=N`) a device with `ram_bytes` of RAM offers when it buffers
    `buffered_requests` requests (its `pipeline=` depth, >= 1): with 3, 1 on a Cortex-M4 class board
    (192 KiB), 4 on the Spresense (1.5 MiB), 16 on the IMX500 (8 MiB) and larger; at least 1 (also when
    the RAM is unknown, 0)."""
    per_request = ram_bytes // BATCH_RAM_SHARE // max(1, buffered_requests)
    return max(1, min(MAX_BATCH_IMAGES, per_request // BATCH_IMAGE_BYTES))


def check_batch(images: int, offered: int) -> None:
    """DeviceRefusal (BAD_PAYLOAD) for an EVAL_BATCH of more `images` than the device offered in HELLO."""
    if images > offered:
        raise DeviceRefusal(ErrorCode.BAD_PAYLOAD, f"EVAL_BATCH of {images} images; this device takes {offered} "
                                                   f"per request (HELLO batch={offered})")


def check_result_fits(count: int, outputs: Sequence[np.ndarray]) -> None:
    """DeviceRefusal unless a RESULT of `count` stage timings and these `outputs` fits one frame (MAX_PAYLOAD,
    docs/protocol.md: model_sha256, count u32, count timings, output count u8, each output's dtype u8, ndim
    u8, dims u32 each and elements). Checked before the RUN runs, as firmware sizes its reply buffer: a RUN
    it could never answer is not run. UNSUPPORTED when fewer inferences would fit (the text says how many),
    MODEL_TOO_LARGE when the outputs alone do not."""
    data_bytes = sum(o.nbytes for o in outputs)
    room = (MAX_PAYLOAD - 32 - 4 - 1 - data_bytes - sum(2 + 4 * o.ndim for o in outputs)) // TIMING_BYTES
    if room < 1:
        raise DeviceRefusal(ErrorCode.MODEL_TOO_LARGE,
                            f"the model's outputs ({data_bytes:,} bytes: "
                            f"{[list(o.shape) for o in outputs]}) do not fit one RESULT frame of {MAX_PAYLOAD:,} "
                            "bytes; measure a model with smaller outputs")
    if count > room:
        raise DeviceRefusal(ErrorCode.UNSUPPORTED,
                            f"RUN {count:,}: one RESULT frame ({MAX_PAYLOAD:,} bytes) carries the stage times of at "
                            f"most {room:,} inferences beside this model's outputs; split it into RUNs of at most "
                            f"{room:,}")


def checked_input(runner: ModelRunner, index: int, tensor: np.ndarray) -> np.ndarray:
    """`tensor` as input `index` of `runner`'s model takes it (SET_INPUT, EVAL, EVAL_BATCH alike), as an
    array. DeviceRefusal (BAD_INPUT) for an index the model lacks, another dtype, or a shape its signature
    does not take (-1: any size >= 1)."""
    specs = runner.inputs
    if not 0 <= index < len(specs):
        raise DeviceRefusal(ErrorCode.BAD_INPUT, f"input index {index}; the model has {len(specs)}")
    array, spec = np.asarray(tensor), specs[index]
    shape, signature = tuple(array.shape), runner.input_signatures[index]
    # The shape the runner has now always fits its signature: only another shape needs the check.
    if array.dtype != spec.dtype or (shape != tuple(spec.shape) and not _fits(shape, signature)):
        raise DeviceRefusal(ErrorCode.BAD_INPUT, f"input {index} is {array.dtype}{list(shape)}, the model expects "
                                                 f"{np.dtype(spec.dtype)}{list(signature)} (-1: any size)")
    return array


def _fits(shape: tuple[int, ...], signature: tuple[int, ...]) -> bool:
    """Whether a fed shape fits an input's shape_signature (-1: any size >= 1)."""
    return len(shape) == len(signature) and all((s < 0 and d >= 1) or d == s for d, s in zip(shape, signature))


class DeviceRefusal(Exception):
    """Raised by a device-side request handler; the server answers ERROR(`code`, text) instead of a reply."""

    def __init__(self, code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class ModelUpload:
    """A model arriving in LOAD_BEGIN / LOAD_CHUNK* / LOAD_END, checked as it comes: chunks in order and
    within the announced size, the whole matching both announced SHA-256 digests (DeviceRefusal otherwise)."""

    size_bytes: int
    sha256: bytes
    name: str
    data: bytearray = field(default_factory=bytearray)

    @classmethod
    def begin(cls, msg: LoadBegin, capacity_bytes: int, capacity: str) -> ModelUpload:
        """`capacity` says what holds models, for the refusal: "flash holds", "this agent keeps at most"."""
        if msg.size_bytes > capacity_bytes:
            raise DeviceRefusal(ErrorCode.MODEL_TOO_LARGE, f"model {msg.name!r} is {msg.size_bytes} bytes but "
                                                           f"{capacity} {capacity_bytes} bytes")
        return cls(msg.size_bytes, bytes(msg.sha256), msg.name)

    def add(self, msg: LoadChunk) -> None:
        if msg.offset != len(self.data):
            raise DeviceRefusal(ErrorCode.BAD_PAYLOAD, f"chunk at offset {msg.offset}, expected {len(self.data)}")
        if len(self.data) + len(msg.data) > self.size_bytes:
            raise DeviceRefusal(ErrorCode.BAD_PAYLOAD, "chunks exceed the size announced in LOAD_BEGIN")
        self.data += msg.data

    def finish(self, msg: LoadEnd) -> tuple[bytes, bytes]:
        """(model bytes, their SHA-256) once complete and matching."""
        digest = hashlib.sha256(self.data).digest()
        if digest != bytes(msg.sha256) or digest != self.sha256 or len(self.data) != self.size_bytes:
            raise DeviceRefusal(ErrorCode.HASH_MISMATCH,
                                f"model {self.name!r}: received {len(self.data)} bytes with SHA-256 "
                                f"{digest.hex()[:16]}…, expected {self.size_bytes} bytes {self.sha256.hex()[:16]}…; "
                                "resend the model")
        return bytes(self.data), digest


def require_upload(upload: ModelUpload | None) -> ModelUpload:
    if upload is None:
        raise DeviceRefusal(ErrorCode.BAD_PAYLOAD, "LOAD_CHUNK/LOAD_END without LOAD_BEGIN")
    return upload
