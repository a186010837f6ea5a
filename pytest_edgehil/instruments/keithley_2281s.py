"""Keithley 2281S battery simulator / precision supply, in power-supply mode, reading its buffer.

The 2281S is a supply that measures, not a microsecond digitizer: its concurrent V/I readings are
integrated over `SENS:CONC:NPLC` power-line cycles and land in a buffer of at most 2500 points
(`TRAC:POIN`), read back as ASCII with `DATA:DATA? "READ,SOUR,REL"` (current, voltage, relative time
triples). We model its achievable reading period as NPLC / line frequency with 1 ms (0.05 PLC at
50 Hz) as the fastest: the instrument accepts NPLC down to 0.002 (the setting below takes the manual's
range, so the twin does too), but per-reading overhead keeps the buffered rate in the millisecond
class, so the driver's interval rule refuses anything faster than 1 ms. A capture needing a shorter interval raises
MeasurementError saying so, instead of returning a number the instrument could not have measured.
Its buffer starts at the trigger: no pre-trigger samples.
"""

from __future__ import annotations

from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, LineCycles
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable

MODEL = "Keithley 2281S"
IDN = "Keithley Instruments,2281S-20-6,04386580,02.03.00"

LINE_CYCLES = LineCycles(line_frequency_hz=50.0, min_nplc=0.05)  # fastest buffered reading: 1 ms
MAX_POINTS = 2500  # the buffer's capacity: "2,500 readings" (Reference Manual p. 7-178, :DATA[n]:CLEar:AUTO)
#: `:SENSe[n]:<function>:NPLCycles`, Reference Manual p. 7-120: 0.002 to 12 at 50 Hz (15 at 60 Hz), default 1.
MANUAL_NPLC = (0.002, 12.0)
#: `:SENSe[n]:CONCurrent[:DC]:RANGe`, Reference Manual p. 7-121: 10 mA, 100 mA, 1 A and 10 A; its autorange
#: (p. 7-122) is on by default and this driver never turns it off, so each reading is on the range that holds it.
MEASUREMENT_RANGES_A = (0.01, 0.1, 1.0, 10.0)
# The 2281S's accuracy table was not in the sources searched: conservative figures, ±(0.1 % + 0.05 % of range)
# per range, ±(0.05 % + 5 mV) for voltage. Replace them with the data sheet's.
ACCURACY = AccuracySpec(
    current_ranges=tuple(CurrentRange(r, Accuracy(0.001, 0.0005 * r)) for r in MEASUREMENT_RANGES_A),
    voltage=Accuracy(0.0005, 5e-3), voltage_setpoint=Accuracy(0.0005, 5e-3), autoranging=True,
    source="conservative: the 2281S accuracy table was not found; ranges from its Reference Manual p. 7-121",
    conservative=True)

# Model 2281S-20-6 Reference Manual (077114601, March 2019), checked line by line in docs/instruments.md.
# confirmed=False: the command's own page was not in the manual text we could check (pymeasure's 2281S
# driver and the 2280S family use them; the twin speaks them all the same).
SETTINGS = SettingTable([
    Setting("function", "ENTRy:FUNCtion", kind=str, choices=("POWer", "TEST", "SIMulator"), reset="POW",
            confirmed=False),
    Setting("output", "OUTPut[:STATe]", kind=str, choices=("ON", "OFF"), reset="OFF", confirmed=False),
    Setting("voltage_v", "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "V", float, 0.0, 20.0, reset=0.0,
            confirmed=False),
    # The current limit doubles as the measurement full scale.
    Setting("current_limit_a", "[SOURce:]CURRent[:LEVel][:IMMediate][:AMPLitude]", "A", float, 0.1, 6.1,
            reset=1.0, confirmed=False),
    # Confirmed (p. 7-120). The range is the instrument's; the driver's 1 ms floor is LINE_CYCLES's to enforce.
    Setting("nplc", "SENSe:CONCurrent[:DC]:NPLCycles", "PLC", float, *MANUAL_NPLC, reset=1.0),
    Setting("points", "TRACe:POINts", "points", int, 2, MAX_POINTS, reset=MAX_POINTS, confirmed=False),
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
    accuracy = ACCURACY
    roles = CaptureRoles(interval="nplc", current_range="current_limit_a", fixed=(("function", "POWER"),))
    start_commands = ("TRACe:CLEar", "INITiate[:IMMediate]")  # a fresh buffer for every capture
    stop_command = "ABORt"
    # The 2281S serves its buffer as text only; this is the ASCII path by necessity.
    fetch_queries = (FetchQuery('DATA:DATA? "READ,SOUR,REL"', ("current", "voltage", "time"), binary=False),)
    fetch_hint = 'the buffer read must be DATA:DATA? "READ,SOUR,REL" (current, voltage, time)'
    # The Operation Instrument Summary Condition Register (Reference Manual App. D: its summary is bit 13,
    # ISUM, of the Operation Event Register, p. D-11). Its bits: idle B10 from the Series 2280 Reference
    # Manual p. D-20 (the same status model); waiting for trigger B5 and measuring B4 as pymeasure's
    # 2281S driver lists them. Unconfirmed: the 2281S manual's own bit table (p. D-13) and this query's
    # page were not in the copies we could search (docs/instruments.md).
    status_query = "STATus:OPERation:INSTrument:ISUMmary:CONDition?"
    measure_queries = (("current", "MEASure:CURRent?"), ("voltage", "MEASure:VOLTage?"))
    unconfirmed_commands = ("TRACe:CLEar", "INITiate[:IMMediate]", "ABORt", "MEASure:CURRent",
                            "MEASure:VOLTage", "STATus:OPERation:INSTrument:ISUMmary:CONDition")
    waiting_bit = 32  # B5: in the trigger layer, waiting for a trigger event
    measuring_bit = 16  # B4: performing a measurement
    idle_bit = 1024  # B10: idle; clears when INITiate takes the instrument out of idle
