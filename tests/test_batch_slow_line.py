"""Batched evaluation over a slow line: a BATCH_RESULT carries N images' outputs, so on a UART (a Spresense's
115200 baud: 11.5 KB/s) it takes N times one image's reply time on the wire. The host must allow for that
while the reply's bytes arrive, as it allows for N inferences: else a set-up that works one image per
request times out mid-reply with batching, the request sent again and again (each replay holding the line
as long) until the evaluation fails with "never a complete frame" or a SequenceMismatch.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.framing import Frame, FrameDecoder
from pytest_edgehil.link.pipeline import evaluate

from .raw_pty import serving_pty

PIECE_S = 0.05  # the firmware reads and writes the line in pieces of this long


@contextmanager
def slow_line_firmware(batch: int, baud: int, output_bytes: int) -> Iterator[str]:
    """A firmware serving EVAL and EVAL_BATCH (pipeline=1, `batch=` images) that reads requests and writes
    replies at `baud` (8N1: ten bits a byte), as a UART does: each image's output is `output_bytes` of its
    input's sum (mod 256)."""
    line_bytes_s = baud / 10
    piece = int(line_bytes_s * PIECE_S)
    caps = (p.EVAL_CAPABILITY, "pipeline=1", f"{p.BATCH_CAPABILITY}{batch}")

    def output(tensor: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.full(output_bytes, int(tensor.astype(np.int64).sum()) % 256, np.uint8),)

    def answer(frame: Frame) -> p.Message:
        message = frame.message()
        if isinstance(message, p.Hello):
            return p.HelloReply("slow", "u0", "t", p.PROTOCOL_VERSION, caps, 1, 1, "U-1")
        timing = p.StageTiming(0.0, 10.0, 100.0, 10.0)
        if isinstance(message, p.Eval):
            return p.Result((timing,), output(message.inputs[0][1]), bytes(32))
        assert isinstance(message, p.EvalBatch)
        timings = tuple(p.StageTiming(120.0 * i, 10.0, 100.0, 10.0) for i in range(len(message.images)))
        return p.BatchResult(bytes(32), message.payload_crc32, timings,
                             tuple(output(tensors[0]) for tensors in message.images))

    def serve(master: int, stop: threading.Event) -> None:
        decoder = FrameDecoder()
        answered: dict[int, bytes] = {}
        while not stop.is_set():
            if not select.select([master], [], [], 0.05)[0]:
                continue
            data = os.read(master, piece)
            time.sleep(len(data) / line_bytes_s)
            for frame in decoder.feed(data):
                if not isinstance(frame, Frame):
                    continue
                wire = answered.get(frame.seq) or p.encode_message(answer(frame), frame.seq)
                answered[frame.seq] = wire  # a retransmission is answered again, not run again
                for start in range(0, len(wire), piece):
                    if stop.is_set():
                        return
                    os.write(master, wire[start:start + piece])
                    time.sleep(len(wire[start:start + piece]) / line_bytes_s)

    with serving_pty(serve) as port:
        yield port


def test_a_batch_reply_that_takes_longer_than_the_timeout_on_the_line_is_waited_for():
    # 4 KiB per image at 115200 baud: 0.36 s on the line; 4 images 1.4 s, past the 1 s link timeout.
    rng = np.random.default_rng(2)
    data = [rng.integers(-128, 128, size=16, dtype=np.int8) for _ in range(7)]  # requests of 1, 2, 4 images
    with slow_line_firmware(batch=4, baud=115200, output_bytes=4096) as port, \
            DeviceClient(port, name="uart-board", baudrate=115200, timeout_s=1.0, retries=1) as client:
        client.run_wait.expect(1e-4, "the scripted device")
        results = evaluate(client, ((x,) for x in data), depth=1, batch=4)
        assert client.stats.retransmissions == 0  # no reply still arriving was asked for again
    assert [int(r.outputs[0][0]) for r in results] == [int(x.astype(np.int64).sum()) % 256 for x in data]
