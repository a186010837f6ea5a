"""The device side's receive buffer (`sim/pty_reader.py`): every byte, in order, handed over a frame at a
time; bounded (flow control reaches the host); a reboot's swap drops what the old pty said; stop ends it."""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Iterator

import pytest

from pytest_edgehil.sim.pty_reader import PtyReader


def _pty() -> tuple[int, int]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


@pytest.fixture
def line() -> Iterator[tuple[PtyReader, int]]:
    """A reader on a pty master; the test writes on the slave, as a host does."""
    master, slave = _pty()
    reader = PtyReader(master, name="test", limit=8192)
    yield reader, slave
    reader.close()
    os.close(master)
    os.close(slave)


def take_in_thread(reader: PtyReader) -> tuple[threading.Thread, list[bytes | None]]:
    got: list[bytes | None] = []
    thread = threading.Thread(target=lambda: got.append(reader.take()), daemon=True)
    thread.start()
    return thread, got


def test_take_waits_for_a_frame_delimiter_and_returns_every_byte_in_order(line):
    reader, slave = line
    thread, got = take_in_thread(reader)
    os.write(slave, b"\x05abcd")  # a frame still arriving
    thread.join(timeout=0.3)
    assert thread.is_alive() and got == []
    os.write(slave, b"\x03xy\x00\x02z")  # its end, and the start of the next
    thread.join(timeout=5)
    assert got == [b"\x05abcd\x03xy\x00\x02z"]


def test_the_reader_holds_at_most_its_limit_so_a_host_writing_more_is_held_back(line):
    reader, slave = line
    sent = bytes(range(1, 256)) * 800 + b"\x00"  # 204 KB: more than the pty (~18 KB) and the reader's 8 KB hold
    writer = threading.Thread(target=lambda: os.write(slave, sent), daemon=True)
    writer.start()
    writer.join(timeout=0.5)
    assert writer.is_alive()  # flow control: the host's write waits for the device to take bytes
    received = b""
    while not received.endswith(b"\x00"):
        chunk = reader.take()
        assert chunk is not None
        received += chunk
    writer.join(timeout=5)
    assert received == sent and not writer.is_alive()


def test_while_the_host_streams_the_reader_thread_reads_ahead_without_a_take():
    master, slave = _pty()
    reader = PtyReader(master, name="test", limit=200_000)
    try:
        os.write(slave, b"\x02z\x00\x02")  # a frame and the start of the next: the host streams
        assert reader.take() == b"\x02z\x00\x02"
        rest = b"\x05" * 100_000 + b"\x00"  # far more than a pty holds: written only if someone reads on
        writer = threading.Thread(target=lambda: os.write(slave, rest), daemon=True)
        writer.start()
        writer.join(timeout=5)
        assert not writer.is_alive()
        received = b""
        while not received.endswith(b"\x00"):
            chunk = reader.take()
            assert chunk is not None
            received += chunk
        assert received == rest
    finally:
        reader.close()
        os.close(master)
        os.close(slave)


def test_a_swap_drops_what_the_old_pty_said_and_reads_the_new_one(line):
    reader, old_slave = line
    os.write(old_slave, b"\x02z\x00\x02")
    assert reader.take() == b"\x02z\x00\x02"  # streaming: the reader thread reads on
    os.write(old_slave, b"a")  # read ahead, held, never taken
    time.sleep(0.2)
    master, slave = _pty()
    try:
        reader.swap(master)
        os.write(old_slave, b"\x00")  # the old line is no longer read
        os.write(slave, b"\x02b\x00")
        thread, got = take_in_thread(reader)
        thread.join(timeout=5)
        assert got == [b"\x02b\x00"]
    finally:
        reader.close()
        os.close(master)
        os.close(slave)


def test_stop_ends_a_waiting_take_with_none_and_is_idempotent(line):
    reader, _ = line
    thread, got = take_in_thread(reader)
    reader.stop()
    reader.stop()
    thread.join(timeout=5)
    assert got == [None]


def test_a_pty_that_fails_ends_reading_and_take_returns_none():
    master, slave = _pty()
    reader = PtyReader(master, name="test")
    try:
        os.close(slave)  # no slave left: the master reads EIO
        thread, got = take_in_thread(reader)
        thread.join(timeout=5)
        assert got == [None]
    finally:
        reader.close()
        os.close(master)
