"""Qoitech Otii Arc/Ace on Qoitech's `otii_tcp_client`: main current and voltage, GPI1 on the same clock.

The Otii desktop application (or Otii Server) owns the USB device and serves a TCP/JSON API; this driver
is its client. The lab names the server as `monitor = "otii:HOST:PORT"` (default 127.0.0.1:1905) and the
first Arc/Ace the server lists is used. A recording holds the main current `mc`, main voltage `mv` (analog:
first-sample timestamp, interval, values) and the digital input `i1` (GPI1: a list of level changes with
timestamps, `Recording.get_channel_data`), all on the recording's clock, so GPI1 wired to the device's
trigger line becomes `Trace.digital`, sampled at the current's sample instants. Sample rate: Qoitech's
own examples set `set_channel_samplerate("mc", 50000)`; the Arc's rates are 1, 4 and 50 kS/s here (check
your model's datasheet: the Ace is faster, the driver takes what the server accepts). Automation needs an
Otii Automation licence, reserved by `OtiiClient.connect` (credentials file or OTII_USERNAME/PASSWORD).
No twin: tests/test_monitors_hw.py runs against a server and skips without one.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pytest_edgehil.errors import InstrumentError, MeasurementError
from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.monitor import PowerMonitor, import_library

RATES_HZ = (50_000, 4_000, 1_000)
DEFAULT_PORT = 1905
# Otii Arc main channel: ±(0.1 % + 50 nA) for low currents (Qoitech, "How accurate is your low current
# measurement?", 2021-02-22; the Ace: ±(0.05 % + 25 nA), so the Arc's figures hold for either); the low range
# reaches about 19 mA (Elektor's review: 5 nA resolution below 20 mA, 82 µA up to 2.7 A, 1.5 mA to 5 A). The
# high ranges' accuracy and the voltage's were not found: conservative ±(0.5 % + 0.5 mA), ±(0.5 % + 5 mV).
ACCURACY = AccuracySpec(
    current_ranges=(CurrentRange(0.019, Accuracy(0.001, 50e-9)), CurrentRange(5.0, Accuracy(0.005, 0.5e-3))),
    voltage=Accuracy(0.005, 5e-3), voltage_setpoint=Accuracy(0.005, 5e-3), autoranging=True,
    source="Qoitech: low range ±(0.1 % + 50 nA); high range and voltage conservative (not found)",
    conservative=True)


def parse_address(address: str) -> tuple[str, int]:
    """"HOST[:PORT]" → (host, port); "" means the local Otii server."""
    host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    try:
        return (host or "127.0.0.1"), int(port) if port else DEFAULT_PORT
    except ValueError:
        raise InstrumentError(f"Otii server address {address!r}: write HOST or HOST:PORT "
                              f"(e.g. \"otii:127.0.0.1:{DEFAULT_PORT}\")") from None


class Otii(PowerMonitor):
    model = "Qoitech Otii Arc"
    library = "otii_tcp_client"
    min_sample_interval_s = 1.0 / RATES_HZ[0]
    max_points = 50_000 * 600  # 10 min at 50 kS/s
    keeps_pretrigger = True  # the recording starts at arm, before the first inference's readout
    voltage_range_v = (0.5, 5.0)  # main output (Arc); set_max_current takes 0.001-5 A
    max_current_a = 5.0
    digital_inputs = 2
    accuracy = ACCURACY

    def __init__(self, address: str, *, trigger_input: str = "i1") -> None:
        module = import_library("otii_tcp_client.otii_client", "otii_tcp_client", self.model)
        host, port = parse_address(address)
        self.resource = f"{host}:{port}"
        self.trigger_input = trigger_input
        try:
            self._client: Any = module.OtiiClient()
            self._otii: Any = self._client.connect(host=host, port=port, try_for_seconds=3)
            devices = self._otii.get_devices(timeout=3)
        except Exception as exc:
            raise InstrumentError(f"{self.model} at {self.resource}: cannot reach the Otii server ({exc}); start "
                                  "the Otii application or Otii Server with TCP enabled, and an Automation "
                                  "licence available") from exc
        if not devices:
            self._client.disconnect()
            raise InstrumentError(f"{self.model} at {self.resource}: the Otii server lists no Arc or Ace; check "
                                  "the USB cable and that the device shows in the Otii application")
        self._arc = devices[0]
        self.idn = f"Qoitech,{self._arc.type},{self._arc.name},otii_tcp_client"
        self._project: Any = None
        self._trace: Trace | None = None
        self._configured = False

    def supported_sample_interval_s(self, requested_s: float) -> float:
        fitting = [r for r in RATES_HZ if 1.0 / r >= requested_s * (1 - 1e-9)]
        return 1.0 / (fitting[0] if fitting else RATES_HZ[-1])

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self.check_supply(voltage_v, current_range_a)
        self.check_interval(sample_interval_s)
        arc = self._arc
        for channel in ("mc", "mv", self.trigger_input):
            arc.enable_channel(channel, True)
        for channel in ("mc", "mv"):
            arc.set_channel_samplerate(channel, round(1.0 / sample_interval_s))
        arc.set_main_voltage(voltage_v)
        arc.set_max_current(min(self.max_current_a, max(0.001, 1.5 * current_range_a)))
        arc.set_main(True)
        self._project = self._otii.get_active_project() or self._otii.create_project()
        self._configured = True

    def arm(self, source: str = "EXT") -> None:
        """Start a recording (the Otii has no trigger input: GPI1 places the windows)."""
        if not self._configured:
            raise InstrumentError(f"{self.model} at {self.resource}: arm() called before configure()")
        self._trace = None
        self._project.start_recording()
        time.sleep(0.05)  # the server starts the recording asynchronously; the readout comes later anyway

    def wait_complete(self, timeout_s: float) -> None:
        """Stop the recording (the RUN has answered) and read its channels."""
        if self._project is None:
            raise InstrumentError(f"{self.model} at {self.resource}: wait_complete() without arm()")
        self._project.stop_recording()
        recording = self._project.get_last_recording()
        if recording is None:
            raise MeasurementError(f"{self.model} at {self.resource}: the server kept no recording; capture again")
        self._trace = self._read(recording)

    def _read(self, recording: Any) -> Trace:
        dev = self._arc.id
        count = min(recording.get_channel_data_count(dev, "mc"), recording.get_channel_data_count(dev, "mv"))
        if count < 2:
            raise MeasurementError(f"{self.model} at {self.resource}: the recording holds {count} samples")
        mc = recording.get_channel_data(dev, "mc", 0, count)
        mv = recording.get_channel_data(dev, "mv", 0, count)
        if abs(mc["timestamp"] - mv["timestamp"]) > mc["interval"] / 2 or mc["interval"] != mv["interval"]:
            raise MeasurementError(f"{self.model} at {self.resource}: mc and mv are not sampled together "
                                   f"({mc['timestamp']} s / {mc['interval']} s vs {mv['timestamp']} s / "
                                   f"{mv['interval']} s); set both to one sample rate")
        n_changes = recording.get_channel_data_count(dev, self.trigger_input)
        changes = recording.get_channel_data(dev, self.trigger_input, 0, n_changes)["values"]
        t = mc["timestamp"] + np.arange(count) * mc["interval"]
        digital = digital_from_changes(t, [(c["timestamp"], bool(c["value"])) for c in changes])
        rises = np.flatnonzero(digital[1:] & ~digital[:-1]) + 1
        return Trace(np.asarray(mc["values"], dtype=np.float64), np.asarray(mv["values"], dtype=np.float64),
                     float(mc["interval"]), int(rises[0]) if rises.size else 0, self.idn, digital=digital)

    def fetch_trace(self) -> Trace:
        if self._trace is None:
            raise InstrumentError(f"{self.model} at {self.resource}: fetch_trace() before a completed capture")
        return self._trace

    def close(self) -> None:
        try:
            if self._configured:
                self._arc.set_main(False)
        finally:
            self._client.disconnect()


def digital_from_changes(time_s: np.ndarray, changes: list[tuple[float, bool]]) -> np.ndarray:
    """The level at each sample instant from a list of (timestamp s, new level), sorted by time: what a
    digital input sampled with the current reads (low before the first change)."""
    if not changes:
        return np.zeros(time_s.size, dtype=bool)
    stamps = np.array([c[0] for c in changes])
    levels = np.array([c[1] for c in changes], dtype=bool)
    k = np.searchsorted(stamps, time_s, side="right") - 1
    return np.where(k >= 0, levels[np.clip(k, 0, None)], False)
