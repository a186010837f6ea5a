"""Keithley 2281S battery simulator / precision supply, in power-supply mode, reading its buffer.

The 2281S is a supply that measures, not a microsecond digitizer: its concurrent V/I readings are
integrated over `SENS:CONC:NPLC` power-line cycles and land in a buffer of at most 2500 points
(`TRAC:POIN`), read back as ASCII with `DATA:DATA? "READ,SOUR,REL"` (current, voltage, relative time
triples). We model its achievable reading period as NPLC / line frequency with 1 ms (0.05 PLC at
50 Hz) as the fastest: the manual accepts NPLC down to 0.002, but per-reading overhead keeps the
buffered rate in the millisecond class. A capture needing a shorter interval raises
MeasurementError saying so, instead of returning a number the instrument could not have measured.
"""

from __future__ import annotations

import numpy as np

from pytest_edgehil.errors import ConfigError, InstrumentError, MeasurementError
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.driver import CaptureConfig, ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable, check_plausible

MODEL = "Keithley 2281S"
IDN = "Keithley Instruments,2281S-20-6,04386580,02.03.00"

LINE_FREQUENCY_HZ = 50.0
MIN_NPLC = 0.05  # modelled fastest buffered reading: 1 ms at 50 Hz
MAX_NPLC = 12.0
MIN_SAMPLE_INTERVAL_S = MIN_NPLC / LINE_FREQUENCY_HZ
MIN_POINTS, MAX_POINTS = 2, 2500
MAX_VOLTAGE_V = 20.0
CURRENT_LIMIT_RANGE_A = (0.1, 6.1)  # the current limit doubles as the measurement full scale

# STAT:OPER:INST:ISUM:COND? bits of the 2281S.
STATUS_MEASURING = 16
STATUS_WAITING_FOR_TRIGGER = 32

CLEAR_BUFFER_COMMAND = "TRAC:CLE"
INIT_COMMAND = "INIT"
STATUS_QUERY = "STAT:OPER:INST:ISUM:COND?"
FETCH_QUERY = 'DATA:DATA? "READ,SOUR,REL"'
FETCH_HEADER = "DATA:DATA"

SETTINGS = SettingTable([
    Setting("function", "ENTR:FUNC", kind=str, choices=("POWER", "TEST", "SIMULATOR")),
    Setting("output", "OUTP", kind=str, choices=("ON", "OFF")),
    Setting("voltage_v", "VOLT", "V", float, 0.0, MAX_VOLTAGE_V),
    Setting("current_limit_a", "CURR", "A", float, *CURRENT_LIMIT_RANGE_A),
    Setting("nplc", "SENS:CONC:NPLC", "PLC", float, MIN_NPLC, MAX_NPLC),
    Setting("points", "TRAC:POIN", "points", int, MIN_POINTS, MAX_POINTS),
    Setting("trigger_source", "TRIG:SOUR", kind=str, choices=("EXT", "BUS")),
])


def interval_for_nplc(nplc: float) -> float:
    return nplc / LINE_FREQUENCY_HZ


@register_analyzer(r"Keithley", r"(MODEL\s+)?2281S")
class Keithley2281S(ScpiAnalyzer):
    """Keithley 2281S: millisecond-class buffered readings, no pre-trigger."""

    model = MODEL
    min_sample_interval_s = MIN_SAMPLE_INTERVAL_S
    settings = SETTINGS
    status_query = STATUS_QUERY
    waiting_bit = STATUS_WAITING_FOR_TRIGGER
    measuring_bit = STATUS_MEASURING
    max_points = MAX_POINTS

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self._require("configure", "configured", "open", "complete", "armed")
        where = f"{self.model} at {self.resource}"
        if sample_interval_s < MIN_SAMPLE_INTERVAL_S * (1 - 1e-9):
            raise MeasurementError(
                f"{where} reads at most every {MIN_SAMPLE_INTERVAL_S * 1e3:g} ms; a "
                f"{sample_interval_s * 1e6:g} us sample interval is shorter than it can resolve. Use a "
                f"digitizing analyzer (N6705C + N678xA, NGM202) for this window, or measure a longer one")
        if pretrigger_points:
            raise ConfigError(f"{where}: its buffer starts at the trigger and keeps no pre-trigger "
                              f"samples; use pretrigger_points=0 (asked for {pretrigger_points})")
        self.apply("function", "POWER")
        self.apply("voltage_v", voltage_v)
        self.apply("current_limit_a", current_range_a)
        self.apply("nplc", sample_interval_s * LINE_FREQUENCY_HZ)
        self.apply("points", points)
        self.apply("output", "ON")
        self._configured(CaptureConfig(
            voltage_v=float(voltage_v), current_range_a=float(current_range_a),
            sample_interval_s=interval_for_nplc(float(self.read_setting("nplc"))), points=points,
            pretrigger_points=0, digitize_voltage=True))

    def _start_acquisition(self, source: str) -> None:
        self.apply("trigger_source", source)
        self.send(CLEAR_BUFFER_COMMAND)
        self.send(INIT_COMMAND)

    def _fetch(self, capture: CaptureConfig) -> Trace:
        where = f"{self.model} at {self.resource}"
        # The 2281S serves its buffer as text only; this is the ASCII path by necessity.
        values = self.link.query_ascii_floats(FETCH_QUERY)
        self.drain_errors(after=FETCH_QUERY)
        if values.size != 3 * capture.points:
            raise InstrumentError(f"{where}: buffer returned {values.size} values, expected "
                                  f"{3 * capture.points} (current, voltage, time triples); configure again")
        current_a, voltage_v, rel_time_s = values[0::3].copy(), values[1::3].copy(), values[2::3]
        hint = "the buffer read must be DATA:DATA? \"READ,SOUR,REL\" (current, voltage, time)"
        check_plausible(current_a, full_scale=capture.current_range_a, what="current", where=where,
                        hint=hint)
        check_plausible(voltage_v, full_scale=MAX_VOLTAGE_V, what="voltage", where=where, hint=hint,
                        expected=capture.voltage_v)
        if rel_time_s.size > 1:
            spacing_s = float(np.median(np.diff(rel_time_s)))
            if abs(spacing_s - capture.sample_interval_s) > 0.01 * capture.sample_interval_s:
                raise InstrumentError(f"{where}: readings are {spacing_s * 1e3:g} ms apart but "
                                      f"{capture.sample_interval_s * 1e3:g} ms was configured; check "
                                      f"SENS:CONC:NPLC and the line frequency setting")
        return Trace(current_a=current_a, voltage_v=voltage_v, sample_interval_s=capture.sample_interval_s,
                     trigger_index=0, idn=self.idn)
