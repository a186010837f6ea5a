"""A board written from docs/protocol.md alone, as a partner lab's firmware author would: a pty whose
device side speaks protocol version 2 (COBS frames, CRC-32, reply cache, HELLO, LOAD_*, SELECT_MODEL,
SET_INPUT, RUN, RESET, EVAL, EVAL_BATCH) and runs the uploaded .tflite with LiteRT, as a board's own
interpreter would. It answers HELLO as a board (a registered kind), not as a twin.

Tests bend it into a plausible buggy firmware through its knobs (`capabilities`, `timing_scale`,
`mutate`, `split_writes`) and check what the host makes of the replies. Run as a module it serves until
killed and prints the port: `python -m tests.firmware_board coral`.
"""

from __future__ import annotations

import hashlib
import os
import queue
import select
import struct
import sys
import threading
import time
import tty
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cobs import cobs

VERSION = 2
HEADER = struct.Struct("<BBHI")
DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.int32, 5: np.float16, 6: np.float32}
CODES = {np.dtype(v): k for k, v in DTYPES.items()}
(HELLO, LOAD_BEGIN, LOAD_CHUNK, LOAD_END, SELECT_MODEL, SET_INPUT, RUN, RESET, EVAL, EVAL_BATCH) = range(1, 11)
ENERGY_READ = 0x0C
ACK, HELLO_REPLY, RESULT, BATCH_RESULT, ENERGY_COUNTERS, ERROR = 0x80, 0x81, 0x87, 0x8A, 0x8C, 0xFF
BOARD_POWER_W = 2.0  # what the board's (simulated) energy counter accumulates: µJ = W × µs
BAD_PAYLOAD, NO_MODEL, HASH_MISMATCH, BAD_INPUT = 2, 3, 5, 6


class Refused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def frame(seq: int, mtype: int, payload: bytes, version: int = VERSION) -> bytes:
    header = HEADER.pack(version, mtype, seq & 0xFFFF, len(payload))
    crc = struct.pack("<I", zlib.crc32(header + payload))
    return cobs.encode(header + payload + crc) + b"\x00"


def pack_str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<H", len(raw)) + raw


def pack_tensor(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    head = struct.pack("<BB", CODES[array.dtype], array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape)
    return head + array.astype(array.dtype.newbyteorder("<")).tobytes()


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Refused(BAD_PAYLOAD, "payload too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def tensor(self) -> np.ndarray:
        code, ndim = self.unpack("BB")
        if code not in DTYPES or ndim > 8:
            raise Refused(BAD_PAYLOAD, f"tensor dtype {code} ndim {ndim}")
        dims = self.unpack(f"{ndim}I")
        dtype = np.dtype(DTYPES[code]).newbyteorder("<")
        return np.frombuffer(self.take(int(np.prod(dims)) * dtype.itemsize), dtype=dtype).reshape(dims)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise Refused(BAD_PAYLOAD, "bytes left over")


Reply = tuple[int, bytes]  # (type, payload)


@dataclass
class FirmwareBoard:
    """The device side. Knobs a test may set before or while the host talks to it:
    `capabilities` (HELLO's list), `timing_scale` (1.0: µs as documented; 1e-3: a firmware that sends ms),
    `mutate(request_type, seq, reply) -> list of (seq, reply)` (rewrites or adds replies), `split_writes`
    (write each frame in this many pieces with `split_pause_s` between them)."""

    kind: str = "coral"
    capabilities: list[str] = field(default_factory=lambda: ["eval", "pipeline=2", "batch=4"])
    timing_scale: float = 1.0
    mutate: Callable[[int, int, Reply], list[tuple[int, Reply]]] | None = None
    split_writes: int = 1
    split_pause_s: float = 0.0
    cache_depth: int = 2
    busy_s: float = 0.0  # extra time each request takes to execute (a slow MCU)
    counter_time_scale: float = 1.0  # ENERGY_READ's start_us/end_us: 1.0 µs as documented; 1e-3 a ms clock
    models: dict[bytes, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[tuple[int, int]] = field(default_factory=list)  # (seq, type) of each good frame

    def __post_init__(self) -> None:
        self.active: bytes | None = None
        self.interp: Any = None  # a LiteRT Interpreter once a model is active
        self.upload: tuple[int, bytes, str, bytearray] | None = None
        self.window: tuple[int, int, int] = (0, 0, 0)  # the last RUN's (count, start µs, end µs), board clock
        self.latest_seq = -1  # the seq of the newest frame received (a bug may stamp replies with it)
        self.cache: OrderedDict[tuple[int, int, bytes], list[tuple[int, Reply]]] = OrderedDict()

    # ---------------------------------------------------------------- messages
    def handle(self, mtype: int, payload: bytes) -> Reply:
        r = Reader(payload)
        if mtype == HELLO:
            caps = bytes([len(self.capabilities)]) + b"".join(pack_str(c) for c in self.capabilities)
            body = b"".join(pack_str(s) for s in (self.kind, "fw-board-1", "scripted-fw 0.1", "SN0001"))
            return HELLO_REPLY, bytes([VERSION]) + body + struct.pack("<QQ", 64 << 20, 128 << 20) + caps
        if mtype == LOAD_BEGIN:
            (size,) = r.unpack("I")
            sha = r.take(32)
            (n,) = r.unpack("H")
            name = r.take(n).decode()
            r.end()
            self.upload = (size, sha, name, bytearray())
            return ACK, bytes([mtype])
        if mtype == LOAD_CHUNK:
            (offset,) = r.unpack("I")
            if self.upload is None or offset != len(self.upload[3]):
                raise Refused(BAD_PAYLOAD, f"chunk at {offset} out of order")
            self.upload[3].extend(payload[4:])
            return ACK, bytes([mtype])
        if mtype == LOAD_END:
            sha = r.take(32)
            r.end()
            if self.upload is None:
                raise Refused(BAD_PAYLOAD, "LOAD_END without LOAD_BEGIN")
            size, want, name, data = self.upload
            self.upload = None
            if len(data) != size or hashlib.sha256(data).digest() != want or sha != want:
                raise Refused(HASH_MISMATCH, "size or sha256 wrong")
            self.models[want] = (name, bytes(data))
            self.activate(want)
            return ACK, bytes([mtype])
        if mtype == SELECT_MODEL:
            sha = r.take(32)
            r.end()
            if sha not in self.models:
                raise Refused(NO_MODEL, "model not held")
            self.activate(sha)
            return ACK, bytes([mtype])
        if mtype == RESET:
            return ACK, bytes([mtype])
        if mtype == SET_INPUT:
            (index,) = r.unpack("H")
            tensor = r.tensor()
            r.end()
            self.set_input(index, tensor)
            return ACK, bytes([mtype])
        if mtype == RUN:
            (count,) = r.unpack("I")
            r.end()
            start_us = time.monotonic_ns() // 1000
            body = self.result(count)
            self.window = (count, start_us, time.monotonic_ns() // 1000)
            return RESULT, body
        if mtype == ENERGY_READ:
            r.end()
            return ENERGY_COUNTERS, self.energy_counters()
        if mtype == EVAL:
            (n,) = r.unpack("B")
            pairs = [(r.unpack("H")[0], r.tensor()) for _ in range(n)]
            r.end()
            for index, tensor in pairs:
                self.set_input(index, tensor)
            return RESULT, self.result(1)
        if mtype == EVAL_BATCH:
            return BATCH_RESULT, self.batch(payload, r)
        return ERROR, bytes([1]) + pack_str(f"type {mtype} not implemented")

    def activate(self, sha: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_content=self.models[sha][1])
        self.interp.allocate_tensors()
        self.active = sha

    def set_input(self, index: int, tensor: np.ndarray) -> None:
        if self.interp is None:
            raise Refused(NO_MODEL, "no active model")
        details = self.interp.get_input_details()
        if index >= len(details):
            raise Refused(BAD_INPUT, f"input {index} out of range")
        d = details[index]
        if tuple(d["shape"]) != tensor.shape or np.dtype(d["dtype"]) != tensor.dtype.newbyteorder("="):
            raise Refused(BAD_INPUT, f"input {index}: {tensor.dtype}{tensor.shape} != {d['dtype']}{d['shape']}")
        self.interp.set_tensor(d["index"], tensor.astype(tensor.dtype.newbyteorder("=")))

    def infer(self, count: int) -> tuple[list[tuple[float, float, float, float]], list[np.ndarray]]:
        if self.interp is None:
            raise Refused(NO_MODEL, "no active model")
        timings, t0, outputs = [], None, []
        for _ in range(count):
            a = time.perf_counter()
            t0 = a if t0 is None else t0
            b = time.perf_counter()  # no sensor: readout is the trigger-to-start gap
            self.interp.invoke()
            c = time.perf_counter()
            outputs = [self.interp.get_tensor(d["index"]).copy() for d in self.interp.get_output_details()]
            e = time.perf_counter()
            s = self.timing_scale * 1e6
            timings.append(((a - t0) * s, (b - a) * s, (c - b) * s, (e - c) * s))
        return timings, outputs

    def result(self, count: int) -> bytes:
        timings, outputs = self.infer(count)
        assert self.active is not None
        body = self.active + struct.pack("<I", len(timings)) + b"".join(struct.pack("<4d", *t) for t in timings)
        return body + bytes([len(outputs)]) + b"".join(pack_tensor(o) for o in outputs)

    def energy_counters(self) -> bytes:
        """One counter read from a read-only energy accumulator (method 0): µJ = BOARD_POWER_W × board µs."""
        count, start_us, end_us = self.window
        if count == 0:
            return struct.pack("<IB", 0, 0)
        stamp = [round(t * self.counter_time_scale) for t in (start_us, end_us)]
        counter = pack_str("board:vdd") + pack_str("board VDD counter") + struct.pack("<Bdd", 0, 1.0, 1000.0)
        counter += struct.pack("<QQQQ", round(BOARD_POWER_W * start_us), stamp[0], round(BOARD_POWER_W * end_us),
                               stamp[1])
        return struct.pack("<IB", count, 1) + counter + pack_str("")

    def batch(self, payload: bytes, r: Reader) -> bytes:
        (k,) = r.unpack("B")
        indices = r.unpack(f"{k}H")
        (n,) = r.unpack("H")
        images = [[r.tensor() for _ in range(k)] for _ in range(n)]
        r.end()
        timings, outs, t0 = [], [], None
        for image in images:
            for index, tensor in zip(indices, image, strict=True):
                self.set_input(index, tensor)
            t, o = self.infer(1)
            now = time.perf_counter() * 1e6 * self.timing_scale
            t0 = now if t0 is None else t0
            timings.append((now - t0, *t[0][1:]))
            outs.append(o)
        assert self.active is not None
        body = self.active + struct.pack("<II", zlib.crc32(payload), n)
        body += b"".join(struct.pack("<4d", *t) for t in timings) + bytes([len(outs[0]) if outs else 0])
        return body + b"".join(pack_tensor(o) for image in outs for o in image)

    # ---------------------------------------------------------------- line
    def on_frame(self, raw: bytes) -> list[bytes]:
        try:
            packet = cobs.decode(raw)
        except cobs.DecodeError:
            return []
        if len(packet) < 12 or zlib.crc32(packet[:-4]) != struct.unpack("<I", packet[-4:])[0]:
            return []
        version, mtype, seq, length = HEADER.unpack(packet[:8])
        payload = packet[8:-4]
        if length != len(payload):
            return []
        self.requests.append((seq, mtype))
        self.last_payload = payload
        key = (seq, mtype, payload)
        if key in self.cache:
            return [frame(s, *rep) for s, rep in self.cache[key]]
        if version != VERSION and mtype != HELLO:
            replies = [(seq, (ERROR, bytes([BAD_PAYLOAD]) + pack_str(f"version {version}")))]
        else:
            try:
                reply = self.handle(mtype, payload)
            except Refused as e:
                reply = (ERROR, bytes([e.code]) + pack_str(str(e)))
            replies = [(seq, reply)] if self.mutate is None else self.mutate(mtype, seq, reply)
        self.cache[key] = replies
        while len(self.cache) > self.cache_depth:
            self.cache.popitem(last=False)
        return [frame(s, *rep) for s, rep in replies]

    def serve(self, master: int, stop: threading.Event) -> None:
        """Two tasks, as dual-task firmware has: this one receives frames (and goes on receiving while the
        inference task runs), the other executes them in arrival order and writes the replies."""
        frames: queue.Queue[bytes | None] = queue.Queue()
        worker = threading.Thread(target=self._execute, args=(master, frames), daemon=True)
        worker.start()
        buf = b""
        while not stop.is_set():
            if not select.select([master], [], [], 0.05)[0]:
                continue
            try:
                buf += os.read(master, 65536)
            except OSError:
                time.sleep(0.05)  # no reader on the slave side yet
                continue
            *complete, buf = buf.split(b"\x00")
            for raw in complete:
                try:  # the RX task sees each frame's seq as it arrives
                    self.latest_seq = HEADER.unpack_from(cobs.decode(raw))[2]
                except (cobs.DecodeError, struct.error):
                    pass
                frames.put(raw)
        frames.put(None)
        worker.join(timeout=5)

    def _execute(self, master: int, frames: queue.Queue[bytes | None]) -> None:
        while (raw := frames.get()) is not None:
            time.sleep(self.busy_s)
            for out in self.on_frame(raw) if raw else []:
                self.write(master, out)

    def write(self, master: int, data: bytes) -> None:
        step = max(1, -(-len(data) // self.split_writes))
        for i in range(0, len(data), step):
            if i:
                time.sleep(self.split_pause_s)
            view = memoryview(data[i : i + step])
            while view:
                view = view[os.write(master, view) :]

    def start(self) -> str:
        """Serve on a fresh raw pty (thread); returns the port path. `stop()` ends it."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.serve, args=(self._master, self._stop), daemon=True)
        self._thread.start()
        self.port = os.ttyname(self._slave)
        return self.port

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)


if __name__ == "__main__":
    board = FirmwareBoard(kind=sys.argv[1] if len(sys.argv) > 1 else "coral")
    if len(sys.argv) > 2:
        board.timing_scale = float(sys.argv[2])
    print(board.start(), flush=True)
    threading.Event().wait()
