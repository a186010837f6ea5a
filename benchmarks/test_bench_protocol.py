"""Protocol round trips over a real pty beside bare pyserial moving the same bytes on the same pty.

Run with `pytest benchmarks/ --benchmark-only`; each `group` pairs our path with its baseline. The bare
side writes the same request frame (a fresh sequence number each time, encoded beforehand) to the same
device side and reads the same reply bytes back (RUN: 18 B out, the 67-byte RESULT back; SET_INPUT:
65,711 B out, the 15-byte ACK back). pytest-benchmark times the pair one after the other, so on a busy
machine their ratio drifts; `python -m benchmarks.ratios` interleaves the rounds and prints the ratio.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import serial

from benchmarks.ratios import CANNED_RESULT, TENSOR_64K, bare_round_trip, canned_handler, frames
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.sim.pty_link import serve_pty


@pytest.fixture(scope="module")
def link() -> Iterator[tuple[DeviceClient, serial.SerialBase]]:
    with serve_pty(canned_handler, name="bench") as endpoint, \
            DeviceClient(endpoint.port, name="bench", timeout_s=10) as client:
        assert client._serial is not None
        yield client, client._serial


@pytest.mark.benchmark(group="run-1")
def test_protocol_run_1(benchmark, link):
    client, _ = link
    result = benchmark(client.run, 1)
    assert result == CANNED_RESULT


@pytest.mark.benchmark(group="run-1")
def test_bare_pyserial_run_1_bytes(benchmark, link):
    client, port = link
    wires = frames(p.Run(1), client._seq + 20000)
    reply = benchmark(lambda: bare_round_trip(port, next(wires)))
    assert len(reply) == len(p.encode_message(CANNED_RESULT, 0))


@pytest.mark.benchmark(group="set-input-64k")
def test_protocol_set_input_64k(benchmark, link):
    client, _ = link
    benchmark(client.set_input, 0, TENSOR_64K)
    assert client.stats.retransmissions == 0


@pytest.mark.benchmark(group="set-input-64k")
def test_bare_pyserial_set_input_64k_bytes(benchmark, link):
    client, port = link
    wires = frames(p.SetInput(0, TENSOR_64K), client._seq + 40000)
    reply = benchmark(lambda: bare_round_trip(port, next(wires)))
    assert len(reply) == 15


@pytest.mark.benchmark(group="codec-64k")
@pytest.mark.parametrize("content", ["random", "zeros"])
def test_codec_only_set_input_64k(benchmark, content):
    """Encode + decode without any I/O; all-zero data is COBS's worst case (one block per byte)."""
    tensor = TENSOR_64K if content == "random" else np.zeros_like(TENSOR_64K)

    def round_trip() -> p.Message:
        (frame,) = p.FrameDecoder().feed(p.encode_message(p.SetInput(0, tensor), 1))
        assert isinstance(frame, p.Frame)
        return frame.message()

    assert benchmark(round_trip) == p.SetInput(0, tensor)
