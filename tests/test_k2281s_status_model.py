"""The Keithley 2281S's status model as its manuals write it: the twin follows the instrument, not the driver,
and the driver reads "complete" only from the idle state. (The raw-client check of the register itself is
in tests/contract/test_keithley_2281s.py, so that it runs on a real 2281S too.)

Sources, checked 2026-12 (docs/instruments.md, "Where the dialects come from"):
- Model 2281S-20-6 Reference Manual (077114601, March 2019), Appendix D "Status model": the Operation Event
  Register's bit 13 (ISUM) summarises the Operation Instrument Summary Event Register (p. D-11); *CLS clears
  that register with the others (p. D-6). The page that lists that register's own bits (D-13) was not in
  the stored copies we could search.
- Series 2280 Reference Manual (077085503, March 2019; the same status model, register for register),
  p. D-20 "Condition registers": "while the Series 2280 is in the idle state, bit B10 (idle) of the
  Operation Instrument Summary Condition Register will be set. When the instrument is taken out of the
  idle state, bit B10 clears."
- The bit table as pymeasure's 2281S driver states it ("Operation Instrument Summary Event Register
  definition"): MEASUREMENT = 16 (performing measurement), TRIGGER = 32 (waiting for trigger), ARM = 64
  (waiting for arm event), IDLE = 1024.

The expectations below are those numbers, written out here, not read from our driver: the analyzer twin
must follow the instrument, so that a driver declaring a wrong bit fails against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa

from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.keithley_2281s import Keithley2281S
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

IDLE = 1 << 10  # B10, Series 2280 Reference Manual p. D-20
WAITING_FOR_TRIGGER = 1 << 5  # TRIGGER = 32 (pymeasure's reading of the 2281S table)
MEASURING = 1 << 4  # MEASUREMENT = 16
CONDITION = "STAT:OPER:INST:ISUM:COND?"


@pytest.fixture
def timeline() -> ActivityTimeline:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    timeline.append(StageSpan("idle", 0.0, 0.5, 0.01))
    return timeline


@pytest.fixture
def raw(timeline: ActivityTimeline) -> Iterator[tuple[AnalyzerTwin, pyvisa.resources.MessageBasedResource]]:
    with AnalyzerTwin(timeline, dialect="keithley-2281s") as twin:
        rm = pyvisa.ResourceManager("@py")
        handle = rm.open_resource(twin.resource, read_termination="\n", write_termination="\n", timeout=5000)
        try:
            yield twin, handle
        finally:
            handle.close()


def _condition(handle: pyvisa.resources.MessageBasedResource) -> int:
    return int(handle.query(CONDITION))


def test_the_twin_answers_the_manuals_bits_whatever_the_driver_declares(raw, monkeypatch) -> None:
    """A driver that declared a wrong bit passed against a twin that read its bits from the driver."""
    monkeypatch.setattr(Keithley2281S, "waiting_bit", 8)
    monkeypatch.setattr(Keithley2281S, "measuring_bit", 2)
    _, handle = raw
    for command in ("*RST", "OUTP ON", "SENS:CONC:NPLC 0.05", "TRAC:POIN 10", "TRIG:SOUR BUS", "TRAC:CLE", "INIT"):
        handle.write(command)
    assert _condition(handle) & WAITING_FOR_TRIGGER
    handle.write("ABOR")
    handle.write("OUTP OFF")


def test_the_driver_does_not_call_a_capture_complete_before_the_instrument_is_idle(timeline) -> None:
    """Between INIT and the trigger layer (the twin's arming time) the instrument is neither idle nor
    waiting: the driver's status must not read that as a completed capture (it used to: 'neither waiting nor
    measuring' meant complete, and a buffer read then would have found no readings)."""
    with AnalyzerTwin(timeline, dialect="keithley-2281s", arm_latency_s=0.5) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        try:
            analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=1e-3, points=10)
            assert analyzer.acquisition_status() == "complete"  # idle, before any capture
            analyzer.send("TRIG:SOUR BUS")
            analyzer.send("TRAC:CLE")
            analyzer.send("INIT")
            assert analyzer.acquisition_status() == "arming"
            analyzer.send("ABOR")
        finally:
            analyzer.close()
