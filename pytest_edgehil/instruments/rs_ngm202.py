"""Rohde & Schwarz NGM202 power supply: FastLog records of (voltage, current) pairs up to 500 kS/s.

Only documented FastLog commands (docs/instruments.md cites the sources): `FLOG:SRATe`, `FLOG:TARGet
SCPI`, `FLOG[:STATe] 1|0` and the 250 ms chunks flagged by bit 12 of
`STATus:OPERation:INSTrument:ISUMmary<n>` and read with `FLOG:DATA?` (little-endian float32 V, I pairs),
as R&S's own NGM20x FastLog example uses them. FastLog has no trigger: the record starts when `FLOG 1`
is sent, so `arm()` starts the stream and a reader thread (`fastlog_reader`) that collects chunks until
the capture's `points` pairs are held; a lost chunk is refused (`StreamGap`), never returned as a
shorter trace. The trace comes back with `trigger_located=False`: where the device's RUN sits in it is
found from the trace itself (`measure.run_start`), not from a trigger. The window commands this driver
used before (`FLOG:POIN`, `FLOG:PRET:POIN`, `FLOG:TRIG:SOUR`) appear in no R&S document and are gone.

`INST:NSEL`, `VOLT`, `OUTP`, `SENS:CURR:RANG` and the MEASure queries follow R&S conventions but were
not found in the manual text we could check: declared `confirmed=False` or listed in
`unconfirmed_commands`.
"""

from __future__ import annotations

import time

from pytest_edgehil.errors import ConfigError, InstrumentError, InstrumentTimeout
from pytest_edgehil.instruments.accuracy import Accuracy, AccuracySpec, CurrentRange
from pytest_edgehil.instruments.base import Trace
from pytest_edgehil.instruments.dialect import CaptureRoles, FetchQuery, RateTable
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.fastlog_reader import CHUNK_PERIOD_S, FastLogReader
from pytest_edgehil.instruments.registry import register_analyzer
from pytest_edgehil.instruments.scpi import Setting, SettingTable
from pytest_edgehil.instruments.scpi_header import parse_header, short_command

MODEL = "R&S NGM202"
IDN = "Rohde&Schwarz,NGM202,3638.4472k02/101234,03.034"

# FastLog rates as R&S's own NGM20x FastLog example lists them (Rohde-Schwarz/Examples,
# Powersupplies/Python/RsInstrument/RSInstrument_NGM200_FastLog.py: "S100 / S001k / S010k / S050k /
# S250k / S500K"); an earlier table of halved rates (S125K, S62K5, ...) had no source and is gone.
# Not found in the user manual text we could check, hence confirmed=False below.
SAMPLE_RATES = {
    "S500K": 2e-6, "S250K": 4e-6, "S050K": 20e-6, "S010K": 100e-6, "S001K": 1e-3, "S100": 10e-3,
}
#: The most pairs one capture collects (the driver's memory bound: 32 MiB of float64 pairs).
MAX_POINTS = 4_194_304
CURRENT_RANGES_A = (0.01, 0.1, 1.0, 10.0)
# The NGM200 data sheet's readback accuracy was not in the sources searched: conservative figures, looser than
# the instrument is thought to meet, ±(0.1 % + 0.05 % of range) per range and ±(0.05 % + 5 mV) for voltage
# (FastLog's pairs carry the measured voltage). Replace them with your edition's table.
ACCURACY = AccuracySpec(
    current_ranges=tuple(CurrentRange(r, Accuracy(0.001, 0.0005 * r)) for r in CURRENT_RANGES_A),
    voltage=Accuracy(0.0005, 5e-3), voltage_setpoint=Accuracy(0.0005, 5e-3),
    source="conservative: the NGM200 data sheet's readback accuracy was not found", conservative=True)
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
])

# The chunk flag lives in the channel's instrument summary register (ISUMmary1 for output 1).
_ISUM = "STATus:OPERation:INSTrument:ISUMmary<n>"


@register_analyzer(r"Rohde\s*&\s*Schwarz", r"NGM20[12]\b")
class RsNgm202(ScpiAnalyzer):
    """R&S NGM202 FastLog: (V, I) pairs digitized together at up to 500 kS/s, streamed from `arm()`."""

    model = MODEL
    reference_idn = IDN
    settings = SETTINGS
    interval_rule = RateTable(SAMPLE_RATES, what="FastLog")
    current_ranges_a = CURRENT_RANGES_A
    accuracy = ACCURACY
    roles = CaptureRoles(interval="sample_rate", channel_select="channel", fixed=(("target", "SCPI"),),
                         points="", trigger_source="")
    max_points = MAX_POINTS
    # The stream holds everything from FLOG 1 on, so the first readout (before the device's trigger
    # instant) is in it: what pre-trigger samples are for.
    keeps_pretrigger = True
    # Host latency between FLOG 1 and the device's RUN that a capture must hold on top of the run.
    start_latency_s = 0.2
    chunk_period_s = CHUNK_PERIOD_S
    start_commands = ("FLOG[:STATe] 1",)
    stop_command = "FLOG[:STATe] 0"
    fetch_queries = (FetchQuery("FLOG:DATA?", ("voltage", "current"), binary=True, big_endian=False),)
    fetch_hint = "FastLog data are little-endian float32 (V, I) pairs; decode with is_big_endian=False"
    status_query = f"{_ISUM}:CONDition?"
    status_event_query = f"{_ISUM}:EVENt?"
    measure_queries = (("current", "MEASure[:SCALar]:CURRent[:DC]?"),
                       ("voltage", "MEASure[:SCALar][:VOLTage][:DC]?"),
                       ("power", "MEASure[:SCALar]:POWer?"))
    unconfirmed_commands = ("MEASure[:SCALar]:CURRent[:DC]", "MEASure[:SCALar][:VOLTage][:DC]",
                            "MEASure[:SCALar]:POWer")
    waiting_bit = 0  # FastLog never waits for a trigger
    measuring_bit = 0
    max_channel = CHANNELS

    _reader: FastLogReader | None = None

    def configure(self, *, voltage_v: float, current_range_a: float, sample_interval_s: float,
                  points: int, pretrigger_points: int = 0) -> None:
        """As `ScpiAnalyzer.configure`; `points` pairs are collected from `FLOG 1` on. Pre-trigger points
        need no setting: the stream starts before the device does (ConfigError if not below `points`)."""
        self._end_stream()
        if not 0 < points <= MAX_POINTS or not 0 <= pretrigger_points < points:
            raise ConfigError(f"{self.model} at {self.resource}: points = {points} must be 1 to {MAX_POINTS} "
                              f"and pretrigger_points = {pretrigger_points} 0 to points - 1")
        super().configure(voltage_v=voltage_v, current_range_a=current_range_a,
                          sample_interval_s=sample_interval_s, points=points, pretrigger_points=0)

    def arm(self, source: str = "EXT") -> None:
        """Start FastLog and the reader. FastLog has no trigger input: EXT and BUS both start the stream
        now; the run is placed in the trace afterwards (`Trace.trigger_located` is False)."""
        self._require("arm", "configured", "armed", "complete")
        if source.upper() not in ("EXT", "BUS"):
            raise ConfigError(f"{self.model} at {self.resource}: trigger source {source!r} is not supported; "
                              f"use EXT or BUS (both start the FastLog stream at once)")
        assert self.capture is not None  # set with the "configured" state
        self._end_stream()
        channel = self.channel
        started_s = time.monotonic()
        self.send(short_command(self.start_commands[0]))
        self._reader = FastLogReader(
            self.link, status_query=parse_header(_ISUM + ":CONDition").short(channel) + "?",
            data_query=short_command(self.fetch_queries[0].query), points=self.capture.points,
            started_s=started_s, where=f"{self.model} at {self.resource} ch{channel}",
            chunk_period_s=self.chunk_period_s, big_endian=self._big_endian(self.fetch_queries[0]))
        self._reader.start()
        self._state = "armed"

    def trigger_now(self) -> None:
        raise ConfigError(f"{self.model} at {self.resource}: FastLog has no software trigger; the stream "
                          f"started with arm(), and the run is placed from the trace")

    def acquisition_status(self) -> str:
        """'measuring' while the reader collects chunks, 'complete' once it holds the capture."""
        return "measuring" if self._reader is not None and self._reader.running else "complete"

    def wait_complete(self, timeout_s: float) -> None:
        self._require("wait_complete", "armed", "complete")
        reader = self._reader
        if reader is None:
            raise InstrumentError(f"{self.model} at {self.resource}: no FastLog stream is running; arm() first")
        if not reader.join(timeout_s):
            held = reader.pairs
            self._end_stream()
            raise InstrumentTimeout(
                f"{self.model} at {self.resource} ch{self.channel}: FastLog held {held} of "
                f"{self.capture.points if self.capture else 0} pairs after {timeout_s:g} s (a chunk comes "
                f"every {self.chunk_period_s * 1e3:g} ms); wait longer, collect fewer points, or check that "
                f"FLOG:TARGet is SCPI, that FastLog runs (SYST:ERR?) and the VISA connection (pyvisa-info)")
        self._end_stream()
        reader.result()  # raises the reader's error (a gap, a bad reply) now, not at fetch
        self._state = "complete"

    def fetch_trace(self) -> Trace:
        """The first `points` pairs since `FLOG 1`; t = 0 is the stream's first sample, not a trigger."""
        self._require("fetch_trace", "complete")
        assert self.capture is not None and self._reader is not None
        values = self._reader.result()
        if values.size < 2 * self.capture.points:
            raise InstrumentError(f"{self.model} at {self.resource}: FastLog returned {values.size // 2} pairs, "
                                  f"fewer than the {self.capture.points} configured; arm and wait again")
        command = short_command(self.fetch_queries[0].query)
        columns = {"voltage": values[0::2].copy(), "current": values[1::2].copy()}
        return self._checked_trace(self.capture, columns, {"voltage": command, "current": command},
                                   trigger_index=0, trigger_located=False)

    def abort(self) -> None:
        self._require("abort", "armed", "complete")
        self._end_stream()
        self._state = "configured"

    def close(self) -> None:
        if self._state != "closed":
            self._end_stream()
        super().close()

    def _end_stream(self) -> None:
        """Stop the reader (it owns the link while it runs), then FastLog itself, checking SYST:ERR?."""
        reader = self._reader
        if reader is None or self._state == "closed":
            return
        stopped = not reader.running
        reader.stop()
        if not stopped or self._state == "armed":
            self.send(short_command(self.stop_command))

