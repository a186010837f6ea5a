"""Rohde & Schwarz NGM202 power supply: FastLog captures of (voltage, current) pairs up to 500 kS/s.

Checked against R&S manual text (docs/instruments.md cites the sections): `FLOG[:STATe] 1|0` starts
and stops FastLog and `FLOG:DATA?` returns a definite-length block of float32 (V, I) pairs, little-endian.
`INST:NSEL <ch>`, `VOLT`, `OUTP`, `SENS:CURR:RANG` and the MEASure queries follow R&S conventions
but were not found in the manual text we could check: they are declared `confirmed=False` (settings)
or listed in `unconfirmed_commands`. `FLOG:SRAT` (its six rates) and `FLOG:TARG SCPI` are what R&S's
own NGM20x FastLog example sends; still `confirmed=False` (an example is not the manual).

Simplification (see docs/instruments.md): a real FastLog streams to SCPI in half-second blocks with
no trigger, from the moment `FLOG 1` is sent. So that all drivers share one capture model, this
dialect adds a bounded, triggered window: `FLOG:POIN` (points), `FLOG:PRET:POIN` (pre-trigger points)
and `FLOG:TRIG:SOUR IMM|EXT|BUS`. IMMediate, the reset value, is the manual's behaviour (data from
`FLOG 1` on, so a client written from the manual gets data); the driver selects EXT (the rear digital
I/O trigger input) or BUS (*TRG) before each `FLOG 1`. On real hardware EXT/BUS map onto cutting the
stream at the trigger flag; the wire format of the data is the manual's.
"""

from __future__ import annotations

from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, RateTable
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable

MODEL = "R&S NGM202"
IDN = "Rohde&Schwarz,NGM202,3638.4472k02/101234,03.034"

# FastLog rates as R&S's own NGM20x FastLog example lists them (Rohde-Schwarz/Examples,
# Powersupplies/Python/RsInstrument/RSInstrument_NGM200_FastLog.py: "S100 / S001k / S010k / S050k /
# S250k / S500K"); an earlier table of halved rates (S125K, S62K5, ...) had no source and is gone.
# Not found in the user manual text we could check, hence confirmed=False below.
SAMPLE_RATES = {
    "S500K": 2e-6, "S250K": 4e-6, "S050K": 20e-6, "S010K": 100e-6, "S001K": 1e-3, "S100": 10e-3,
}
MAX_POINTS = 4_194_304
CURRENT_RANGES_A = (0.01, 0.1, 1.0, 10.0)
CHANNELS = 2

# confirmed=False: not found in the maker's manual text we could check (docs/instruments.md lists
# the sections that were); the twin speaks them all the same.
SETTINGS = SettingTable([
    Setting("channel", "INSTrument:NSELect", "", int, 1, CHANNELS, reset=1, confirmed=False),
    Setting("output", "OUTPut[:STATe]", kind=str, choices=("ON", "OFF"), reset="OFF", confirmed=False),
    Setting("voltage_v", "[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]", "V", float, 0.0, 20.0, reset=0.0,
            confirmed=False),
    Setting("current_range_a", "SENSe:CURRent[:DC]:RANGe", "A", float, 1e-6, CURRENT_RANGES_A[-1],
            reset=CURRENT_RANGES_A[-1], confirmed=False),
    Setting("sample_rate", "FLOG:SRATe", kind=str, choices=tuple(SAMPLE_RATES), reset="S500K", confirmed=False),
    # Where FastLog data go: SCPI = FLOG:DATA? (R&S's FastLog example sends `FLOG:TARGet SCPI` before
    # `FLOG 1`); USB = a file on a stick. The *RST value is not confirmed; the driver always sends SCPI.
    Setting("target", "FLOG:TARGet", kind=str, choices=("SCPI", "USB"), reset="SCPI", confirmed=False),
    # Our bounded, triggered FastLog window: not in the manual (see the module docstring).
    Setting("points", "FLOG:POINts", "points", int, 1, MAX_POINTS, reset=1000, confirmed=False),
    Setting("pretrigger_points", "FLOG:PRETrigger:POINts", "points", int, 0, MAX_POINTS - 1, reset=0,
            confirmed=False),
    # IMMediate (the reset value) is the manual's FastLog: data from `FLOG 1` on, no trigger. EXT/BUS
    # are our window, which the driver selects before every `FLOG 1`.
    Setting("trigger_source", "FLOG:TRIGger:SOURce", kind=str, choices=("IMMediate", "EXTernal", "BUS"),
            reset="IMM", confirmed=False),
])


@register_analyzer(r"Rohde\s*&\s*Schwarz", r"NGM20[12]\b")
class RsNgm202(ScpiAnalyzer):
    """R&S NGM202 FastLog: (V, I) pairs digitized together at up to 500 kS/s."""

    model = MODEL
    reference_idn = IDN
    settings = SETTINGS
    interval_rule = RateTable(SAMPLE_RATES, what="FastLog")
    current_ranges_a = CURRENT_RANGES_A
    roles = CaptureRoles(interval="sample_rate", pretrigger="pretrigger_points", channel_select="channel",
                         fixed=(("target", "SCPI"),))
    start_commands = ("FLOG[:STATe] 1",)
    stop_command = "FLOG[:STATe] 0"
    # FastLog data are little-endian float32 (V, I) pairs, whatever FORM says.
    fetch_queries = (FetchQuery("FLOG:DATA?", ("voltage", "current"), binary=True, big_endian=False),)
    fetch_hint = "FastLog data are little-endian float32 (V, I) pairs; decode with is_big_endian=False"
    status_query = "STATus:OPERation:CONDition?"
    measure_queries = (("current", "MEASure[:SCALar]:CURRent[:DC]?"),
                       ("voltage", "MEASure[:SCALar][:VOLTage][:DC]?"),
                       ("power", "MEASure[:SCALar]:POWer?"))
    # FLOG[:STATe] and FLOG:DATA? are the manual's; these are not confirmed (docs/instruments.md).
    unconfirmed_commands = ("STATus:OPERation:CONDition", "MEASure[:SCALar]:CURRent[:DC]",
                            "MEASure[:SCALar][:VOLTage][:DC]", "MEASure[:SCALar]:POWer")
    waiting_bit = 32
    measuring_bit = 16
    max_channel = CHANNELS
