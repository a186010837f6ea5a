"""Keithley 2281S battery simulator / precision supply, in power-supply mode, reading its buffer.

The 2281S is a supply that measures, not a microsecond digitizer: its concurrent V/I readings are
integrated over `SENS:CONC:NPLC` power-line cycles and land in a buffer of at most 2500 points
(`TRAC:POIN`), read back as ASCII with `DATA:DATA? "READ,SOUR,REL"` (current, voltage, relative time
triples). We model its achievable reading period as NPLC / line frequency with 1 ms (0.05 PLC at
50 Hz) as the fastest: the manual accepts NPLC down to 0.002, but per-reading overhead keeps the
buffered rate in the millisecond class. A capture needing a shorter interval raises
MeasurementError saying so, instead of returning a number the instrument could not have measured.
Its buffer starts at the trigger: no pre-trigger samples.
"""

from __future__ import annotations

from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, LineCycles
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable

MODEL = "Keithley 2281S"
IDN = "Keithley Instruments,2281S-20-6,04386580,02.03.00"

LINE_CYCLES = LineCycles(line_frequency_hz=50.0, min_nplc=0.05)  # fastest buffered reading: 1 ms
MAX_POINTS = 2500

# confirmed=False: not found in the reference manual text we could check (docs/instruments.md).
SETTINGS = SettingTable([
    Setting("function", "ENTRy:FUNCtion", kind=str, choices=("POWER", "TEST", "SIMULATOR"), reset="POWER"),
    Setting("output", "OUTPut[:STATe]", kind=str, choices=("ON", "OFF"), reset="OFF"),
    Setting("voltage_v", "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "V", float, 0.0, 20.0, reset=0.0),
    # The current limit doubles as the measurement full scale.
    Setting("current_limit_a", "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "A", float, 0.1, 6.1,
            reset=1.0),
    Setting("nplc", "SENSe:CONCurrent:NPLCycles", "PLC", float, LINE_CYCLES.min_nplc, 12.0, reset=1.0),
    Setting("points", "TRACe:POINts", "points", int, 2, MAX_POINTS, reset=MAX_POINTS),
    Setting("trigger_source", "TRIGger:SOURce", kind=str, choices=("EXTernal", "BUS"), reset="BUS",
            confirmed=False),
])


def interval_for_nplc(nplc: float) -> float:
    return LINE_CYCLES.interval_s(nplc)


@register_analyzer(r"Keithley", r"(MODEL\s+)?2281S")
class Keithley2281S(ScpiAnalyzer):
    """Keithley 2281S: millisecond-class buffered readings, no pre-trigger."""

    model = MODEL
    reference_idn = IDN
    settings = SETTINGS
    interval_rule = LINE_CYCLES
    roles = CaptureRoles(interval="nplc", current_range="current_limit_a", fixed=(("function", "POWER"),))
    start_commands = ("TRACe:CLEar", "INITiate[:IMMediate]")  # a fresh buffer for every capture
    stop_command = "ABORt"
    # The 2281S serves its buffer as text only; this is the ASCII path by necessity.
    fetch_queries = (FetchQuery('DATA:DATA? "READ,SOUR,REL"', ("current", "voltage", "time"), binary=False),)
    fetch_hint = 'the buffer read must be DATA:DATA? "READ,SOUR,REL" (current, voltage, time)'
    status_query = "STATus:OPERation:INSTrument:ISUMmary:CONDition?"
    measure_queries = (("current", "MEASure:CURRent?"), ("voltage", "MEASure:VOLTage?"))
    unconfirmed_commands = ("TRACe:CLEar", "INITiate[:IMMediate]", "ABORt", "MEASure:CURRent",
                            "MEASure:VOLTage")
    waiting_bit = 32
    measuring_bit = 16
