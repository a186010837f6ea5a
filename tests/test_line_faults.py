"""Faults a lab's real line produces, from outside: a board printing text on its protocol UART (a boot
banner after a reset, a console left on), driven over a real pty by a board written from docs/protocol.md
(tests/doc_client.py frames), checked against what the host says."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from pytest_edgehil.errors import DeviceRejected, DeviceTimeout
from pytest_edgehil.link.client import DeviceClient
from tests import doc_client as d
from tests.raw_pty import raw_pty_firmware

BANNER = b"\r\nU-Boot SPL 2023.04 (Mar 02 2026)\r\nTrying to boot from MMC1\r\n"


def hello_body(kind: str = "coral") -> bytes:
    return (bytes([2]) + d.string(kind) + d.string("b1") + d.string("fw 1.0") + d.string("0A1B")
            + struct.pack("<QQB", 1 << 20, 1 << 20, 0))


def board(on_run: Callable[[d.Reply], bytes]) -> Callable[[bytes], bytes]:
    """A board that answers HELLO and ACKs, and `on_run(request)` to a RUN."""
    def answer(chunk: bytes) -> bytes:
        out = b""
        for raw in chunk.split(b"\x00"):
            if raw:
                request = d.parse(raw)
                if request.mtype == d.HELLO:
                    out += d.frame(d.HELLO_REPLY, request.seq, hello_body())
                elif request.mtype == d.RUN:
                    out += on_run(request)
                else:
                    out += d.frame(d.ACK, request.seq, bytes([request.mtype]))
        return out
    return answer


def half_a_result(seq: int) -> bytes:
    """The first half of a RESULT frame (a board that reset while writing it): no delimiter."""
    payload = bytes(32) + struct.pack("<I", 1) + struct.pack("<4d", 0.0, 10.0, 230.0, 20.0) + b"\x00"
    whole = d.frame(d.RESULT, seq, payload)
    return whole[:len(whole) // 2]


@pytest.mark.parametrize(("text", "cut_reply"), [
    (BANNER, False), (b"[  12.345] edgehil: heap low, 1024 bytes free\r\n", False), (BANNER, True)])
def test_text_on_the_line_is_named_as_text_not_as_a_baud_rate_mismatch(text: bytes, cut_reply: bool) -> None:
    """A wrong baud rate turns bytes into garbage (bench-facts: MLPerf Tiny's 'failed name check'); readable
    lines come from firmware printing at the right rate: a reset's boot banner, or a console or log on the
    protocol UART. The timeout must show the text and say that, not send the engineer after the baud rate.
    `cut_reply`: the board reset while writing its reply, so half a frame comes before the banner."""
    with raw_pty_firmware(board(lambda request: (half_a_result(request.seq) if cut_reply else b"") + text)) as port, \
            DeviceClient(port, name="cm4-1", timeout_s=0.6, retries=1) as client:
        client.hello()
        with pytest.raises(DeviceTimeout) as caught:
            client.run(1)
    message = str(caught.value)
    assert "'cm4-1'" in message and port in message and "run(1)" in message
    shown = text.decode().strip().splitlines()[0]
    assert shown[:24] in message  # the text itself, readable
    assert "baud rate mismatch" not in message
    assert "reset" in message and "console" in message  # what it likely is, what to do


def test_garbage_is_still_named_a_baud_rate_mismatch() -> None:
    """Bytes of a frame sent at another baud rate (sampled wrong: no text), then silence."""
    garbage = bytes([0xF8, 0x80, 0xFE, 0x1C, 0xE0, 0x86, 0x98, 0x9E, 0xF0, 0x80, 0x78, 0xFC, 0x06, 0xE6])
    with raw_pty_firmware(board(lambda request: garbage)) as port, \
            DeviceClient(port, name="cm4-1", timeout_s=0.6, retries=1) as client:
        client.hello()
        with pytest.raises(DeviceTimeout, match="baud rate mismatch"):
            client.run(1)


def error_frame(seq: int, code: int, text: str) -> bytes:
    return d.frame(d.ERROR, seq, bytes([code]) + d.string(text))


def test_no_model_after_the_board_took_one_says_it_reset() -> None:
    """A board that reset between commands (same UART, no re-enumeration) boots with no active model and
    answers the next RUN with NO_MODEL (docs/protocol.md: "No active model"). The host had its SELECT_MODEL
    acknowledged, so 'load a model first' would be wrong advice: the board lost it, and its inputs."""
    no_model = 3
    with raw_pty_firmware(board(lambda request: error_frame(request.seq, no_model, "no active model"))) as port, \
            DeviceClient(port, name="cm4-1", timeout_s=2, retries=0) as client:
        client.hello()
        client.select_model("ab" * 32)
        with pytest.raises(DeviceRejected) as caught:
            client.run(1)
        assert caught.value.code == no_model
        message = str(caught.value)
        assert "'cm4-1'" in message and port in message and "NO_MODEL" in message
        assert "abababababababab" in message and "reset" in message and "inputs" in message
        client.reset()  # the host's own RESET drops the model: NO_MODEL is then no news
        with pytest.raises(DeviceRejected) as after_reset:
            client.run(1)
        assert "reset (watchdog" not in str(after_reset.value) and "load a model" in str(after_reset.value)
