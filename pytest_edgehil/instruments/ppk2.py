"""Nordic Power Profiler Kit II in source mode, on `ppk2-api` (community-maintained, over pyserial).

ppk2-api opens any pyserial port name, so a pty (the twin) works as a USB-CDC PPK2 does. The PPK2 streams
at a fixed 100 kS/s from AVERAGE_START to AVERAGE_STOP; it has no hardware trigger, so `arm` starts the
stream and `wait_complete` stops it once the device's RUN has answered. Windows come from logic input
`trigger_bit` (default D0, wired to the device's trigger line): `Trace.digital`.

ppk2-api's spike filter (the Power Profiler GUI's display smoothing: samples after an auto-range switch
replaced by a rolling average) is turned off by setting its weights to 1: it moves energy across each
range switch, and a device's stage edges are exactly where the range switches. (On range 4, above
≈ 0.77 A, the library still holds the first two samples after a switch at the previous value.)
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from pytest_edgehil.errors import InstrumentError, InstrumentTimeout, MeasurementError, StreamGap
from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.monitor import PowerMonitor, import_library
from pytest_edgehil.instruments.ppk2_protocol import SAMPLE_INTERVAL_S, counter_gap, full_scale_a

# No accuracy figure from Nordic was found (its pages give the range, 200 nA to 1 A, and the resolution):
# conservative, ±(0.5 % + 0.1 % of range) on each of the five auto-ranged shunts (full scales from the 14-bit
# codes, the top one at the PPK2's 1 A). The PPK2 reports no voltage: the trace carries the programmed one,
# good to ±50 mV, the one figure found (a third-party summary, applied-ee.github.io "Power Analyzer Tools").
_FULL_SCALES_A = (*(full_scale_a(r) for r in range(4)), 1.0)
ACCURACY = AccuracySpec(
    current_ranges=tuple(CurrentRange(fs, Accuracy(0.005, 0.001 * fs)) for fs in _FULL_SCALES_A),
    voltage=Accuracy(0.0, 50e-3), voltage_setpoint=Accuracy(0.0, 50e-3), autoranging=True,
    source="conservative: no Nordic accuracy figure found; source voltage ±50 mV from a third-party summary",
    conservative=True)

START_TIMEOUT_S = 2.0  # the stream must begin this soon after AVERAGE_START
QUIET_S = 0.5  # after AVERAGE_STOP, the stream has ended once nothing arrived for this long


class PPK2(PowerMonitor):
    model = "Nordic PPK2"
    library = "ppk2-api"
    min_sample_interval_s = SAMPLE_INTERVAL_S
    max_points = 60_000_000  # 10 min at 100 kS/s (host memory, 4 bytes a sample on the wire)
    keeps_pretrigger = True  # the stream starts at arm, before the first inference's readout
    voltage_range_v = (0.8, 5.0)
    max_current_a = 1.0
    digital_inputs = 8
    accuracy = ACCURACY
    voltage_measured = False  # the trace's voltage is the programmed one

    def __init__(self, port: str, *, trigger_bit: int = 0) -> None:
        module = import_library("ppk2_api.ppk2_api", "ppk2-api", self.model)
        self.resource = port
        self.trigger_bit = trigger_bit
        try:
            self._api: Any = module.PPK2_API(port, timeout=0.05, write_timeout=1)
        except Exception as exc:
            raise InstrumentError(f"{self.model} at {port}: cannot open the port: {exc}; check the USB cable "
                                  "and that no other program (nRF Connect) holds it") from exc
        if not self._api.get_modifiers():
            self._api.ser.close()
            raise InstrumentError(f"{self.model} at {port}: no calibration metadata came back (GET_META_DATA); "
                                  "is this port a PPK2?")
        self._api.spike_filter_alpha = self._api.spike_filter_alpha5 = 1.0
        self.idn = f"Nordic Semiconductor,PPK2,HW {self._api.modifiers.get('HW')},ppk2-api"
        self._voltage_v = 0.0
        self._chunks: list[bytes] = []
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._trace: Trace | None = None

    def supported_sample_interval_s(self, requested_s: float) -> float:
        return SAMPLE_INTERVAL_S  # fixed rate: a coarser request still streams at 100 kS/s

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self.check_supply(voltage_v, current_range_a)
        self.check_interval(sample_interval_s)
        self._api.use_source_meter()
        self._api.set_source_voltage(round(voltage_v * 1000))
        self._api.toggle_DUT_power("ON")
        self._voltage_v = voltage_v
        self._points = points

    def arm(self, source: str = "EXT") -> None:
        """Start streaming (the PPK2 has no trigger input: the digital channel places the windows)."""
        if not self._voltage_v:
            raise InstrumentError(f"{self.model} at {self.resource}: arm() called before configure()")
        self._chunks, self._trace = [], None
        api = self._api
        api.remainder = {"sequence": b"", "len": 0}
        api.rolling_avg = api.rolling_avg4 = api.prev_range = None
        api.after_spike = api.consecutive_range_samples = 0
        self._stop.clear()
        api.start_measuring()
        self._reader = threading.Thread(target=self._read, name="ppk2-reader", daemon=True)
        self._reader.start()
        # Armed once samples flow: a device run before that would be missing from the stream.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._chunks:
            if time.monotonic() > deadline:
                self._stop.set()
                raise InstrumentTimeout(f"{self.model} at {self.resource}: no samples within {START_TIMEOUT_S:g} s "
                                        "of AVERAGE_START; check that the PPK2 is in source mode and powered")
            time.sleep(0.002)

    def _read(self) -> None:
        ser = self._api.ser
        quiet_since: float | None = None
        while True:
            data = ser.read(max(1, ser.in_waiting))
            if data:
                self._chunks.append(data)
                quiet_since = None
            elif self._stop.is_set():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= QUIET_S:
                    return

    def wait_complete(self, timeout_s: float) -> None:
        """Stop the stream and read what is left (the device's RUN has answered: its activity is recorded)."""
        if self._reader is None:
            raise InstrumentError(f"{self.model} at {self.resource}: wait_complete() without arm()")
        self._api.stop_measuring()
        self._stop.set()
        self._reader.join(timeout_s)
        if self._reader.is_alive():
            raise InstrumentTimeout(f"{self.model} at {self.resource}: the stream did not end within {timeout_s:g} s "
                                    "of AVERAGE_STOP; check the USB link")
        self._reader = None
        self._trace = self._decode(b"".join(self._chunks))

    def _decode(self, raw: bytes) -> Trace:
        """The trace of a whole stream. StreamGap when its sample counter jumps: samples lost on the USB
        link would shorten every window after them (ppk2-api decodes what arrived as if contiguous), so the
        record is refused and the meter captures it again; MeasurementError when ppk2-api drops words."""
        gap = counter_gap(raw)
        if gap is not None:
            at, lost = gap
            raise StreamGap(f"{self.model} at {self.resource}: the sample counter jumps at sample {at} of "
                            f"{len(raw) // 4} ({lost} samples lost on the USB link, counted modulo 64), so the "
                            "time base after it is broken; capture again, and if it recurs connect the PPK2 "
                            "without a hub and keep other traffic off its USB bus")
        samples, bits = self._api.get_samples(raw)
        expected = len(raw) // 4
        if len(samples) != expected or len(bits) != expected:
            raise MeasurementError(f"{self.model} at {self.resource}: ppk2-api decoded {len(samples)} currents and "
                                   f"{len(bits)} logic samples from {expected} words: samples were dropped, so the "
                                   "time base is broken; capture again")
        current_a = np.asarray(samples[:expected], dtype=np.float64) * 1e-6
        digital = ((np.asarray(bits[:expected], dtype=np.int64) >> self.trigger_bit) & 1).astype(bool)
        rises = np.flatnonzero(digital[1:] & ~digital[:-1]) + 1
        return Trace(current_a, np.full(current_a.size, self._voltage_v), SAMPLE_INTERVAL_S,
                     int(rises[0]) if rises.size else 0, self.idn, digital=digital)

    def fetch_trace(self) -> Trace:
        if self._trace is None:
            raise InstrumentError(f"{self.model} at {self.resource}: fetch_trace() before a completed capture")
        return self._trace

    def close(self) -> None:
        self._stop.set()
        try:
            if self._voltage_v:
                self._api.stop_measuring()
                self._api.toggle_DUT_power("OFF")
        finally:
            self._api.ser.close()
