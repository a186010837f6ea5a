"""Rohde & Schwarz NGM202 power supply: FastLog captures of (voltage, current) pairs up to 500 kS/s.

From the NGM user manual: `INST:NSEL <ch>` selects the channel, `VOLT`, `OUTP`, `SENS:CURR:RANG`,
`FLOG:SRAT S500K|S250K|...` picks the FastLog rate, `FLOG:STAT 1` starts it and `FLOG:DATA?` returns
a definite-length block of little-endian float32 (V, I) pairs.

Simplification (see docs/instruments.md): a real FastLog streams to SCPI in half-second blocks with
no trigger. So that all drivers share one capture model, this dialect adds a bounded, triggered window:
`FLOG:POIN` (points), `FLOG:PRET:POIN` (pre-trigger points) and `FLOG:TRIG:SOUR EXT|BUS` (the rear
digital I/O trigger input, or *TRG). On real hardware those map onto cutting the stream at the
trigger flag; the wire format of the data is the manual's.
"""

from __future__ import annotations

from pytest_edgehil.errors import ConfigError, InstrumentError
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.driver import CaptureConfig, ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable, check_plausible

MODEL = "R&S NGM202"
IDN = "Rohde&Schwarz,NGM202,3638.4472k02/101234,03.034"

# FastLog rates: 500 kS/s halved down to ~15 S/s; the code names are the instrument's.
SAMPLE_RATES = {
    "S500K": 2e-6, "S250K": 4e-6, "S125K": 8e-6, "S62K5": 16e-6, "S31K25": 32e-6, "S15K625": 64e-6,
    "S7K812": 128e-6, "S3K906": 256e-6, "S1K953": 512e-6, "S976": 1.024e-3, "S488": 2.048e-3,
    "S244": 4.096e-3, "S122": 8.192e-3, "S61": 16.384e-3, "S30": 32.768e-3, "S15": 65.536e-3,
}
MIN_SAMPLE_INTERVAL_S = SAMPLE_RATES["S500K"]
MAX_POINTS = 4_194_304
CURRENT_RANGES_A = (0.01, 0.1, 1.0, 10.0)
MAX_VOLTAGE_V = 20.0
CHANNELS = 2

# STAT:OPER:COND? bits (SCPI-99 operation register).
STATUS_MEASURING = 16
STATUS_WAITING_FOR_TRIGGER = 32

START_COMMAND = "FLOG:STAT 1"
STOP_COMMAND = "FLOG:STAT 0"
STATUS_QUERY = "STAT:OPER:COND?"
FETCH_QUERY = "FLOG:DATA?"
FETCH_BIG_ENDIAN = False  # FastLog data are little-endian float32, whatever FORM says

SETTINGS = SettingTable([
    Setting("channel", "INST:NSEL", "", int, 1, CHANNELS),
    Setting("output", "OUTP", kind=str, choices=("ON", "OFF")),
    Setting("voltage_v", "VOLT", "V", float, 0.0, MAX_VOLTAGE_V),
    Setting("current_range_a", "SENS:CURR:RANG", "A", float, 1e-6, CURRENT_RANGES_A[-1]),
    Setting("sample_rate", "FLOG:SRAT", kind=str, choices=tuple(SAMPLE_RATES)),
    Setting("points", "FLOG:POIN", "points", int, 1, MAX_POINTS),
    Setting("pretrigger_points", "FLOG:PRET:POIN", "points", int, 0, MAX_POINTS - 1),
    Setting("trigger_source", "FLOG:TRIG:SOUR", kind=str, choices=("EXT", "BUS")),
])


def select_current_range(requested_a: float) -> float:
    for range_a in CURRENT_RANGES_A:
        if requested_a <= range_a * (1 + 1e-9):
            return range_a
    return CURRENT_RANGES_A[-1]


def rate_for_interval(sample_interval_s: float, *, model: str = MODEL) -> str:
    """The FastLog rate code whose interval is `sample_interval_s`; ConfigError listing them if none."""
    for code, interval_s in SAMPLE_RATES.items():
        if abs(sample_interval_s - interval_s) <= 1e-6 * interval_s:
            return code
    listed = ", ".join(f"{v * 1e6:g} us" for v in SAMPLE_RATES.values())
    raise ConfigError(f"{model}: FastLog cannot sample every {sample_interval_s * 1e6:g} us; it runs at "
                      f"fixed rates only: {listed} (the driver does not round to the nearest one)")


@register_analyzer(r"Rohde\s*&\s*Schwarz", r"NGM20[12]\b")
class RsNgm202(ScpiAnalyzer):
    """R&S NGM202 FastLog: (V, I) pairs digitized together at up to 500 kS/s."""

    model = MODEL
    min_sample_interval_s = MIN_SAMPLE_INTERVAL_S
    settings = SETTINGS
    status_query = STATUS_QUERY
    waiting_bit = STATUS_WAITING_FOR_TRIGGER
    measuring_bit = STATUS_MEASURING
    max_channel = CHANNELS
    max_points = MAX_POINTS
    #: FastLog blocks are little-endian; an attribute so a test can make the classic slip on purpose.
    fetch_big_endian = FETCH_BIG_ENDIAN

    def supported_sample_interval_s(self, requested_s: float) -> float:
        for interval_s in sorted(SAMPLE_RATES.values()):
            if interval_s >= requested_s * (1 - 1e-6):
                return interval_s
        raise ConfigError(f"{self.model}: no FastLog rate is as slow as one sample every "
                          f"{requested_s:g} s; the slowest is {max(SAMPLE_RATES.values()):g} s")

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self._require("configure", "configured", "open", "complete", "armed")
        if not 0 <= pretrigger_points < points:
            raise ConfigError(f"{self.model} at {self.resource}: pretrigger_points = {pretrigger_points} "
                              f"must be 0 to points - 1 ({points - 1})")
        rate = rate_for_interval(sample_interval_s, model=f"{self.model} at {self.resource}")
        self.apply("channel", self.channel)
        self.apply("voltage_v", voltage_v)
        self.apply("output", "ON")
        self.apply("current_range_a", current_range_a)
        self.apply("sample_rate", rate)
        self.apply("points", points)
        self.apply("pretrigger_points", pretrigger_points)
        self._configured(CaptureConfig(
            voltage_v=float(voltage_v), current_range_a=float(self.read_setting("current_range_a")),
            sample_interval_s=SAMPLE_RATES[rate], points=points, pretrigger_points=pretrigger_points,
            digitize_voltage=True))

    def _start_acquisition(self, source: str) -> None:
        self.apply("trigger_source", source)
        self.send(START_COMMAND)

    def _fetch(self, capture: CaptureConfig) -> Trace:
        where = f"{self.model} at {self.resource} ch{self.channel}"
        pairs = self.link.query_float32_block(FETCH_QUERY, big_endian=self.fetch_big_endian)
        self.drain_errors(after=FETCH_QUERY)
        if pairs.size != 2 * capture.points:
            raise InstrumentError(f"{where}: FLOG:DATA? returned {pairs.size} values, expected "
                                  f"{2 * capture.points} (V, I pairs); configure again")
        voltage_v, current_a = pairs[0::2].copy(), pairs[1::2].copy()
        hint = "FastLog data are little-endian float32 (V, I) pairs; decode with is_big_endian=False"
        check_plausible(current_a, full_scale=capture.current_range_a, what="current", where=where,
                        hint=hint)
        check_plausible(voltage_v, full_scale=MAX_VOLTAGE_V, what="voltage", where=where, hint=hint,
                        expected=capture.voltage_v)
        return Trace(current_a=current_a, voltage_v=voltage_v, sample_interval_s=capture.sample_interval_s,
                     trigger_index=capture.pretrigger_points, idn=self.idn)
