"""ST X-NUCLEO-LPM01A (PowerShield) on pyserial with its documented ASCII protocol (UM2269).

No maintained Python library exists for it (the package lists hold none), so the driver speaks the
protocol itself: `lpm01a_protocol` is the codec the twin shares. The board starts an acquisition on the
device's trigger line (`trigsrc d7`) and runs it for `acqtime`; it records no digital channel and keeps no
samples from before the trigger, so per-inference windows are refused (the first readout is never captured)
and the end-to-end energy comes from one run window, its start placed from the trigger by the device's clock
(no clock fitted: `measure.run_window`). Dynamic mode measures 100 nA to 50 mA at up to 100 kS/s, for
100 µs to 100 s per acquisition, and the board sources 1.8-3.3 V (`lpm01a_limits`, with its sources): a plan
outside that is refused with MonitorLimit before anything is sent, a capture outside the range with
MeasurementError, never integrated. A capture from which nothing at all arrived is a trigger that never came
(TriggerTimeout: the board sends nothing until D7 rises), waited for once per device in a pytest session
(plugin/trigger_faults.py); one that stops part-way is a plain InstrumentTimeout.
"""

from __future__ import annotations

import time

import numpy as np
import serial

from pytest_edgehil.errors import (
    InstrumentError,
    InstrumentReplyError,
    InstrumentTimeout,
    MeasurementError,
    MonitorLimit,
    TriggerTimeout,
)
from pytest_edgehil.instruments import lpm01a_limits as limits
from pytest_edgehil.instruments import lpm01a_protocol as proto
from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.monitor import PowerMonitor

BAUD = 3_686_400
REPLY_TIMEOUT_S = 2.0
# UM2243 Rev 2, section 10 "Dynamic current measurement principle": 100 nA to 50 mA "with an accuracy in the
# range of 2 %", taken as ±(2 % + 100 nA) (the floor its range starts at), one range as far as the host sees
# (the firmware switches its five shunts itself). Its output voltage accuracy was not found: conservative
# ±(0.5 % + 10 mV); the trace carries the programmed voltage (the board reports current only).
ACCURACY = AccuracySpec(
    current_ranges=(CurrentRange(limits.DYNAMIC_RANGE_A[1], Accuracy(0.02, limits.DYNAMIC_RANGE_A[0])),),
    voltage=Accuracy(0.005, 10e-3), voltage_setpoint=Accuracy(0.005, 10e-3), autoranging=True,
    source="UM2243 Rev 2 section 10 (dynamic mode: 2 %); output voltage conservative (not found)",
    conservative=True)


class LPM01A(PowerMonitor):
    model = "ST X-NUCLEO-LPM01A"
    library = "pyserial"
    min_sample_interval_s = 1.0 / proto.FREQS_HZ[0]
    max_points = round(limits.ACQTIME_RANGE_S[1] * proto.FREQS_HZ[0])  # 100 s at 100 kS/s (`acqtime`'s limit)
    keeps_pretrigger = False
    voltage_range_v = proto.VOLTAGE_RANGE_V
    max_current_a = limits.DYNAMIC_RANGE_A[1]
    accuracy = ACCURACY
    voltage_measured = False  # the trace's voltage is the programmed one
    digital_inputs = 0

    def __init__(self, port: str) -> None:
        self.resource = port
        self.idn = f"STMicroelectronics,X-NUCLEO-LPM01A,{port}"
        try:
            self._serial = serial.serial_for_url(port, baudrate=BAUD, timeout=0.05)
        except (serial.SerialException, OSError) as exc:
            raise InstrumentError(f"{self.model} at {port}: cannot open the port: {exc}; check the USB cable and "
                                  "that no other program (STM32CubeMonitor-Power) holds it") from exc
        self.log: list[tuple[str, str]] = []  # (direction, line) of every command and reply
        self._plan: tuple[float, float, int, str] | None = None  # (volts, interval, points, format)
        self._trace: Trace | None = None
        self.command("htc")

    def _readline(self, timeout_s: float) -> str:
        deadline, buf = time.monotonic() + timeout_s, b""
        while not buf.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise InstrumentTimeout(f"{self.model} at {self.resource}: no reply within {timeout_s:g} s "
                                        f"(got {buf!r}); check the port and the baud rate ({BAUD})")
            buf += self._serial.read_until(b"\n")
        return buf.decode("ascii", "replace").strip()

    def command(self, line: str) -> None:
        """Send one command and require `ack <command>` (behind the board's prompt); InstrumentReplyError with
        the board's text otherwise."""
        self.log.append(("write", line))
        self._serial.write(line.encode() + b"\n")
        reply = ""
        while not proto.strip_prompt(reply):  # a prompt alone ends the previous reply
            reply = self._readline(REPLY_TIMEOUT_S)
        self.log.append(("read", reply))
        if proto.strip_prompt(reply) != f"ack {line}":
            raise InstrumentReplyError(f"{self.model} at {self.resource}: {line!r} answered {reply!r}",
                                       resource=self.resource, command=line, reply=reply.encode())

    def supported_sample_interval_s(self, requested_s: float) -> float:
        fitting = [1.0 / f for f in proto.FREQS_HZ if 1.0 / f >= requested_s * (1 - 1e-9)]
        return min(fitting) if fitting else 1.0 / proto.FREQS_HZ[-1]

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        """Program one triggered acquisition of `points` samples; MonitorLimit, before anything is sent, for
        what the board cannot do: a supply or range outside it, a rate it does not have, a duration outside
        its `acqtime` (100 µs to 100 s). ASCII where its table lets ASCII carry the whole acquisition,
        bin_hexa otherwise (`lpm01a_limits`)."""
        self.check_supply(voltage_v, current_range_a)
        self.check_interval(sample_interval_s)
        acqtime_s = points * sample_interval_s
        problem = limits.acqtime_problem(acqtime_s)
        if problem is not None:
            low, high = (round(limit / sample_interval_s) for limit in limits.ACQTIME_RANGE_S)
            raise MonitorLimit(f"{self.model} at {self.resource}: {problem}; at {sample_interval_s * 1e6:g} µs "
                               f"per sample capture {max(low, 1)} to {high} points (split a longer run into "
                               "windows of at most 100 s)")
        freq = round(1.0 / sample_interval_s)
        fmt = "ascii_dec" if limits.ascii_allowed(freq, acqtime_s) else "bin_hexa"
        for line in (f"volt {round(voltage_v * 1000)}m", f"freq {proto.freq_token(freq)}",
                     f"acqtime {round(points * sample_interval_s * 1e6)}u", "acqmode dyn", "output current",
                     f"format {fmt}", "trigsrc d7"):
            self.command(line)
        self._plan = (voltage_v, sample_interval_s, points, fmt)

    def arm(self, source: str = "EXT") -> None:
        """`start`: the acquisition begins at the next rising edge on D7 (the device's trigger line)."""
        if self._plan is None:
            raise InstrumentError(f"{self.model} at {self.resource}: arm() called before configure()")
        self._trace = None
        self.command("start")

    def wait_complete(self, timeout_s: float) -> None:
        if self._plan is None:
            raise InstrumentError(f"{self.model} at {self.resource}: wait_complete() before configure()")
        volts, dt, points, fmt = self._plan
        deadline = time.monotonic() + timeout_s
        if not self._first_bytes(deadline):
            raise TriggerTimeout(f"{self.model} at {self.resource}: nothing arrived within {timeout_s:g} s of "
                                 "`start` (trigsrc d7): no rising edge reached D7; check the wire from the device's "
                                 "trigger pin to the board's Arduino pin D7 and that the firmware raises it",
                                 resource=self.resource, timeout_s=timeout_s)
        if fmt == "bin_hexa":
            raw, tail = self._read_binary(deadline, timeout_s)
            try:
                stream = proto.decode_binary(raw)
            except ValueError as exc:
                raise MeasurementError(f"{self.model} at {self.resource}: the binary stream is corrupt ({exc}); "
                                       "capture again") from exc
            current_a, problems = stream.current_a, stream.problems
            while proto.COMPLETED not in tail:
                tail += self._readline(max(deadline - time.monotonic(), 0.1))
        else:
            values: list[float] = []
            problems = []
            while True:
                line = self._readline(max(deadline - time.monotonic(), 0.1))
                if proto.COMPLETED in line:
                    break
                value = proto.parse_ascii(line)
                if value is not None:
                    values.append(value)
                elif (problem := proto.ascii_problem(line)) is not None:
                    problems.append(problem)
            current_a = np.asarray(values)
        if problems:
            # The samples go on after such a report (clipped at the range, or from an unpowered board): a
            # trace of the right length whose energy reads low, so no trace at all.
            raise MeasurementError(f"{self.model} at {self.resource}: the board reported {'; '.join(problems)} "
                                   f"during the acquisition, so its samples are not the device's current; check "
                                   f"that the device stays within {self.max_current_a * 1e3:g} mA (else measure it "
                                   "with a monitor of a larger range and raise its `current_range_a`) and capture "
                                   "again")
        if current_a.size != points:
            raise MeasurementError(f"{self.model} at {self.resource}: {current_a.size} samples arrived, {points} "
                                   "were asked for: the stream lost data; capture again")
        problem = limits.range_problem(current_a)
        if problem is not None:  # unflagged by the board (its protection acts from 59 mA only): refused here
            raise MeasurementError(f"{self.model} at {self.resource}: the capture has {problem}; it is not "
                                   "integrated")
        self._trace = Trace(current_a, np.full(points, volts), dt, 0, self.idn)

    def _first_bytes(self, deadline: float) -> bool:
        """Wait until the acquisition's first byte is readable (left in the port for the readers); False
        at `deadline` with none. Why before reading: the board sends nothing between `start` and the
        trigger, so silence is the trigger's fault, and a capture that stops part-way is not."""
        while self._serial.in_waiting == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def _read_binary(self, deadline: float, timeout_s: float) -> tuple[bytes, str]:
        """The `bin_hexa` stream up to its end mark, and the text read after it. Its length is not known
        beforehand: the board puts timestamps and flags among the samples when it sends them."""
        buf, end = bytearray(), -1
        while end < 0:
            if time.monotonic() > deadline:
                raise InstrumentTimeout(f"{self.model} at {self.resource}: {len(buf)} bytes and no end mark "
                                        f"within {timeout_s:g} s: the capture started (D7 fired) and stopped "
                                        "part-way; check the USB link and capture again")
            start = max(0, len(buf) - len(proto.STREAM_END) + 1)
            buf += self._serial.read(65536)
            end = buf.find(proto.STREAM_END, start)
        end += len(proto.STREAM_END)
        return bytes(buf[:end]), bytes(buf[end:]).decode("ascii", "replace")

    def fetch_trace(self) -> Trace:
        if self._trace is None:
            raise InstrumentError(f"{self.model} at {self.resource}: fetch_trace() before a completed capture")
        return self._trace

    def close(self) -> None:
        try:
            if self._serial.is_open and self._plan is not None:
                self._serial.write(b"stop\n")
        finally:
            self._serial.close()
