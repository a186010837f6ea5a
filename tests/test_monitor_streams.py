"""The monitors' sample streams decoded from bytes written by the devices' own references, not by our twins'
codecs: the PPK2's 32-bit word (pc-nrfconnect-ppk's serialDevice: ADC bits 0-13, range 14-16, a 6-bit
per-sample counter 18-23 that the Power Profiler uses to find lost samples, logic 24-31)."""

from __future__ import annotations

import os
import tty

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError, StreamGap

ADC_MULT = 1.8 / 163840  # pc-nrfconnect-ppk's adcMult
SHUNT_R2_OHM = 10.15  # range 2's nominal shunt (the uncalibrated metadata)


def _ppk2_words(current_a: np.ndarray, logic: np.ndarray, counter0: int) -> np.ndarray:
    """Sample words on range 2 as a PPK2 sends them: code = I·R / (4·adcMult), counter +1 each sample."""
    code = np.round(current_a * SHUNT_R2_OHM / (4 * ADC_MULT)).astype(np.uint32)
    counter = (np.arange(current_a.size, dtype=np.uint32) + counter0) & 0x3F
    return code | (2 << 14) | (counter << 18) | (logic.astype(np.uint32) << 24)


@pytest.fixture
def ppk2():
    """The PPK2 driver on ppk2-api over a bare pty (nothing answers: `_decode` needs no device)."""
    pytest.importorskip("ppk2_api")
    from ppk2_api.ppk2_api import PPK2_API

    from pytest_edgehil.instruments.ppk2 import PPK2

    master, slave = os.openpty()
    tty.setraw(slave)
    monitor = object.__new__(PPK2)
    monitor._api = PPK2_API(os.ttyname(slave), timeout=0.05)
    monitor._api.current_vdd = 3300
    # What GET_META_DATA would set: no quadratic gain (the library's defaults, GS = 1, stand for none read).
    monitor._api._parse_metadata("".join(f"GS{r}: 0\nGI{r}: 1\n" for r in range(5)) + "END\n")
    monitor._api.spike_filter_alpha = monitor._api.spike_filter_alpha5 = 1.0
    monitor.resource, monitor.idn, monitor.trigger_bit, monitor._voltage_v = "pty", "Nordic PPK2", 0, 3.3
    try:
        yield monitor
    finally:
        monitor._api.ser.close()
        os.close(master)
        os.close(slave)


def _stream(n: int = 3000, counter0: int = 37) -> tuple[np.ndarray, np.ndarray]:
    current = np.full(n, 1e-3)
    current[1000:2000] = 5e-3  # the inference, with the trigger line (D0) high
    logic = np.zeros(n, dtype=np.uint32)
    logic[1000:2000] = 1
    return _ppk2_words(current, logic, counter0), current


def test_ppk2_whole_stream_decodes_to_the_currents_and_the_trigger_line(ppk2):
    words, current = _stream()
    trace = ppk2._decode(words.astype("<u4").tobytes())  # the counter starts at 37 and wraps: no loss
    assert trace.current_a.size == current.size
    assert np.abs(trace.current_a / current - 1).max() < 2e-3
    assert np.flatnonzero(trace.digital).tolist() == list(range(1000, 2000))


def test_ppk2_samples_lost_on_the_link_are_refused_not_integrated(ppk2):
    """USB data loss (the Power Profiler's 'Data loss detected'): the words after a gap arrive with a jump
    in the sample counter. Decoded as if contiguous, the trigger window shrinks by the lost samples and its
    energy reads low by as much (40 of 1000 here: 4 %); the stream is refused with StreamGap instead, so
    the meter captures the window again."""
    words, _ = _stream()
    raw = np.delete(words, np.arange(1500, 1540)).astype("<u4").tobytes()
    with pytest.raises(StreamGap) as excinfo:
        ppk2._decode(raw)
    text = str(excinfo.value)
    for needle in ("Nordic PPK2", "sample 1500", "40 samples", "capture again"):
        assert needle in text, needle


def test_ppk2_a_torn_word_is_refused(ppk2):
    """Two bytes lost mid-stream shift every later word: the counter no longer steps by one."""
    words, _ = _stream()
    raw = words.astype("<u4").tobytes()
    with pytest.raises(StreamGap, match="Nordic PPK2"):
        ppk2._decode(raw[:6002] + raw[6004:] + b"\x00\x00")


# The LPM01A as its users' drivers (MLPerf Tiny's energy runner, Zephyr's PowerShield scripts, LPM01A-lib)
# read it: every reply line carries the shell prompt, e.g. "PowerShield > ack temp degc 28.0".
LPM_PROMPT = b"PowerShield > "


def _lpm01a_board(stream: bytes = b"") -> object:
    """A bare LPM01A 'firmware': each command line acked behind the prompt; after `start`, `stream` and the
    completion line."""
    def answer(chunk: bytes) -> bytes:
        out = b""
        for line in chunk.decode().splitlines():
            out += LPM_PROMPT + b"ack " + line.strip().encode() + b"\r\n"
            if line.strip() == "start":
                out += stream + b"\r\n" + LPM_PROMPT + b"Acquisition completed\r\n"
        return out
    return answer


def test_lpm01a_opens_and_configures_a_board_that_prompts():
    from pytest_edgehil.instruments.lpm01a import LPM01A
    from tests.raw_pty import raw_pty_firmware

    with raw_pty_firmware(_lpm01a_board()) as port:
        monitor = LPM01A(port)
        try:
            monitor.configure(voltage_v=3.3, current_range_a=0.04, sample_interval_s=1e-3, points=5)
        finally:
            monitor.close()
    assert ("read", "PowerShield > ack format ascii_dec") in monitor.log


def _bin_samples(current_a: np.ndarray) -> bytes:
    """UM2269's bin_hexa sample: 4-bit negative power of 16, 12-bit mantissa (52A0 = 0x2A0·16^-5 A)."""
    out = bytearray()
    for i in current_a:
        e = max(e for e in range(15) if round(i * 16 ** e) <= 4095)
        out += ((e << 12) | round(i * 16 ** e)).to_bytes(2, "big")
    return bytes(out)


def _timestamp(ms: int, load_pct: int) -> bytes:
    return b"\xf0\xf3" + ms.to_bytes(4, "big") + bytes([load_pct]) + b"\xff\xff"


END = b"\xf0\xf4\xff\xff"


def test_lpm01a_binary_metadata_is_found_wherever_the_board_puts_it():
    """Timestamps (F0 F3 <ms> <buffer load %> FF FF) arrive when the board sends them, not every 1000
    samples; an info message (F0 F2 <text> FF FF) may come between samples too."""
    from pytest_edgehil.instruments import lpm01a_protocol as proto

    current = np.array([640.9e-6, 1e-3, 12e-3, 3e-7] * 400)
    raw = (_timestamp(0, 0) + _bin_samples(current[:700]) + b"\xf0\xf2target powered\xff\xff"
           + _bin_samples(current[700:1300]) + _timestamp(13, 2) + _bin_samples(current[1300:]) + END)
    assert _bin_samples(np.array([640.9e-6])) == b"\x52\xa0"  # UM2269's example
    stream = proto.decode_binary(raw)
    assert stream.current_a.size == current.size
    assert np.abs(stream.current_a / current - 1).max() < 1 / 512
    assert stream.problems == []


@pytest.mark.parametrize(("packet", "needle"), [(b"\xf0\xf5\xff\xff", "overcurrent"),
                                                 (b"\xf0\xf1buffer overflow\xff\xff", "buffer overflow")])
def test_lpm01a_overcurrent_or_error_in_a_binary_stream_is_named(packet, needle):
    from pytest_edgehil.instruments.lpm01a import LPM01A
    from tests.raw_pty import raw_pty_firmware

    current = np.full(2000, 20e-3)
    stream = _timestamp(0, 0) + _bin_samples(current[:1000]) + packet + _bin_samples(current[1000:]) + END
    with raw_pty_firmware(_lpm01a_board(stream)) as port:
        monitor = LPM01A(port)
        try:
            monitor.configure(voltage_v=3.3, current_range_a=0.04, sample_interval_s=1e-5, points=2000)
            monitor.arm()
            with pytest.raises(MeasurementError) as excinfo:
                monitor.wait_complete(5.0)
        finally:
            monitor.close()
    assert "ST X-NUCLEO-LPM01A" in str(excinfo.value) and needle in str(excinfo.value)


def test_lpm01a_error_line_in_an_ascii_stream_is_not_dropped():
    """At 1 kHz the stream is ASCII; a board past its 50 mA dynamic range reports it in the stream while the
    samples go on, clipped. Dropping that line as 'not a sample' gave a full-length trace whose mean read
    50 mA for a board drawing 80 mA in half of it (-30 % energy)."""
    from pytest_edgehil.instruments.lpm01a import LPM01A
    from tests.raw_pty import raw_pty_firmware

    lines = ["2000-05"] * 50 + ["PowerShield > error: overcurrent"] + ["5000-05"] * 50
    stream = "\r\n".join(lines).encode()
    with raw_pty_firmware(_lpm01a_board(stream)) as port:
        monitor = LPM01A(port)
        try:
            monitor.configure(voltage_v=3.3, current_range_a=0.04, sample_interval_s=1e-3, points=100)
            monitor.arm()
            with pytest.raises(MeasurementError, match="overcurrent"):
                monitor.wait_complete(5.0)
        finally:
            monitor.close()
