"""Keysight N6705C DC power analyzer with an N6781A/N6785A source/measure unit: digitizer captures.

Modelled after the N6705 programming guide's digitizer ("scope") measurements:
`SENS:FUNC:CURR/VOLT ON`, `SENS:SWE:TINT` (sample interval), `SENS:SWE:POIN` (points),
`SENS:SWE:OFFS:POIN` (negative = pre-trigger points), `TRIG:ACQ:SOUR EXT|BUS`, `INIT:ACQ`, then
`FETC:ARR:CURR?` / `FETC:ARR:VOLT?` as float32 definite-length blocks (`FORM REAL`, `FORM:BORD NORM`
= big-endian, the reset default). The module constants below are the dialect; the analyzer twin
imports them to speak it.

Modelled module: N6781A. It digitizes at 5.12 us with one function; with both voltage and current on
we take the conservative 10.24 us (the bench-facts rule for modules that cannot digitize both at
once), so below 10.24 us the driver digitizes current only and reports the programmed voltage.
"""

from __future__ import annotations

import math

import numpy as np

from pytest_edgehil.errors import ConfigError, InstrumentError
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.driver import CaptureConfig, ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable, check_plausible

MODEL = "Keysight N6705C + N6781A"
IDN = "Keysight Technologies,N6705C,MY56001234,D.04.07"

TINT_RESOLUTION_S = 5.12e-6  # the digitizer's clock: intervals are multiples of this
MIN_TINT_ONE_FUNCTION_S = 5.12e-6
MIN_TINT_BOTH_FUNCTIONS_S = 10.24e-6
MAX_TINT_S = 40000.0
MAX_POINTS = 524288  # 512 Ki points per measured function
CURRENT_RANGES_A = (0.001, 0.1, 3.0)  # N6781A current measurement ranges
MAX_VOLTAGE_V = 20.0
CHANNELS = 4

# STAT:OPER:COND? bits of the N6705 (per channel).
STATUS_WAITING_FOR_TRIGGER = 8  # WTG-meas
STATUS_MEASURING = 16  # MEAS-active

INIT_COMMAND = "INIT:ACQ"
ABORT_COMMAND = "ABOR:ACQ"
STATUS_QUERY = "STAT:OPER:COND?"
FETCH_CURRENT_QUERY = "FETC:ARR:CURR?"
FETCH_VOLTAGE_QUERY = "FETC:ARR:VOLT?"

SETTINGS = SettingTable([
    Setting("output", "OUTP", choices=("ON", "OFF"), kind=str, channel_list=True,
            doc="output on: the device is powered through the SMU"),
    Setting("voltage_v", "VOLT", "V", float, 0.0, MAX_VOLTAGE_V, channel_list=True,
            doc="supply voltage setpoint"),
    Setting("current_range_a", "SENS:CURR:RANG", "A", float, 1e-6, CURRENT_RANGES_A[-1], channel_list=True,
            doc="current measurement range; the instrument picks the smallest range that holds it"),
    Setting("digitize_current", "SENS:FUNC:CURR", kind=str, choices=("ON", "OFF"), channel_list=True),
    Setting("digitize_voltage", "SENS:FUNC:VOLT", kind=str, choices=("ON", "OFF"), channel_list=True),
    Setting("sample_interval_s", "SENS:SWE:TINT", "s", float, MIN_TINT_ONE_FUNCTION_S, MAX_TINT_S,
            channel_list=True, doc="digitizer sample interval, rounded to a multiple of 5.12 us"),
    Setting("points", "SENS:SWE:POIN", "points", int, 1, MAX_POINTS, channel_list=True),
    Setting("offset_points", "SENS:SWE:OFFS:POIN", "points", int, -(MAX_POINTS - 1), 2_000_000_000,
            channel_list=True, doc="trigger offset; negative = that many pre-trigger points"),
    Setting("trigger_source", "TRIG:ACQ:SOUR", kind=str, choices=("EXT", "BUS"), channel_list=True),
    Setting("data_format", "FORM", kind=str, choices=("ASC", "REAL")),
    Setting("byte_order", "FORM:BORD", kind=str, choices=("NORM", "SWAP")),
])


def instrument_tint(requested_s: float) -> float:
    """The interval the digitizer runs at: the requested one rounded to its 5.12 us clock."""
    return max(1, round(requested_s / TINT_RESOLUTION_S)) * TINT_RESOLUTION_S


def select_current_range(requested_a: float) -> float:
    """The smallest current range that holds `requested_a` (the largest if none does)."""
    for range_a in CURRENT_RANGES_A:
        if requested_a <= range_a * (1 + 1e-9):
            return range_a
    return CURRENT_RANGES_A[-1]


@register_analyzer(r"(Keysight|Agilent) Technologies", r"N6705[ABC]?\b")
class KeysightN6705C(ScpiAnalyzer):
    """Keysight N6705C + N6781A: current (and voltage) digitized in a triggered window."""

    model = MODEL
    min_sample_interval_s = MIN_TINT_ONE_FUNCTION_S
    settings = SETTINGS
    status_query = STATUS_QUERY + " (@{channel})"
    waiting_bit = STATUS_WAITING_FOR_TRIGGER
    measuring_bit = STATUS_MEASURING
    max_channel = CHANNELS
    max_points = MAX_POINTS

    #: "REAL" (float32 binary blocks, the fast path) or "ASC" (comma-separated text, the fallback).
    transfer_format = "REAL"
    #: The byte order the driver programs and decodes with (NORM = big-endian, the reset default).
    byte_order = "NORM"

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        self._require("configure", "configured", "open", "complete", "armed")
        if not 0 <= pretrigger_points < points:
            raise ConfigError(f"{self.model} at {self.resource}: pretrigger_points = {pretrigger_points} "
                              f"must be 0 to points - 1 ({points - 1})")
        # Voltage is digitized too only where the module can do both at this rate (see module doc).
        digitize_voltage = sample_interval_s >= MIN_TINT_BOTH_FUNCTIONS_S - 1e-12
        self.apply("voltage_v", voltage_v)
        self.apply("output", "ON")
        self.apply("current_range_a", current_range_a)
        self.apply("digitize_current", "ON")
        self.apply("digitize_voltage", "ON" if digitize_voltage else "OFF")
        self.apply("sample_interval_s", sample_interval_s)
        self.apply("points", points)
        self.apply("offset_points", -pretrigger_points)
        self.apply("data_format", self.transfer_format)
        self.apply("byte_order", self.byte_order)
        self._configured(CaptureConfig(
            voltage_v=float(voltage_v),
            current_range_a=float(self.read_setting("current_range_a")),
            sample_interval_s=float(self.read_setting("sample_interval_s")),
            points=points, pretrigger_points=pretrigger_points, digitize_voltage=digitize_voltage))

    def supported_sample_interval_s(self, requested_s: float) -> float:
        steps = math.ceil(max(requested_s, MIN_TINT_ONE_FUNCTION_S) / TINT_RESOLUTION_S - 1e-9)
        return steps * TINT_RESOLUTION_S

    def set_transfer_format(self, data_format: str) -> None:
        """Switch between binary ("REAL") and text ("ASC") array transfers."""
        self.transfer_format = str(self.apply("data_format", data_format))

    def _start_acquisition(self, source: str) -> None:
        self.apply("trigger_source", source)
        self.send(f"{INIT_COMMAND} (@{self.channel})")

    def _fetch_array(self, query: str) -> np.ndarray:
        command = f"{query} (@{self.channel})"
        if self.transfer_format == "ASC":
            return self.link.query_ascii_floats(command)
        return self.link.query_float32_block(command, big_endian=self.byte_order == "NORM")

    def _fetch(self, capture: CaptureConfig) -> Trace:
        where = f"{self.model} at {self.resource} ch{self.channel}"
        hint = ("check FORM:BORD on the instrument against the byte order the driver decodes with "
                f"(is_big_endian={self.byte_order == 'NORM'}) and FORM REAL")
        current_a = self._fetch_array(FETCH_CURRENT_QUERY)
        check_plausible(current_a, full_scale=capture.current_range_a, what="current", where=where, hint=hint)
        if capture.digitize_voltage:
            voltage_v = self._fetch_array(FETCH_VOLTAGE_QUERY)
            check_plausible(voltage_v, full_scale=MAX_VOLTAGE_V, what="voltage", where=where, hint=hint,
                            expected=capture.voltage_v)
        else:
            voltage_v = np.full(current_a.shape, capture.voltage_v)
        self.drain_errors(after=FETCH_CURRENT_QUERY)
        if current_a.size != capture.points:
            raise InstrumentError(f"{where}: fetched {current_a.size} points but {capture.points} were "
                              f"configured; another program changed SENS:SWE:POIN, configure again")
        return Trace(current_a=current_a, voltage_v=voltage_v, sample_interval_s=capture.sample_interval_s,
                     trigger_index=capture.pretrigger_points, idn=self.idn)
