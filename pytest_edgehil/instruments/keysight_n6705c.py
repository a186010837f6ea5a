"""Keysight N6705C DC power analyzer with an N6781A/N6785A source/measure unit: digitizer captures.

Modelled after the N6705 programming guide's digitizer ("scope") measurements:
`SENS:FUNC:CURR/VOLT ON`, `SENS:SWE:TINT` (sample interval), `SENS:SWE:POIN` (points),
`SENS:SWE:OFFS:POIN` (negative = pre-trigger points), `TRIG:ACQ:SOUR EXT|BUS`, `INIT:ACQ`, then
`FETC:ARR:CURR?` / `FETC:ARR:VOLT?` as float32 definite-length blocks (`FORM REAL`, `FORM:BORD NORM`
= big-endian, the reset default). The declarations below are the dialect: `ScpiAnalyzer` applies them
and the analyzer twin speaks them.

Modelled module: N6781A. It digitizes at 5.12 us with one function; with both voltage and current on
we take the conservative 10.24 us (the bench-facts rule for modules that cannot digitize both at
once), so below 10.24 us the driver digitizes current only and reports the programmed voltage.
"""

from __future__ import annotations

from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, IntervalGrid
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable, Value

MODEL = "Keysight N6705C + N6781A"
IDN = "Keysight Technologies,N6705C,MY56001234,D.04.07"

# The digitizer's clock: intervals are multiples of 5.12 us, from 5.12 us (one function) up.
INTERVALS = IntervalGrid(resolution_s=5.12e-6, min_s=5.12e-6, max_s=40000.0)
MIN_TINT_BOTH_FUNCTIONS_S = 10.24e-6
MAX_POINTS = 524288  # 512 Ki points per measured function
CURRENT_RANGES_A = (0.001, 0.1, 3.0)  # N6781A current measurement ranges
MAX_VOLTAGE_V = 20.0

SETTINGS = SettingTable([
    Setting("output", "OUTP", choices=("ON", "OFF"), kind=str, channel_list=True, reset="OFF",
            doc="output on: the device is powered through the SMU"),
    Setting("voltage_v", "VOLT", "V", float, 0.0, MAX_VOLTAGE_V, channel_list=True, reset=0.0,
            doc="supply voltage setpoint"),
    Setting("current_range_a", "SENS:CURR:RANG", "A", float, 1e-6, CURRENT_RANGES_A[-1], channel_list=True,
            reset=CURRENT_RANGES_A[-1],
            doc="current measurement range; the instrument picks the smallest range that holds it"),
    Setting("digitize_current", "SENS:FUNC:CURR", kind=str, choices=("ON", "OFF"), channel_list=True,
            reset="ON"),
    Setting("digitize_voltage", "SENS:FUNC:VOLT", kind=str, choices=("ON", "OFF"), channel_list=True,
            reset="OFF"),
    Setting("sample_interval_s", "SENS:SWE:TINT", "s", float, INTERVALS.min_s, INTERVALS.max_s,
            channel_list=True, reset=20.48e-6, doc="digitizer sample interval, rounded to a multiple of 5.12 us"),
    Setting("points", "SENS:SWE:POIN", "points", int, 1, MAX_POINTS, channel_list=True, reset=1024),
    Setting("offset_points", "SENS:SWE:OFFS:POIN", "points", int, -(MAX_POINTS - 1), 2_000_000_000,
            channel_list=True, reset=0, doc="trigger offset; negative = that many pre-trigger points"),
    Setting("trigger_source", "TRIG:ACQ:SOUR", kind=str, choices=("EXT", "BUS"), channel_list=True,
            reset="BUS"),
    Setting("data_format", "FORM", kind=str, choices=("ASC", "REAL"), reset="ASC"),
    Setting("byte_order", "FORM:BORD", kind=str, choices=("NORM", "SWAP"), reset="NORM"),
])


def instrument_tint(requested_s: float) -> Value:
    """The interval the digitizer runs at: the requested one rounded to its 5.12 us clock."""
    return INTERVALS.instrument_value(requested_s)


@register_analyzer(r"(Keysight|Agilent) Technologies", r"N6705[ABC]?\b")
class KeysightN6705C(ScpiAnalyzer):
    """Keysight N6705C + N6781A: current (and voltage) digitized in a triggered window."""

    model = MODEL
    reference_idn = IDN
    settings = SETTINGS
    interval_rule = INTERVALS
    current_ranges_a = CURRENT_RANGES_A
    roles = CaptureRoles(interval="sample_interval_s", pretrigger="offset_points", pretrigger_sign=-1,
                         digitize_current="digitize_current", digitize_voltage="digitize_voltage",
                         min_interval_both_s=MIN_TINT_BOTH_FUNCTIONS_S)
    start_commands = ("INIT:ACQ (@{channel})",)
    stop_command = "ABOR:ACQ (@{channel})"
    fetch_queries = (FetchQuery("FETC:ARR:CURR? (@{channel})", ("current",), binary=None),
                     FetchQuery("FETC:ARR:VOLT? (@{channel})", ("voltage",), binary=None))
    fetch_hint = ("check FORM:BORD on the instrument against the byte order the driver decodes with "
                  "(is_big_endian={big_endian}) and FORM REAL")
    status_query = "STAT:OPER:COND? (@{channel})"
    waiting_bit = 8  # WTG-meas
    measuring_bit = 16  # MEAS-active
    max_channel = 4
