"""What the X-NUCLEO-LPM01A can do, as its manuals state it, against the driver and the twin.

Sources (docs/instruments.md, "USB power monitors"):
- The PowerShield firmware's own `help` (STM32-LPM01-XN, the firmware UM2269 documents), as MLPerf Tiny's
  energy runner keeps it verbatim: `acqtime` "For limited acquisition duration: Numerical value in range:
  [100u; 100] / For infinite acquisition duration: Numerical value '0' or string 'inf'"; `format`
  ascii_dec: "sampling frequency limited to 10kHz", and its table of the maximum acquisition time by
  format and frequency at 3686400 baud: ascii_dec <= 5k unlimited, 10k 1 s (10 000 samples), 20k 500 ms;
  bin_hexa <= 100k unlimited.
- UM2243 (the board's user manual) section 10: the dynamic mode measures 100 nA to 50 mA; its
  overcurrent protection acts from 59 mA and lets spikes of up to 75 mA and a few milliseconds through.
  (The firmware help writes the dynamic range as [100nA; 10mA]; see lpm01a_limits.py for why the board's
  manual is followed.)
Each expectation below is written from those texts, not from the driver's constants.
"""

from __future__ import annotations

import os
import re
import select
import time

import numpy as np
import pytest

from pytest_edgehil.errors import MeasurementError, MonitorLimit
from pytest_edgehil.instruments.lpm01a import LPM01A
from pytest_edgehil.sim.lpm01a_twin import LPM01ATwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from tests.raw_pty import raw_pty_firmware
from tests.test_monitor_streams import END, _bin_samples, _lpm01a_board, _timestamp

MODEL = "ST X-NUCLEO-LPM01A"


def _configured_format(seconds: float, interval_s: float) -> str:
    with raw_pty_firmware(_lpm01a_board()) as port:
        monitor = LPM01A(port)
        try:
            monitor.configure(voltage_v=3.3, current_range_a=0.02, sample_interval_s=interval_s,
                              points=round(seconds / interval_s))
        finally:
            monitor.close()
    return next(line.split()[-1] for direction, line in monitor.log if direction == "write" and line.startswith("format"))


@pytest.mark.parametrize(("seconds", "interval_s", "expected"), [
    (2.0, 1e-4, "bin_hexa"),  # 10 kHz holds ASCII for 1 s at most (10 000 samples)
    (0.5, 1e-4, "ascii_dec"),  # within that second: ASCII is fine
    (30.0, 2e-4, "ascii_dec"),  # 5 kHz: ASCII unlimited
    (0.2, 5e-5, "bin_hexa"),  # 20 kHz: past ASCII's 10 kHz
])
def test_the_format_is_one_the_help_table_allows_for_the_whole_acquisition(seconds, interval_s, expected):
    assert _configured_format(seconds, interval_s) == expected


@pytest.mark.parametrize(("points", "interval_s", "needle"), [
    (200_000, 1e-3, "200 s"),  # longer than acqtime's 100 s
    (5, 1e-5, "50 µs"),  # shorter than acqtime's 100 µs
])
def test_an_acquisition_time_outside_the_boards_range_is_refused_before_anything_is_sent(points, interval_s, needle):
    with raw_pty_firmware(_lpm01a_board()) as port:
        monitor = LPM01A(port)
        try:
            with pytest.raises(MonitorLimit) as excinfo:
                monitor.configure(voltage_v=3.3, current_range_a=0.02, sample_interval_s=interval_s, points=points)
        finally:
            monitor.close()
    text = str(excinfo.value)
    for word in (MODEL, needle, "100 µs", "100 s"):
        assert word in text, word
    assert not any(line.startswith("acqtime") for _, line in monitor.log)


def _capture(samples_a: np.ndarray, interval_s: float = 1e-5) -> object:
    stream = _timestamp(0, 0) + _bin_samples(samples_a) + END
    with raw_pty_firmware(_lpm01a_board(stream)) as port:
        monitor = LPM01A(port)
        try:
            monitor.configure(voltage_v=3.3, current_range_a=0.045, sample_interval_s=interval_s,
                              points=samples_a.size)
            monitor.arm()
            monitor.wait_complete(5.0)
            return monitor.fetch_trace()
        finally:
            monitor.close()


def test_samples_above_the_dynamic_range_are_refused_not_integrated():
    """55 mA is past the 50 mA range and below the 59 mA overcurrent protection: the board flags nothing."""
    samples = np.full(2000, 20e-3)
    samples[700:760] = 55e-3
    with pytest.raises(MeasurementError) as excinfo:
        _capture(samples)
    text = str(excinfo.value)
    for word in (MODEL, "50 mA", "60 samples", "larger range"):
        assert word in text, word
    peak = re.search(r"peak ([\d.]+) mA", text)
    assert peak is not None and float(peak.group(1)) == pytest.approx(55, rel=1 / 512)  # bin_hexa's 12 bits


def test_a_capture_below_the_dynamic_range_floor_is_refused():
    with pytest.raises(MeasurementError, match=r"ST X-NUCLEO-LPM01A.*below.*100 nA"):
        _capture(np.full(2000, 50e-9))


def test_a_few_samples_below_the_floor_in_a_milliamp_trace_are_accepted():
    """Their charge is bounded by 100 nA each: far below what the trace carries; refusing would be false."""
    samples = np.full(2000, 5e-3)
    samples[100:110] = 50e-9
    trace = _capture(samples)
    assert trace.current_a.size == 2000


# --- the twin, driven by a raw client written from the firmware's help -------------------------------------

def _twin_replies(lines: list[str]) -> list[str]:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    timeline.append(StageSpan("idle", 0.0, 0.1, 0.01))
    twin = LPM01ATwin(timeline)
    port = twin.start()
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    replies: list[str] = []
    try:
        for line in lines:
            os.write(fd, line.encode() + b"\n")
            buf, deadline = b"", time.monotonic() + 2.0
            while not buf.endswith(b"\n") and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.05)[0]:
                    buf += os.read(fd, 4096)
            replies.append(buf.decode().strip().removeprefix("PowerShield > "))
        os.write(fd, b"stop\n")
    finally:
        os.close(fd)
        twin.close()
    return replies


@pytest.mark.parametrize(("acqtime", "accepted"), [("200", False), ("50u", False), ("100", True), ("100u", True),
                                                    ("0", True), ("inf", True), ("2", True)])
def test_the_twin_takes_acqtime_within_the_helps_range(acqtime, accepted):
    reply = _twin_replies(["htc", f"acqtime {acqtime}"])[-1]
    assert reply.startswith("ack" if accepted else "error"), reply


@pytest.mark.parametrize(("freq", "acqtime", "accepted"), [("10k", "2", False), ("10k", "inf", False),
                                                           ("10k", "1", True), ("5k", "30", True),
                                                           ("20k", "100m", False)])
def test_the_twin_refuses_an_ascii_acquisition_its_uart_cannot_carry(freq, acqtime, accepted):
    replies = _twin_replies(["htc", "format ascii_dec", f"freq {freq}", f"acqtime {acqtime}", "start"])
    assert all(reply.startswith("ack") for reply in replies[:-1]), replies
    assert replies[-1].startswith("ack" if accepted else "error"), replies[-1]
