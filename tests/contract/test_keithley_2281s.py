"""The Keithley 2281S-20-6 as its Reference Manual (077114601, March 2019) writes it, sent as raw pyvisa
writes and queries. Section 7, "SCPI command reference": `:SENSe[n]:<function>:NPLCycles` (p. 7-120:
CONCurrent[:DC], 0.002 to 12 PLC at 50 Hz, 15 at 60 Hz, default 1) and `:DATA[n]:DATA? [<bufferElements>]`
(pp. 7-178/7-179: READing, SOURce, RELative; RELative is seconds since the first stored reading).
The capture sequence around the buffer read (`TRIG:SOUR BUS`, `TRAC:CLE`, `INIT`, `*TRG`) uses commands
whose own pages we could not check (docs/instruments.md lists them as unconfirmed).

Status model (Appendix D): the Operation Instrument Summary Event Register is summarised by bit 13 (ISUM)
of the Operation Event Register (p. D-11). Its own bit table (p. D-13) was not in the copies we could
search: idle = B10 is the Series 2280 Reference Manual's (077085503, p. D-20, the same status model: "while
[...] in the idle state, bit B10 (idle) of the Operation Instrument Summary Condition Register will be set.
When the instrument is taken out of the idle state, bit B10 clears."); waiting for trigger = B5 (32) and
measuring = B4 (16) are pymeasure's reading of the 2281S table."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.contract.conftest import Target

pytestmark = pytest.mark.instrument("keithley-2281s")

IDLE = 1 << 10  # B10, Series 2280 Reference Manual p. D-20
WAITING_FOR_TRIGGER = 1 << 5
MEASURING = 1 << 4
CONDITION = "STAT:OPER:INST:ISUM:COND?"


@pytest.mark.parametrize("header", ["SENS:CONC:NPLC", "SENSe:CONCurrent:NPLCycles", "sense:concurrent:dc:nplc"])
@pytest.mark.parametrize("value", ["0.002", "12", "1"])
def test_concurrent_nplc_takes_the_manuals_range_in_every_form(target: Target, header: str, value: str) -> None:
    target.check(f"{header} {value}")
    assert float(target.handle.query(f"{header}?")) == pytest.approx(float(value))


def test_concurrent_nplc_outside_the_range_is_refused(target: Target) -> None:
    # 16 PLC is past the maximum at either line frequency (12 at 50 Hz, 15 at 60 Hz).
    target.handle.write("*CLS")
    target.handle.write("SENS:CONC:NPLC 16")
    assert int(target.handle.query("SYST:ERR?").split(",")[0]) == -222
    assert target.handle.query("*OPC?") == "1"


def test_buffer_reads_back_reading_source_relative_triples(target: Target) -> None:
    points, nplc = 20, 0.05  # 1 ms per reading at 50 Hz
    for command in ("*RST", "*CLS", "ENTR:FUNC POW", "VOLT 3.3", "CURR 1", "OUTP ON", f"SENS:CONC:NPLC {nplc}",
                    f"TRAC:POIN {points}", "TRIG:SOUR BUS", "TRAC:CLE", "INIT", "*TRG"):
        target.check(command)
    try:
        values = np.array(target.handle.query_ascii_values('DATA:DATA? "READ,SOUR,REL"'))
        assert target.handle.query("SYST:ERR?") == '+0,"No error"'
    finally:
        target.check("OUTP OFF")
    assert values.size == 3 * points
    current_a, voltage_v, rel_s = values[0::3], values[1::3], values[2::3]
    assert np.median(voltage_v) == pytest.approx(3.3, rel=0.02)
    assert np.all(current_a >= -0.01) and np.all(current_a <= 1.05)
    assert rel_s[0] == pytest.approx(0.0, abs=1e-6)  # RELative: time since the first stored reading
    assert np.all(np.diff(rel_s) > 0)


def test_operation_instrument_summary_condition_reads_idle_waiting_and_idle_again(target: Target) -> None:
    def condition() -> int:
        return int(target.handle.query(CONDITION))

    for command in ("*RST", "*CLS", "ENTR:FUNC POW", "VOLT 3.3", "CURR 1", "OUTP ON", "SENS:CONC:NPLC 0.05",
                    "TRAC:POIN 10", "TRIG:SOUR BUS"):
        target.check(command)
    try:
        idle = condition()
        assert idle & IDLE and not idle & (WAITING_FOR_TRIGGER | MEASURING)
        target.check("TRAC:CLE")
        target.check("INIT")
        deadline = time.monotonic() + 2.0  # out of idle at once; in the trigger layer within moments
        while not condition() & WAITING_FOR_TRIGGER and time.monotonic() < deadline:
            time.sleep(0.005)
        waiting = condition()
        assert waiting & WAITING_FOR_TRIGGER and not waiting & IDLE
        target.check("*TRG")
        deadline = time.monotonic() + 5.0  # 10 readings at 1 ms, and their buffering
        while not condition() & IDLE and time.monotonic() < deadline:
            time.sleep(0.01)
        done = condition()
        assert done & IDLE and not done & (WAITING_FOR_TRIGGER | MEASURING)
    finally:
        target.check("OUTP OFF")
