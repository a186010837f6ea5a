"""The host ↔ device wire protocol: the message dataclasses and their payload codecs.

Codec only, no I/O: the host client (`client.py`), the pty serving link (`pty_link.py`) and the device
twins all import this one module, so the two ends cannot drift apart. Framing (COBS, header, CRC,
streaming decoder) is in `framing.py`, field codecs (strings, digests, tensors) in `payload.py`;
both are re-exported here. `docs/protocol.md` is the specification a
firmware author implements; these two modules are its reference implementation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from pytest_edgehil.errors import ProtocolError

# Optional message types live in their own modules; imported here so MESSAGE_TYPES always holds them.
from pytest_edgehil.link.batch_messages import (
    BATCH_CAPABILITY,
    BatchResult,
    EvalBatch,
    batch_size,
    payload_crc32,
)
from pytest_edgehil.link.energy_messages import CounterWindow, EnergyCounters, EnergyRead
from pytest_edgehil.link.framing import (
    CRC,
    HEADER,
    MAX_ENCODED,
    MAX_PACKET,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    MsgType,
    cobs_decode,
    cobs_encode,
    decode_frame,
    type_name,
)
from pytest_edgehil.link.message_base import MESSAGE_TYPES, Message, register
from pytest_edgehil.link.payload import (
    DTYPE_CODES,
    TIMING_BYTES,
    PayloadReader,
    StageTiming,
    decode_tensor,
    decode_timings,
    digest_field,
    encode_tensor,
    same_tensor,
    string_field,
    tensor_fields,
    timing_fields,
)

__all__ = [
    "BATCH_CAPABILITY", "CRC", "DTYPE_CODES", "EVAL_CAPABILITY", "HEADER", "MAX_ENCODED", "MAX_PACKET",
    "MAX_PAYLOAD", "MESSAGE_TYPES", "PIPELINE_CAPABILITY", "PROTOCOL_VERSION", "SIMULATED_CAPABILITY", "Ack", "BatchResult",
    "CounterWindow", "EnergyCounters", "EnergyRead", "Error", "ErrorCode", "Eval", "EvalBatch", "Frame",
    "FrameDecoder", "Hello", "HelloReply", "LoadBegin", "LoadChunk", "LoadEnd", "Message", "MsgType", "Reset",
    "Result", "Run", "SelectModel", "SetInput", "StageTiming", "batch_size", "cobs_decode", "cobs_encode",
    "decode_frame", "decode_tensor", "encode_message", "encode_tensor", "payload_crc32", "pipeline_depth",
    "register", "type_name",
]


# -- messages ---------------------------------------------------------------------------------------------
class ErrorCode(IntEnum):
    UNKNOWN_MESSAGE = 1
    BAD_PAYLOAD = 2
    NO_MODEL = 3
    MODEL_TOO_LARGE = 4
    HASH_MISMATCH = 5
    BAD_INPUT = 6
    BUSY = 7
    INTERNAL = 8
    UNSUPPORTED = 9  # the board cannot do this as asked (a model its hardware cannot run, a reply over one frame)


def _empty(cls_name: str, payload: bytes) -> None:
    PayloadReader(payload, cls_name).done()


@register(MsgType.HELLO)
@dataclass(frozen=True)
class Hello(Message):
    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> Hello:
        # HELLO is empty in every version, so trailing bytes from a newer host are tolerated.
        return cls()


@register(MsgType.HELLO_REPLY)
@dataclass(frozen=True)
class HelloReply(Message):
    device_kind: str
    device_name: str
    firmware: str
    protocol_version: int
    capabilities: tuple[str, ...]
    ram_bytes: int
    flash_bytes: int
    serial_number: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "capabilities", tuple(self.capabilities))

    def encode_payload(self) -> bytes:
        # The version byte comes first in every protocol version: a host can always read it.
        out = struct.pack("<B", self.protocol_version)
        for field in (self.device_kind, self.device_name, self.firmware, self.serial_number):
            out += string_field(field, "HELLO_REPLY string")
        out += struct.pack("<QQB", self.ram_bytes, self.flash_bytes, len(self.capabilities))
        return out + b"".join(string_field(c, "capability") for c in self.capabilities)

    @classmethod
    def decode_payload(cls, payload: bytes) -> HelloReply:
        r = PayloadReader(payload, "HELLO_REPLY")
        (version,) = r.unpack("B", "protocol_version")
        kind, name, firmware, serial = (r.string(f) for f in ("device_kind", "device_name", "firmware",
                                                              "serial_number"))
        ram, flash, n_caps = r.unpack("QQB", "ram/flash/capability count")
        caps = tuple(r.string("capability") for _ in range(n_caps))
        r.done()
        return cls(kind, name, firmware, version, caps, ram, flash, serial)


@register(MsgType.LOAD_BEGIN)
@dataclass(frozen=True)
class LoadBegin(Message):
    size_bytes: int
    sha256: bytes
    name: str

    def encode_payload(self) -> bytes:
        return struct.pack("<I", self.size_bytes) + digest_field(self.sha256, "LOAD_BEGIN") + string_field(self.name, "name")

    @classmethod
    def decode_payload(cls, payload: bytes) -> LoadBegin:
        r = PayloadReader(payload, "LOAD_BEGIN")
        (size,), digest, name = r.unpack("I", "size_bytes"), r.take(32, "sha256"), r.string("name")
        r.done()
        return cls(size, digest, name)


@register(MsgType.LOAD_CHUNK)
@dataclass(frozen=True)
class LoadChunk(Message):
    offset: int
    data: bytes

    def encode_payload(self) -> bytes:
        return struct.pack("<I", self.offset) + bytes(self.data)

    @classmethod
    def decode_payload(cls, payload: bytes) -> LoadChunk:
        r = PayloadReader(payload, "LOAD_CHUNK")
        (offset,) = r.unpack("I", "offset")
        return cls(offset, r.rest())


@register(MsgType.LOAD_END)
@dataclass(frozen=True)
class LoadEnd(Message):
    sha256: bytes

    def encode_payload(self) -> bytes:
        return digest_field(self.sha256, "LOAD_END")

    @classmethod
    def decode_payload(cls, payload: bytes) -> LoadEnd:
        return cls(digest_field(payload, "LOAD_END"))


@register(MsgType.SELECT_MODEL)
@dataclass(frozen=True)
class SelectModel(Message):
    sha256: bytes

    def encode_payload(self) -> bytes:
        return digest_field(self.sha256, "SELECT_MODEL")

    @classmethod
    def decode_payload(cls, payload: bytes) -> SelectModel:
        return cls(digest_field(payload, "SELECT_MODEL"))


@register(MsgType.SET_INPUT)
@dataclass(frozen=True, eq=False)
class SetInput(Message):
    index: int
    tensor: np.ndarray

    def encode_payload(self) -> bytes:
        return b"".join((struct.pack("<H", self.index), *tensor_fields(self.tensor, f"SET_INPUT {self.index}")))

    @classmethod
    def decode_payload(cls, payload: bytes) -> SetInput:
        r = PayloadReader(payload, "SET_INPUT")
        (index,) = r.unpack("H", "index")
        tensor = decode_tensor(r, "SET_INPUT tensor")
        r.done()
        return cls(index, tensor)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SetInput) and self.index == other.index and same_tensor(self.tensor, other.tensor)


@register(MsgType.RUN)
@dataclass(frozen=True)
class Run(Message):
    count: int

    def encode_payload(self) -> bytes:
        return struct.pack("<I", self.count)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Run:
        r = PayloadReader(payload, "RUN")
        (count,) = r.unpack("I", "count")
        r.done()
        return cls(count)


# The most inferences one RUN should ask for: their stage times fill at most half a RESULT frame, the
# other half left to the outputs of the RUN's last inference, which come with them. A RUN of more could
# never be answered (a RESULT over MAX_PAYLOAD). Latency runs beyond it are split; an energy window is
# capped at it (measure/meter.py).
TIMINGS_PER_RUN = MAX_PAYLOAD // 2 // TIMING_BYTES


@register(MsgType.RESULT)
@dataclass(frozen=True, eq=False)
class Result(Message):
    """Timings of every inference of a RUN and the outputs of its last inference.

    `model_sha256` (32 bytes, since protocol version 2) is the SHA-256 of the model the device actually
    ran: the host compares it with the model it selected, so a model swapped between RUNs (by another
    program on the port, a reboot into a default model) is refused rather than measured.
    """

    timings: tuple[StageTiming, ...]
    outputs: tuple[np.ndarray, ...]
    model_sha256: bytes

    def encode_payload(self) -> bytes:
        out = digest_field(self.model_sha256, "RESULT model_sha256") + struct.pack("<I", len(self.timings))
        out += timing_fields(self.timings)
        out += struct.pack("<B", len(self.outputs))
        return b"".join([out, *(field for i, o in enumerate(self.outputs)
                                for field in tensor_fields(o, f"RESULT output {i}"))])

    @classmethod
    def decode_payload(cls, payload: bytes) -> Result:
        r = PayloadReader(payload, "RESULT")
        model = r.take(32, "model_sha256")
        (n,) = r.unpack("I", "timing count")
        timings = decode_timings(r, n)
        (n_out,) = r.unpack("B", "output count")
        outputs = tuple(decode_tensor(r, f"RESULT output {i}") for i in range(n_out))
        r.done()
        return cls(timings, outputs, model)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Result) and self.timings == other.timings
                and self.model_sha256 == other.model_sha256
                and len(self.outputs) == len(other.outputs)
                and all(same_tensor(a, b) for a, b in zip(self.outputs, other.outputs)))


# HELLO_REPLY capabilities of a device that serves EVAL, and how many requests it takes in flight:
# "eval" and "pipeline=N" (N >= 1; N requests buffered means N input buffers and N cached replies).
EVAL_CAPABILITY = "eval"
PIPELINE_CAPABILITY = "pipeline="
# A twin's HELLO_REPLY capability: its stage timings are simulated, not taken on a clock while it ran.
SIMULATED_CAPABILITY = "simulated"


def pipeline_depth(capabilities: tuple[str, ...]) -> int:
    """Requests a device takes in flight, from its HELLO_REPLY capabilities: 0 without `eval` (use
    SET_INPUT + RUN), else N of `pipeline=N` (1 if absent). ProtocolError for a malformed depth."""
    if EVAL_CAPABILITY not in capabilities:
        return 0
    for cap in capabilities:
        if cap.startswith(PIPELINE_CAPABILITY):
            text = cap[len(PIPELINE_CAPABILITY):]
            if not (text.isascii() and text.isdigit()) or int(text) < 1:  # not '²' (isdigit, not int)
                raise ProtocolError(f"HELLO_REPLY capability {cap!r}: the depth must be an integer >= 1")
            return int(text)
    return 1


@register(MsgType.EVAL)
@dataclass(frozen=True, eq=False)
class Eval(Message):
    """Set inputs and run one inference: SET_INPUT for each (index, tensor), then RUN 1, as one request.

    Answered with the RESULT a RUN 1 gives (one timing, the outputs). Carries at least one input; the
    inputs not carried keep what an earlier SET_INPUT or EVAL set.
    """

    inputs: tuple[tuple[int, np.ndarray], ...]

    def encode_payload(self) -> bytes:
        if not 1 <= len(self.inputs) <= 0xFF:
            raise ProtocolError(f"EVAL carries 1..255 inputs, got {len(self.inputs)}")
        fields: list[bytes | memoryview] = [struct.pack("<B", len(self.inputs))]
        for index, tensor in self.inputs:  # joined once: each tensor's data is copied into the payload once
            fields.append(struct.pack("<H", index))
            fields += tensor_fields(tensor, f"EVAL input {index}")
        return b"".join(fields)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Eval:
        r = PayloadReader(payload, "EVAL")
        (n,) = r.unpack("B", "input count")
        if n < 1:
            raise ProtocolError("EVAL payload carries no input; it needs at least one")
        inputs = []
        for i in range(n):
            (index,) = r.unpack("H", f"input {i} index")
            inputs.append((index, decode_tensor(r, f"EVAL input {index}")))
        r.done()
        return cls(tuple(inputs))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Eval) and len(self.inputs) == len(other.inputs)
                and all(a[0] == b[0] and same_tensor(a[1], b[1]) for a, b in zip(self.inputs, other.inputs)))


@register(MsgType.RESET)
@dataclass(frozen=True)
class Reset(Message):
    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, payload: bytes) -> Reset:
        _empty("RESET", payload)
        return cls()


@register(MsgType.ACK)
@dataclass(frozen=True)
class Ack(Message):
    of_type: int  # the request type being acknowledged

    def encode_payload(self) -> bytes:
        return struct.pack("<B", self.of_type)

    @classmethod
    def decode_payload(cls, payload: bytes) -> Ack:
        r = PayloadReader(payload, "ACK")
        (of_type,) = r.unpack("B", "of_type")
        r.done()
        return cls(MsgType(of_type) if of_type in MsgType._value2member_map_ else of_type)


@register(MsgType.ERROR)
@dataclass(frozen=True)
class Error(Message):
    code: int
    text: str

    def encode_payload(self) -> bytes:
        return struct.pack("<B", self.code) + string_field(self.text, "ERROR text")

    @classmethod
    def decode_payload(cls, payload: bytes) -> Error:
        r = PayloadReader(payload, "ERROR")
        (code,), text = r.unpack("B", "code"), r.string("text")
        r.done()
        return cls(ErrorCode(code) if code in ErrorCode._value2member_map_ else code, text)

    @property
    def code_name(self) -> str:
        return ErrorCode(self.code).name if self.code in ErrorCode._value2member_map_ else f"code {self.code}"


def encode_message(msg: Message, seq: int, *, version: int = PROTOCOL_VERSION) -> bytes:
    """A message as wire bytes (frame + delimiter) with the given sequence number."""
    return Frame(version, msg.msg_type, seq, msg.encode_payload()).encode()
