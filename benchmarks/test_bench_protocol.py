"""Protocol round trips over a real pty, against bare pyserial moving the same bytes over the same kind of pty.

Run with `pytest benchmarks/ --benchmark-only`. The difference between a `protocol_*` and its `bare_*`
twin is what the framing, CRC, message codec and device-side dispatch cost on top of the pty itself.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Iterator

import numpy as np
import pytest
import serial

from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.sim.pty_link import serve_pty

TENSOR_64K = np.random.default_rng(0).integers(-128, 128, size=(1, 256, 256, 1), dtype=np.int8)


def echo_handler(message: p.Message) -> list[p.Message]:
    if isinstance(message, p.Run):
        timings = tuple(p.StageTiming(1000.0 * i, 10.0, 100.0, 5.0) for i in range(message.count))
        return [p.Result(timings, (np.zeros(10, np.int8),), bytes(32))]
    return [p.Ack(message.msg_type)]


@pytest.fixture(scope="module")
def client() -> Iterator[DeviceClient]:
    with serve_pty(echo_handler, name="bench") as endpoint, \
            DeviceClient(endpoint.port, name="bench", timeout_s=10) as device_client:
        yield device_client


class EchoPty:
    """Device side for the baseline: reads `size` bytes, then writes them back (store and forward,
    as the protocol's device does; echoing while the host still writes could fill both pty buffers)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.size = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._echo, daemon=True)
        self.thread.start()

    def _echo(self) -> None:
        buffered = bytearray()
        while not self.stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            buffered += os.read(self.master, 65536)
            if self.size and len(buffered) >= self.size:
                view = memoryview(bytes(buffered[:self.size]))
                del buffered[:self.size]
                while view:
                    view = view[os.write(self.master, view):]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture(scope="module")
def bare() -> Iterator[tuple[EchoPty, serial.SerialBase]]:
    echo = EchoPty()
    port = serial.serial_for_url(echo.port, timeout=10)
    yield echo, port
    port.close()
    echo.close()


def bare_round_trip(echo: EchoPty, port: serial.SerialBase, wire: bytes) -> bytes:
    echo.size = len(wire)
    port.write(wire)
    return port.read(len(wire))


def test_protocol_run_1(benchmark, client):
    result = benchmark(client.run, 1)
    assert len(result.timings) == 1


def test_bare_pyserial_run_1_bytes(benchmark, bare):
    wire = p.encode_message(p.Run(1), 1)
    assert benchmark(bare_round_trip, *bare, wire) == wire


def test_protocol_set_input_64k(benchmark, client):
    benchmark(client.set_input, 0, TENSOR_64K)


def test_bare_pyserial_set_input_64k_bytes(benchmark, bare):
    wire = p.encode_message(p.SetInput(0, TENSOR_64K), 1)
    assert benchmark(bare_round_trip, *bare, wire) == wire


@pytest.mark.parametrize("content", ["random", "zeros"])
def test_codec_only_set_input_64k(benchmark, content):
    """Encode + decode without any I/O; all-zero data is COBS's worst case (one block per byte)."""
    tensor = TENSOR_64K if content == "random" else np.zeros_like(TENSOR_64K)

    def round_trip() -> p.Message:
        (frame,) = p.FrameDecoder().feed(p.encode_message(p.SetInput(0, tensor), 1))
        return frame.message()

    assert benchmark(round_trip) == p.SetInput(0, tensor)
