"""A request on a slow line: the write waits while the port keeps taking bytes, and only a stall is a timeout.

64 KiB at 115200 baud take 5.7 s on the wire, longer than the default `timeout_s` of 5 s; bounding the whole
write by `timeout_s` (pyserial's write timeout) refused a large SET_INPUT or EVAL_BATCH on a healthy UART
as "the device is not reading". A pty firmware that reads slowly stands for the slow line here.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import serial

from pytest_edgehil.errors import DeviceTimeout
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient

from .raw_pty import serving_pty

TIMEOUT_S = 0.5
CHUNK, PAUSE_S = 2048, 0.04  # the firmware's reading pace: about 50 KB/s, 64 KiB in about 1.3 s


@contextmanager
def slow_reader(*, reads: bool = True, chunk: int = CHUNK, pause_s: float = PAUSE_S,
                drop_first: bool = False) -> Iterator[str]:
    """A firmware that reads `chunk` bytes every `pause_s` (or, `reads` False, nothing) and ACKs each frame
    (`drop_first`: but the first, as if it were lost on the line)."""
    decoder = p.FrameDecoder()
    dropped = [not drop_first]

    def serve(master: int, stop: threading.Event) -> None:
        os.set_blocking(master, False)
        while not stop.is_set():
            if not reads:
                time.sleep(0.01)
                continue
            if select.select([master], [], [], 0.05)[0]:
                try:
                    data = os.read(master, chunk)
                except BlockingIOError:
                    continue
                for frame in decoder.feed(data):
                    if isinstance(frame, p.Frame) and not dropped[0]:
                        dropped[0] = True
                    elif isinstance(frame, p.Frame):
                        os.write(master, p.encode_message(p.Ack(frame.msg_type), frame.seq))
                time.sleep(pause_s)

    with serving_pty(serve) as port:
        yield port


def test_a_large_request_on_a_slow_line_is_written_although_it_takes_longer_than_timeout_s():
    tensor = np.random.default_rng(1).integers(-128, 128, size=(1, 256, 256, 1), dtype=np.int8)  # 64 KiB
    with slow_reader() as port, DeviceClient(port, timeout_s=TIMEOUT_S, retries=0) as client:
        start = time.monotonic()
        client.set_input(0, tensor)
        took = time.monotonic() - start
    assert took > 1.5 * TIMEOUT_S  # the line was slower than timeout_s, and the request still went through


def test_a_device_that_stops_reading_is_a_timeout_naming_the_stall():
    tensor = np.zeros((1, 256, 256, 1), np.int8)
    with slow_reader(reads=False) as port, DeviceClient(port, name="m4", timeout_s=TIMEOUT_S, retries=0) as client, \
            pytest.raises(DeviceTimeout, match=r"stalled: the port took no byte for 0\.5 s after \d+") as err:
        client.set_input(0, tensor)
    assert "'m4'" in str(err.value) and "not reading" in str(err.value)


def test_a_device_trickling_bytes_cannot_hold_the_host_for_ever():
    # 4 KB every 0.25 s: never a stall of timeout_s, but far slower than the line. The write gives up at
    # timeout_s plus twice the request's line time (at 1 Mbaud here: 1 + 1.3 s; a read every 0.25 s is far
    # from a 1 s stall even on a loaded machine).
    tensor = np.zeros((1, 256, 256, 1), np.int8)
    # Without the limit the 64 KiB would go through in about 4 s, and set_input would succeed.
    with slow_reader(chunk=4096, pause_s=0.25) as port, \
            DeviceClient(port, name="m4", baudrate=1_000_000, timeout_s=1.0, retries=0) as client, \
            pytest.raises(DeviceTimeout, match=r"took more than 2\.3\d* s .* reads far slower than the line"):
        client.set_input(0, tensor)


def test_a_retransmission_on_a_slow_line_gets_its_own_wait_slice():
    # The first request is lost (the firmware reads it but does not answer); writing the retransmission takes
    # longer than the whole wait, yet its reply counts: time spent writing is no wait for the reply.
    tensor = np.zeros((1, 256, 256, 1), np.int8)
    with slow_reader(drop_first=True) as port, DeviceClient(port, timeout_s=1.0, retries=1) as client:
        client.set_input(0, tensor)
        assert client.stats.retransmissions == 1


@contextmanager
def serial_server(baudrate: int) -> Iterator[str]:
    """ser2net in front of a UART at `baudrate`: it takes a request off the socket at once (TCP buffers it),
    but the board receives it only after its time on the line, and ACKs it then."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        decoder = p.FrameDecoder()
        with conn:
            conn.settimeout(0.05)
            while not stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                time.sleep(len(data) * 10 / baudrate)  # these bytes' time on the UART
                for frame in decoder.feed(data):
                    if isinstance(frame, p.Frame):
                        conn.sendall(p.encode_message(p.Ack(frame.msg_type), frame.seq))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=2)


def test_over_a_network_port_the_reply_wait_starts_after_the_request_s_line_time():
    # socket:// (ser2net, a board's agent): the kernel takes the 64 KiB request at once, the UART behind it
    # carries it for 2 s at this baud rate; a healthy board answers after that, later than timeout_s.
    tensor = np.zeros((1, 256, 256, 1), np.int8)
    baudrate = 64 * 1024 * 10 // 2
    with serial_server(baudrate) as port, DeviceClient(port, baudrate=baudrate, timeout_s=1.0, retries=0) as client:
        client.set_input(0, tensor)


def test_a_port_object_handed_over_is_timed_at_its_own_baud_rate():
    # The client does not set a handed port's rate: a line at 9600 baud judged at the default 115200 would
    # give up on a healthy 64 KiB write after a twelfth of its line time, blaming the device.
    with slow_reader() as port:
        ser = serial.serial_for_url(port, baudrate=9600, timeout=0)
        with DeviceClient(ser, timeout_s=TIMEOUT_S, retries=0) as client:
            assert client.baudrate == 9600
            assert client.write_limit_s(65536) == pytest.approx(TIMEOUT_S + 2 * 65536 * 10 / 9600)
