"""Joulescope JS220 on Jetperch's `pyjoulescope_driver` (2.2.x): current, voltage and GPI on one time base.

The JS220 sits inline in the board's supply (it measures, it does not source: `configure` checks the
voltage lies within its 15 V range and leaves the supply to the lab). It streams current and voltage at
`h/fs` (1 MS/s at most, decimated on the host to 500/250/... kS/s) and, on the same sample counter, its
general-purpose inputs `s/gpi/N/!data` (1 bit a sample, 8 per byte, LSB first): GPI `trigger_gpi`
(default 0) wired to the device's trigger line becomes `Trace.digital`. Topics from the driver's
doc/js220.txt and its `pyjoulescope_driver.record` module. There is no twin: the USB protocol is reached
only through the vendor library (tests/test_monitors_hw.py runs against a real JS220 and skips without one).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from pytest_edgehil.errors import InstrumentError, InstrumentTimeout, MeasurementError
from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.monitor import PowerMonitor, import_library

FULL_RATE_HZ = 1_000_000  # JS220 output rate (record.py's default for a js220)
START_TIMEOUT_S = 2.0
#: The JS220's current ranges, A (its shunts: 1.11 Ω is the 18 mA range, 11.11 Ω the 1.8 mA one, Jetperch's
#: forum answers); it autoranges sample by sample.
CURRENT_RANGES_A = (18e-6, 180e-6, 1.8e-3, 18e-3, 180e-3, 10.0)
# The JS220 User's Guide (Rev 1.3, 2022-10-25) has a specifications section, but its accuracy table was not
# readable in the copies searched: conservative, ±(0.5 % + 0.1 % of range) per range and ±(0.5 % + 5 mV) for the
# voltage it measures. Replace them with the guide's table.
ACCURACY = AccuracySpec(
    current_ranges=tuple(CurrentRange(r, Accuracy(0.005, 0.001 * r)) for r in CURRENT_RANGES_A),
    voltage=Accuracy(0.005, 5e-3), voltage_setpoint=Accuracy(0.005, 5e-3), autoranging=True,
    source="conservative: the JS220 User's Guide accuracy table was not readable", conservative=True)


class Joulescope(PowerMonitor):
    model = "Joulescope JS220"
    library = "pyjoulescope_driver"
    min_sample_interval_s = 1.0 / FULL_RATE_HZ
    max_points = 200_000_000  # 200 s at 1 MS/s (host memory: 9 bytes a sample)
    keeps_pretrigger = True  # streams from arm on, before the first inference's readout
    voltage_range_v = (0.0, 15.0)  # inline: the lab's supply passes through it
    max_current_a = 10.0
    digital_inputs = 4
    accuracy = ACCURACY

    def __init__(self, address: str, *, trigger_gpi: int = 0) -> None:
        """`address`: the device's serial number, or "" / "any" for the only JS220 attached."""
        module = import_library("pyjoulescope_driver", "pyjoulescope_driver", self.model)
        self._driver: Any = module.Driver()
        paths = [p for p in self._driver.device_paths() if "js220" in p.lower()]
        wanted = [p for p in paths if address in ("", "any") or p.lower().endswith(address.lower())]
        if len(wanted) != 1:
            self._driver.finalize()
            raise InstrumentError(f"{self.model} {address or 'any'}: pyjoulescope_driver sees "
                                  f"{', '.join(paths) or 'no JS220'}; name one serial number in the lab file's "
                                  "monitor (\"joulescope:SERIAL\") and check the USB cable")
        self._path = wanted[0]
        self.resource = self._path
        self.trigger_gpi = trigger_gpi
        self._driver.open(self._path, mode="defaults")
        self.idn = f"Jetperch,JS220,{self._path.split('/')[-1]},pyjoulescope_driver"
        self._fs = FULL_RATE_HZ
        self._lock = threading.Lock()
        self._data: dict[str, list[tuple[int, np.ndarray]]] = {}
        self._trace: Trace | None = None
        self._armed = False
        self._configured = False

    def _topics(self) -> dict[str, str]:
        p = self._path
        return {"i": f"{p}/s/i/!data", "v": f"{p}/s/v/!data", "g": f"{p}/s/gpi/{self.trigger_gpi}/!data"}

    def supported_sample_interval_s(self, requested_s: float) -> float:
        # Host-side decimation by a power of two, never finer than the full rate.
        factor = 1
        while factor < 64 and requested_s >= 2 * factor / FULL_RATE_HZ:
            factor *= 2
        return factor / FULL_RATE_HZ

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self.check_supply(voltage_v, current_range_a)
        self.check_interval(sample_interval_s)
        self._fs = round(1.0 / sample_interval_s)
        d, p = self._driver, self._path
        d.publish(f"{p}/h/fs", self._fs)
        d.publish(f"{p}/s/i/range/mode", "auto")  # autoranging on every sample: a step never clips
        d.publish(f"{p}/s/v/range/mode", "auto")
        self._voltage_v, self._points, self._configured = voltage_v, points, True

    def _on_data(self, topic: str, value: dict[str, Any]) -> None:
        key = next(k for k, t in self._topics().items() if t == topic)
        sample_id = int(value["sample_id"]) // int(value.get("decimate_factor", 1) or 1)
        with self._lock:
            self._data.setdefault(key, []).append((sample_id, np.asarray(value["data"])))

    def arm(self, source: str = "EXT") -> None:
        """Start streaming current, voltage and the trigger GPI (the digital channel places the windows)."""
        if not self._configured:
            raise InstrumentError(f"{self.model} at {self.resource}: arm() called before configure()")
        self._data, self._trace = {}, None
        for topic in self._topics().values():
            self._driver.subscribe(topic, ["pub"], self._on_data)
            ctrl = topic.replace("/!data", "/ctrl")
            self._driver.publish(ctrl, 1, timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(self._data.get(k) for k in ("i", "v", "g")):
            if time.monotonic() > deadline:
                self._stop()
                raise InstrumentTimeout(f"{self.model} at {self.resource}: no current/voltage/GPI data within "
                                        f"{START_TIMEOUT_S:g} s of enabling the streams")
            time.sleep(0.002)
        self._armed = True

    def _stop(self) -> None:
        for topic in self._topics().values():
            self._driver.publish(topic.replace("/!data", "/ctrl"), 0, timeout=1.0)
            self._driver.unsubscribe(topic, self._on_data)

    def wait_complete(self, timeout_s: float) -> None:
        """Stop the streams (the device's RUN has answered) and align them on their sample counter."""
        if not self._armed:
            raise InstrumentError(f"{self.model} at {self.resource}: wait_complete() without arm()")
        self._stop()
        self._armed = False
        with self._lock:
            chunks = {k: list(v) for k, v in self._data.items()}
        self._trace = self._align(chunks)

    def _align(self, chunks: dict[str, list[tuple[int, np.ndarray]]]) -> Trace:
        """One Trace from the three streams: each chunk placed by its sample id; the common span kept."""
        series = {}
        for key in ("i", "v", "g"):
            parts = chunks.get(key, [])
            if not parts:
                raise MeasurementError(f"{self.model} at {self.resource}: the {key} stream delivered nothing; "
                                       "capture again")
            start = parts[0][0]
            values = [np.unpackbits(d.astype(np.uint8), bitorder="little") if key == "g" else d for _, d in parts]
            expected = start
            out = []
            for idx, ((sid, _), v) in enumerate(zip(parts, values)):
                if sid != expected:
                    raise MeasurementError(f"{self.model} at {self.resource}: the {key} stream skipped from sample "
                                           f"{expected} to {sid}: samples were lost, so the time base is broken; "
                                           "capture again (a slower h/fs or a less loaded USB bus)")
                if key == "g" and idx + 1 < len(parts):
                    v = v[:parts[idx + 1][0] - sid]  # a chunk's last byte may hold padding bits
                out.append(v)
                expected = sid + len(v)
            series[key] = (start, np.concatenate(out))
        # GPI bytes may carry up to 7 padding bits at each chunk's end: the current stream's length rules.
        lo = max(s for s, _ in series.values())
        hi = min(s + len(a) for s, a in series.values())
        if hi - lo < 2:
            raise MeasurementError(f"{self.model} at {self.resource}: current, voltage and GPI streams do not "
                                   "overlap; capture again")
        i, v, g = (a[lo - s:hi - s] for s, a in (series["i"], series["v"], series["g"]))
        digital = g.astype(bool)
        rises = np.flatnonzero(digital[1:] & ~digital[:-1]) + 1
        return Trace(i.astype(np.float64), v.astype(np.float64), 1.0 / self._fs,
                     int(rises[0]) if rises.size else 0, self.idn, digital=digital)

    def fetch_trace(self) -> Trace:
        if self._trace is None:
            raise InstrumentError(f"{self.model} at {self.resource}: fetch_trace() before a completed capture")
        return self._trace

    def close(self) -> None:
        try:
            if self._armed:
                self._stop()
            self._driver.close(self._path)
        finally:
            self._driver.finalize()
