"""Keysight N6705C DC power analyzer with an N6781A/N6785A source/measure unit: digitizer captures.

Modelled after the N6705 programming guide's digitizer ("scope") measurements:
`SENS:FUNC:CURR/VOLT ON`, `SENS:SWE:TINT` (sample interval), `SENS:SWE:POIN` (points),
`SENS:SWE:OFFS:POIN` (negative = pre-trigger points), `TRIG:ACQ:SOUR EXT|BUS`, `INIT:ACQ`, then
`FETC:ARR:CURR?` / `FETC:ARR:VOLT?` as float32 definite-length blocks (`FORM REAL`, `FORM:BORD NORM`
= big-endian, the reset default). The declarations below are the dialect, each header written once as
the guide writes it (`SENSe:SWEep:POINts`): `ScpiAnalyzer` sends the short form and the analyzer twin
accepts every form SCPI allows. `TRIG:ACQ:SOUR EXT` fires only from a digital-port pin configured as
trigger input, so the driver makes pin `trigger_pin` one (`DIG:PIN1:FUNC TINP`, `DIG:PIN1:POL POS`)
before arming EXT.

Modelled module: N6781A. It digitizes at 5.12 us with one function; with both voltage and current on
we take the conservative 10.24 us (the bench-facts rule for modules that cannot digitize both at
once), so below 10.24 us the driver digitizes current only and reports the programmed voltage.
Longer intervals exist only on the guide's grid (`INTERVALS`): the driver plans with it, programs only
its values, and reads `SENS:SWE:TINT?` back, refusing a capture the instrument runs at another interval.
"""

from __future__ import annotations

from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, IntervalGrid
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable

MODEL = "Keysight N6705C + N6781A"
IDN = "Keysight Technologies,N6705C,MY56001234,D.04.07"

# The digitizer's interval grid. N6705C User's Guide, ch. 6 "Advanced Source, Measurement, and Control",
# the digitizer's time interval (SENS:SWE:TINT; p. 213 of the edition read): 5.12 us is the shortest
# interval with one parameter on an N678xA SMU; "time interval values from 10.24 up to 20.48 microseconds
# are rounded to the nearest 10.24-microsecond increment. Values above 20.48 microseconds are rounded to
# the nearest 20.48-microsecond increment when the resolution is set to RES20" (RES40: 40.96 us steps
# above 40.96 us). Planned at RES20, the resolution its table pairs with one to four parameters; the
# read-back check in `configure` refuses a capture run at RES40's coarser steps. Between 5.12 and
# 10.24 us the guide names no value: the grid holds only those two (not stated there, our reading).
INTERVALS = IntervalGrid(steps=((10.24e-6, 5.12e-6), (20.48e-6, 10.24e-6), (40000.0, 20.48e-6)),
                         min_s=5.12e-6, max_s=40000.0)
MIN_TINT_BOTH_FUNCTIONS_S = 10.24e-6
MAX_POINTS = 524288  # 512 Ki points per measured function
CURRENT_RANGES_A = (0.001, 0.1, 3.0)  # N6781A current measurement ranges
# N6781A measurement accuracy: N6700 Specifications Guide (N6700-90001) and the N6780 series SMU data sheet
# (5990-5829EN), "Performance specifications", measurement accuracy (1 year, 23 °C ± 5 °C): current
# 1 mA range 0.025 % + 100 nA, 100 mA range 0.025 % + 10 µA, 3 A range 0.03 % + 250 µA; voltage (20 V)
# 0.025 % + 1.8 mV, as measured and as programmed. The guide's p. 52, "Measurement Accuracy and Resolution
# (with shorter measurement intervals)", adds noise at short intervals (one conversion at 5.12 µs): random
# per sample, it is in the trace's own noise, which the meter estimates; it averages out over a window and is
# not added here. The accuracy rows were not in the copies searched when this was written: the figures are
# the data sheet's as quoted, to check against your edition.
ACCURACY = AccuracySpec(
    current_ranges=(CurrentRange(0.001, Accuracy(0.00025, 100e-9)), CurrentRange(0.1, Accuracy(0.00025, 10e-6)),
                    CurrentRange(3.0, Accuracy(0.0003, 250e-6))),
    voltage=Accuracy(0.00025, 1.8e-3), voltage_setpoint=Accuracy(0.00025, 1.8e-3),
    source="N6700 Specifications Guide (N6700-90001) / N6780 SMU data sheet (5990-5829EN), N6781A measurement "
           "accuracy; rows unverified here")
MAX_VOLTAGE_V = 20.0
DIGITAL_PINS = 7  # the rear digital port: pins 1-7
OUTPUTS = 4  # mainframe slots; a level trigger source names the output it watches
# Operating and Service Guide, "Select the Measurement Trigger Source": CURRent<1-4> / VOLTage<1-4>
# trigger when that output's current / voltage passes through the level (TRIG:ACQ:CURR, :SLOP).
# Headers confirmed from python-ivi's N6700 driver (trigger:acquire:current:level / :slope, sources
# curr<n>/volt<n>/pin<n>/ext/bus); the *RST values (level 0, slope POSitive, source BUS) from a copy of
# Keysight's *RST table for the same subsystem, not the N6705C guide itself: unconfirmed there
# (docs/instruments.md, "Where the dialects come from").
LEVEL_SOURCES = tuple(f"{quantity}{n}" for quantity in ("CURRent", "VOLTage") for n in range(1, OUTPUTS + 1))

SETTINGS = SettingTable([
    Setting("output", "OUTPut[:STATe]", choices=("ON", "OFF"), kind=str, channel_list=True, reset="OFF",
            doc="output on: the device is powered through the SMU"),
    Setting("voltage_v", "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "V", float, 0.0, MAX_VOLTAGE_V,
            channel_list=True, reset=0.0, doc="supply voltage setpoint"),
    Setting("current_range_a", "SENSe:CURRent[:DC]:RANGe[:UPPer]", "A", float, 1e-6, CURRENT_RANGES_A[-1],
            channel_list=True, reset=CURRENT_RANGES_A[-1],
            doc="current measurement range; the instrument picks the smallest range that holds it"),
    Setting("current_autorange", "SENSe:CURRent[:DC]:RANGe:AUTO", kind=str, choices=("ON", "OFF"),
            channel_list=True, reset="OFF", doc="seamless ranging (the driver programs a fixed range)"),
    Setting("digitize_current", "SENSe:FUNCtion:CURRent", kind=str, choices=("ON", "OFF"), channel_list=True,
            reset="ON"),
    Setting("digitize_voltage", "SENSe:FUNCtion:VOLTage", kind=str, choices=("ON", "OFF"), channel_list=True,
            reset="OFF"),
    Setting("sample_interval_s", "SENSe:SWEep:TINTerval", "s", float, INTERVALS.min_s, INTERVALS.max_s,
            channel_list=True, reset=20.48e-6,
            doc="digitizer sample interval; the instrument rounds it to its grid (INTERVALS)"),
    # Not sent by the driver (whose grid is RES20's); declared so the twin speaks it. The guide's example
    # sends it without a channel list. *RST value RES20: not found in the guide (our assumption).
    Setting("sample_interval_resolution", "SENSe:SWEep:TINTerval:RESolution", kind=str,
            choices=("RES20", "RES40"), reset="RES20",
            doc="time-interval resolution above 20.48 us: 20.48 us steps (RES20) or 40.96 us ones (RES40)"),
    Setting("points", "SENSe:SWEep:POINts", "points", int, 1, MAX_POINTS, channel_list=True, reset=1024),
    Setting("offset_points", "SENSe:SWEep:OFFSet:POINts", "points", int, -(MAX_POINTS - 1), 2_000_000_000,
            channel_list=True, reset=0, doc="trigger offset; negative = that many pre-trigger points"),
    Setting("trigger_source", "TRIGger:ACQuire:SOURce", kind=str,
            choices=("EXTernal", "BUS", *LEVEL_SOURCES), channel_list=True, reset="BUS",
            doc="EXTernal: any digital pin configured as trigger input (DIG:PIN<n>:FUNC TINP); "
                "CURRent<n>/VOLTage<n>: output n's current/voltage passing the level with the slope"),
    Setting("trigger_current_level_a", "TRIGger:ACQuire:CURRent[:LEVel]", "A", float, -CURRENT_RANGES_A[-1],
            CURRENT_RANGES_A[-1], channel_list=True, reset=0.0,
            doc="the level a CURRent<n> trigger source fires at"),
    Setting("trigger_current_slope", "TRIGger:ACQuire:CURRent:SLOPe", kind=str, choices=("POSitive", "NEGative"),
            channel_list=True, reset="POS", doc="POSitive: fire when the current rises through the level"),
    Setting("trigger_voltage_level_v", "TRIGger:ACQuire:VOLTage[:LEVel]", "V", float, 0.0, MAX_VOLTAGE_V,
            channel_list=True, reset=0.0, doc="the level a VOLTage<n> trigger source fires at"),
    Setting("trigger_voltage_slope", "TRIGger:ACQuire:VOLTage:SLOPe", kind=str, choices=("POSitive", "NEGative"),
            channel_list=True, reset="POS", doc="POSitive: fire when the voltage rises through the level"),
    Setting("trigger_pin_function", "[SOURce:]DIGital:PIN<n>:FUNCtion", kind=str,
            choices=("DIO", "DINPut", "TOUTput", "TINPut", "FAULt", "INHibit", "ONCouple", "OFFCouple"),
            reset="DIO", suffixes=DIGITAL_PINS, doc="what a digital-port pin does; TINPut = trigger input"),
    Setting("trigger_pin_polarity", "[SOURce:]DIGital:PIN<n>:POLarity", kind=str,
            choices=("POSitive", "NEGative"), reset="POS", suffixes=DIGITAL_PINS,
            doc="POSitive: a trigger input fires on the rising edge"),
    Setting("data_format", "FORMat[:DATA]", kind=str, choices=("ASCii", "REAL"), reset="ASC"),
    Setting("byte_order", "FORMat:BORDer", kind=str, choices=("NORMal", "SWAPped"), reset="NORM"),
])


@register_analyzer(r"(Keysight|Agilent) Technologies", r"N6705[ABC]?\b")
class KeysightN6705C(ScpiAnalyzer):
    """Keysight N6705C + N6781A: current (and voltage) digitized in a triggered window."""

    model = MODEL
    reference_idn = IDN
    settings = SETTINGS
    interval_rule = INTERVALS
    current_ranges_a = CURRENT_RANGES_A
    accuracy = ACCURACY
    roles = CaptureRoles(interval="sample_interval_s", pretrigger="offset_points", pretrigger_sign=-1,
                         digitize_current="digitize_current", digitize_voltage="digitize_voltage",
                         min_interval_both_s=MIN_TINT_BOTH_FUNCTIONS_S,
                         trigger_input=(("trigger_pin_function", "TINPut"), ("trigger_pin_polarity", "POSitive")),
                         level_triggers=(("CURR", "trigger_current_level_a", "trigger_current_slope"),
                                         ("VOLT", "trigger_voltage_level_v", "trigger_voltage_slope")))
    trigger_pin = 1  # the device's trigger line goes to pin 1 of the digital port
    start_commands = ("INITiate:ACQuire (@{channel})",)
    stop_command = "ABORt:ACQuire (@{channel})"
    fetch_queries = (FetchQuery("FETCh:ARRay:CURRent[:DC]? (@{channel})", ("current",), binary=None),
                     FetchQuery("FETCh:ARRay:VOLTage[:DC]? (@{channel})", ("voltage",), binary=None))
    measure_queries = (("current", "MEASure[:SCALar]:CURRent[:DC]? (@{channel})"),
                       ("voltage", "MEASure[:SCALar]:VOLTage[:DC]? (@{channel})"),
                       ("power", "MEASure[:SCALar]:POWer[:DC]? (@{channel})"))
    fetch_hint = ("check FORM:BORD on the instrument against the byte order the driver decodes with "
                  "(is_big_endian={big_endian}) and FORM REAL")
    status_query = "STATus:OPERation:CONDition? (@{channel})"
    # STAT:OPER:COND? bits (N6705C Operating and Service Guide p. 350, "Operation Status Group"): MEAS-active
    # is bit 5 (32), "measurement system is initiated"; bit 4 (16) is WTG-tran, the transient system's. Bit 3
    # WTG-meas (8) is the N6700C-series guide's (p. 309). CV (1) and OFF (4) share the register: read by mask.
    waiting_bit = 8  # WTG-meas
    measuring_bit = 32  # MEAS-active
    max_channel = 4
