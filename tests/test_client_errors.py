"""The host client's failure modes: each one typed, and each message naming what failed and the fix."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from pytest_edgehil.errors import (
    ConfigError,
    DeviceError,
    DeviceRejected,
    DeviceTimeout,
    FrameCorrupt,
    ProtocolError,
)
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.traffic_log import TrafficLog
from pytest_edgehil.sim.pty_link import serve_pty

from .raw_pty import raw_pty_firmware

Reply = Callable[[p.Message], list[p.Message]]


@contextmanager
def device(handler: Reply, *, name: str = "dut", **client_kw) -> Iterator[tuple[DeviceClient, object]]:
    with serve_pty(handler, name=name) as endpoint, DeviceClient(endpoint.port, name=name, **client_kw) as client:
        yield client, endpoint


@contextmanager
def raw_noise_device(noise: bytes) -> Iterator[str]:
    """A pty whose 'firmware' answers anything with `noise` — what a baud-rate mismatch looks like."""
    with raw_pty_firmware(lambda _data: noise) as port:
        yield port


COMMANDS = {
    "hello": lambda c: c.hello(),
    "run": lambda c: c.run(1),
    "reset": lambda c: c.reset(),
    "set_input": lambda c: c.set_input(0, np.zeros(4, np.int8)),
    "select_model": lambda c: c.select_model("00" * 32),
    "load_model": lambda c: c.load_model(b"model", "m"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_on_a_closed_client_name_the_method_and_the_state(command):
    client = DeviceClient("/dev/nonexistent-edgehil-port", name="cam0")
    with pytest.raises(DeviceError, match=rf"'cam0'.*{command}.*closed.*open\(\)"):
        COMMANDS[command](client)


def test_opening_a_missing_port_names_port_baud_and_fix():
    client = DeviceClient("/dev/nonexistent-edgehil-port", baudrate=57600, name="cam0")
    with pytest.raises(DeviceError) as excinfo:
        client.open()
    message = str(excinfo.value)
    assert "/dev/nonexistent-edgehil-port" in message and "57600" in message and "cable" in message
    assert not client.is_open


def test_silent_device_times_out_naming_port_baud_command_and_fix():
    with (device(lambda m: [], baudrate=57600, timeout_s=0.3, retries=2) as (client, endpoint),
          pytest.raises(DeviceTimeout) as excinfo):
        client.run(1)
    message = str(excinfo.value)
    assert endpoint.port in message and "57600" in message and "run(1)" in message
    assert "received 0 bytes" in message and "cable" in message and "firmware/agent is running" in message
    assert "3 transmissions" in message
    # The request and two retransmissions reached the device (it may still be reading the last one).
    for _ in range(200):
        if endpoint.frames_received == 3:
            break
        time.sleep(0.01)
    assert endpoint.frames_received == 3


def test_noise_without_frames_times_out_suggesting_a_baud_mismatch():
    # What a wrong baud rate makes of bytes: no text (readable lines are a console or banner, named as such), and
    # no 0x00, so never a frame delimiter.
    noise = bytes(range(0x81, 0xA1)) * 2
    with (raw_noise_device(noise) as port, DeviceClient(port, name="cam0", timeout_s=0.3, retries=0) as client,
          pytest.raises(DeviceTimeout) as excinfo):
        client.hello()
    message = str(excinfo.value)
    received = re.search(r"received (\d+) bytes", message)
    assert received and int(received.group(1)) % len(noise) == 0 and int(received.group(1)) > 0
    assert noise[:8].hex(" ") in message and "baud rate mismatch" in message and "115200" in message


def test_noise_with_delimiters_is_frame_corrupt_after_the_retries():
    with (raw_noise_device(b"\x13\x37\x00\xde\xad\x00") as port,
          DeviceClient(port, name="cam0", timeout_s=2, retries=1) as client,
          pytest.raises(FrameCorrupt) as excinfo):
        client.hello()
    message = str(excinfo.value)
    assert "'cam0'" in message and port in message and "baud" in message
    assert "1 retransmissions" in message


def test_device_error_becomes_device_rejected_with_code_text_and_hint():
    with (device(lambda m: [p.Error(p.ErrorCode.NO_MODEL, "nothing in flash")], name="m4") as (client, endpoint),
          pytest.raises(DeviceRejected) as excinfo):
        client.run(1)
    assert excinfo.value.code == p.ErrorCode.NO_MODEL
    message = str(excinfo.value)
    assert all(s in message for s in ("'m4'", endpoint.port, "NO_MODEL", "nothing in flash", "load_model"))


def test_load_model_refusal_is_device_rejected():
    def small_flash(message: p.Message) -> list[p.Message]:
        if isinstance(message, p.LoadBegin) and message.size_bytes > 1000:
            return [p.Error(p.ErrorCode.MODEL_TOO_LARGE, f"{message.size_bytes} bytes > 1000 bytes of flash")]
        return [p.Ack(message.msg_type)]

    with device(small_flash) as (client, _):
        assert client.load_model(b"x" * 900, "fits") == hashlib.sha256(b"x" * 900).hexdigest()
        with pytest.raises(DeviceRejected, match="MODEL_TOO_LARGE.*2000 bytes") as excinfo:
            client.load_model(b"x" * 2000, "too big")
    assert excinfo.value.code == p.ErrorCode.MODEL_TOO_LARGE


@pytest.mark.parametrize(("reply", "call", "match"), [
    (p.Ack(p.MsgType.RUN), lambda c: c.run(1), "expects a RESULT reply, got ACK"),
    (p.Ack(p.MsgType.RUN), lambda c: c.set_input(0, np.zeros(2, np.int8)), "acknowledged as .*RUN.* instead of SET_INPUT"),
    (p.Result((), (), bytes(32)), lambda c: c.run(3), "RUN 3 answered with 0 timings"),
])
def test_replies_that_break_the_protocol_are_protocol_errors(reply, call, match):
    with device(lambda m: [reply]) as (client, _), pytest.raises(ProtocolError, match=match):
        call(client)


def test_handler_crash_and_unsendable_reply_come_back_as_internal_errors():
    def faulty(message: p.Message) -> list[p.Message]:
        if isinstance(message, p.Run):
            return [p.Result((p.StageTiming(0, 1, 1, 1),), (np.zeros(2, np.float64),), bytes(32))]
        raise RuntimeError("sensor not responding")

    with device(faulty) as (client, _):
        with pytest.raises(DeviceRejected, match="INTERNAL.*RuntimeError: sensor not responding") as excinfo:
            client.hello()
        assert excinfo.value.code == p.ErrorCode.INTERNAL
        with pytest.raises(DeviceRejected, match="INTERNAL.*float64"):
            client.run(1)


def test_port_vanishing_mid_session_is_a_device_error_naming_the_port():
    endpoint = serve_pty(lambda m: [p.Ack(p.MsgType.RESET)], name="usb0")
    client = DeviceClient(endpoint.port, name="usb0", timeout_s=1)
    client.open()
    client.reset()
    endpoint.close()  # the board re-enumerated: its port is gone
    try:
        with pytest.raises(DeviceError, match=rf"{endpoint.port}.*re-enumerated"):
            client.reset()
    finally:
        client.close()


@pytest.mark.parametrize(("call", "match"), [
    (lambda c: c.select_model("abc"), "not a SHA-256 hex digest"),
    (lambda c: c.run(0), "count must be >= 1"),
    (lambda c: c.load_model(b"m", "m", chunk_size=0), "chunk_size 0"),
])
def test_bad_arguments_are_config_errors_before_anything_is_sent(call, match):
    with (device(lambda m: [p.Ack(p.MsgType.RESET)]) as (client, endpoint),
          pytest.raises(ConfigError, match=match)):
        call(client)
    assert endpoint.frames_received == 0


def test_traffic_log_records_both_directions_and_logs_at_debug(caplog):
    log = TrafficLog(maxlen=5)
    caplog.set_level(logging.DEBUG, logger="pytest_edgehil.serial.cam7")
    with device(lambda m: [p.Ack(p.MsgType.RESET)], name="cam7", traffic_log=log) as (client, _):
        client.reset()
        lines = log.lines()
        assert len(lines) == 2
        assert " tx " in lines[0] and "RESET" in lines[0] and " rx " in lines[1] and "ACK" in lines[1]
        assert f"seq={client._seq}" in lines[1]
        assert [r.getMessage() for r in caplog.records if r.name == "pytest_edgehil.serial.cam7"] == lines
        for _ in range(4):
            client.reset()
        assert len(log) == 5  # bounded
        log.clear()
        assert log.lines() == [] and "no serial traffic" in log.text()


def test_traffic_log_previews_only_the_first_bytes_of_a_large_payload():
    log = TrafficLog()
    log.record_frame("tx", p.Frame(1, p.MsgType.LOAD_CHUNK, 3, bytes(range(256)) * 4), device="d")
    (line,) = log.lines()
    assert "len=1024" in line and bytes(range(32)).hex(" ") in line and bytes(range(33)).hex(" ") not in line


def test_a_network_port_that_does_not_open_points_at_the_agent_not_a_cable():
    client = DeviceClient("socket://127.0.0.1:1", name="jetson", timeout_s=0.3)
    with pytest.raises(DeviceError, match=r"'jetson'.*socket://127.0.0.1:1.*agent .*listening") as excinfo:
        client.open()
    assert "cable" not in str(excinfo.value)


def test_a_network_connection_that_drops_points_at_the_agent_not_usb_serial() -> None:
    # An agent that closes its connection (a rebooted board) is no re-enumerated USB board: `usb_serial`
    # cannot apply to a socket:// port, and the message ends in one full stop, not "disconnected..".
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_then_drop() -> None:
        connection, _ = server.accept()
        connection.recv(64)
        connection.close()

    thread = threading.Thread(target=accept_then_drop, daemon=True)
    thread.start()
    try:
        with DeviceClient(f"socket://127.0.0.1:{port}", name="jetson", timeout_s=2) as client, \
                pytest.raises(DeviceError, match=rf"'jetson'.*socket://127.0.0.1:{port}.*agent") as excinfo:
            client.hello()
    finally:
        thread.join(timeout=5)
        server.close()
    assert "usb_serial" not in str(excinfo.value) and ".." not in str(excinfo.value)


def test_a_frame_the_device_never_reads_times_out_naming_its_whole_size() -> None:
    # A deaf device (a pty nobody reads): the write takes what the line buffers, then the port takes no byte
    # for timeout_s; the error names the whole frame, what went out, the port and the fix.
    import os
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        client = DeviceClient(os.ttyname(slave), name="deaf", timeout_s=0.3)
        client.open()
        try:
            with pytest.raises(DeviceTimeout, match=r"device 'deaf' on /dev/\S+ .*writing set_input\(0\) "
                                                     r"\(300000 bytes\) stalled: the port took no byte for 0.3 s "
                                                     r"after \d+: the device is not reading"):
                client._write("set_input(0)", b"\x01" * 300_000)
        finally:
            client.close()
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("baudrate", [0, -9600])
def test_a_baud_rate_that_is_no_rate_is_refused_naming_the_device(baudrate: int) -> None:
    # A request's time on the line is its size over the baud rate: 0 would divide by zero mid-request.
    with pytest.raises(ConfigError, match=rf"device 'm4': baudrate must be > 0, got {baudrate}"):
        DeviceClient("loop://", baudrate=baudrate, name="m4")
