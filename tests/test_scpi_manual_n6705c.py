"""The N6705C twin driven by a client written from Keysight's manuals (`tests/scpi_manual_client.py`), never
through our driver: what the guide says each digitizer command does, and what it says the instrument refuses.
Each expected value is the manual's (section in the comment), not the twin's or the driver's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan
from tests import scpi_manual_client as manual
from tests.scpi_manual_client import ManualSession

IDLE_W, ACTIVE_W, SUPPLY_V = 0.033, 0.33, 3.3  # 10 mA idle, 100 mA active at 3.3 V


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
    bench.append(StageSpan("idle", 0.0, 0.05, IDLE_W))
    return bench


@pytest.fixture
def twin(timeline: ActivityTimeline) -> Iterator[AnalyzerTwin]:
    with AnalyzerTwin(timeline, dialect="keysight-n6705c", seed=3) as started:
        yield started


@pytest.fixture
def session(twin: AnalyzerTwin) -> Iterator[ManualSession]:
    opened = ManualSession.open(pyvisa.ResourceManager("@py"), twin.resource)
    try:
        yield opened
    finally:
        opened.close()


def program(session: ManualSession, *commands: str) -> None:
    """Send each command and require an empty error queue after it (no `*OPC?`: INIT is overlapped)."""
    for command in commands:
        session.write(command)
        assert session.errors() == [], command


CAPTURE = ("*RST", "*CLS", "VOLT 3.3,(@1)", "OUTP ON,(@1)", "SENS:SWE:POIN 256,(@1)",
           "SENS:SWE:TINT 2.048E-5,(@1)", "FORM REAL", "TRIG:ACQ:SOUR BUS,(@1)")


# --- Operation Status Group (N6705C Operating and Service Guide, ch. 7, "Status Tutorial", p. 350) ------------

def test_operation_condition_reports_the_output_state_bits(session: ManualSession) -> None:
    # Bit 2 OFF (4): "Output is programmed off" (the *RST state); bit 0 CV (1): "Output is in constant
    # voltage" (an output at its setpoint, drawing far less than its limit).
    program(session, "*RST", "*CLS")
    assert session.status() & manual.N6705C_OFF
    program(session, "VOLT 3.3,(@1)", "OUTP ON,(@1)")
    bits = session.status()
    assert bits & manual.N6705C_CV and not bits & manual.N6705C_OFF


def test_an_initiated_acquisition_sets_meas_active_not_the_transient_bit(session: ManualSession) -> None:
    # Bit 5 MEAS-active (32): "Measurement system is initiated"; bit 4 (16) is WTG-tran, the *transient*
    # system waiting for a trigger, which no INIT:ACQ sets. Bit 3 (8, WTG-meas in the N6700C-series table
    # p. 309; "not used" in the N6705C's) may be set while the trigger is awaited.
    program(session, *CAPTURE, "INIT:ACQ (@1)")
    waiting = session.status()
    assert waiting & manual.N6705C_MEAS_ACTIVE
    assert not waiting & (manual.N6705C_WTG_TRAN | manual.N6705C_TRAN_ACTIVE)
    program(session, "*TRG")
    session.query_float32_block("FETC:ARR:CURR? (@1)", big_endian=True)  # FETCh waits for the capture
    assert session.errors() == []
    done = session.status()
    assert not done & (manual.N6705C_MEAS_ACTIVE | manual.N6705C_WTG_MEAS)  # back to idle
    assert done & manual.N6705C_CV


# --- *OPC? and pending operations (Keysight's *OPC text: pending until "all triggered actions are completed
# and the trigger system returns to the Idle state"; *OPC? holds off subsequent commands until then) ---------

def test_opc_query_waits_for_an_initiated_acquisition_to_return_to_idle(
        session: ManualSession, twin: AnalyzerTwin, timeline: ActivityTimeline) -> None:
    program(session, *CAPTURE[:-1], "DIG:PIN1:FUNC TINP", "DIG:PIN1:POL POS", "TRIG:ACQ:SOUR EXT,(@1)",
            "INIT:ACQ (@1)")

    def device() -> None:  # a trigger pulse 0.3 s (real) later
        time.sleep(0.3)
        start = timeline.end_s
        timeline.append(StageSpan("run", start, start + 0.002, ACTIVE_W, trigger_high=True, run_index=0))
        timeline.append(StageSpan("idle", start + 0.002, start + 0.05, IDLE_W))

    player = threading.Thread(target=device, daemon=True)
    player.start()
    assert session.query("*OPC?") == "1"
    # Answered only once the capture was complete (read at once, before anything else can finish it): its data
    # are there and the trigger system is idle.
    assert twin.last_capture is not None, "*OPC? answered before the acquisition's trigger came"
    player.join()
    assert not session.status() & manual.N6705C_MEAS_ACTIVE


def test_opc_query_does_not_answer_while_a_bus_acquisition_waits_for_its_trigger(session: ManualSession) -> None:
    program(session, *CAPTURE, "INIT:ACQ (@1)")
    session.handle.timeout = 400
    with pytest.raises(pyvisa.errors.VisaIOError) as timed_out:
        session.query("*OPC?")
    assert timed_out.value.error_code == pyvisa.constants.StatusCode.error_timeout
    # Only a stop ends it; the late "1" is then the next thing read, as on any instrument after a timeout.
    session.handle.timeout = 5000
    session.write("ABOR:ACQ (@1)")
    assert session.handle.read().strip() == "1"
    assert session.errors() == []


# --- Blocks and byte order (FORMat[:DATA] REAL, FORMat:BORDer NORMal|SWAPped; IEEE 488.2 7.7.6) ----------------

def captured_current_a(session: ManualSession, byte_order: str, *, decode_big_endian: bool) -> np.ndarray:
    program(session, *CAPTURE, f"FORM:BORD {byte_order}", "INIT:ACQ (@1)", "*TRG")
    values = session.query_float32_block("FETC:ARR:CURR? (@1)", big_endian=decode_big_endian)
    assert session.errors() == []
    return values


@pytest.mark.parametrize(("byte_order", "big_endian"), [("NORM", True), ("NORMal", True), ("SWAP", False),
                                                         ("SWAPped", False)])
def test_blocks_come_in_the_programmed_byte_order(session: ManualSession, byte_order: str,
                                                  big_endian: bool) -> None:
    current_a = captured_current_a(session, byte_order, decode_big_endian=big_endian)
    assert current_a.size == 256
    assert np.median(current_a) == pytest.approx(IDLE_W / SUPPLY_V, rel=0.05)


@pytest.mark.parametrize(("byte_order", "wrong_big_endian"), [("NORM", False), ("SWAP", True)])
def test_a_byte_order_slip_gives_values_no_range_check_passes(session: ManualSession, byte_order: str,
                                                              wrong_big_endian: bool) -> None:
    # Bench facts: a wrong is_big_endian decodes without any error; only a sanity range check catches it.
    current_a = captured_current_a(session, byte_order, decode_big_endian=wrong_big_endian)
    in_range = np.isfinite(current_a) & (np.abs(current_a) <= 3.0 * 1.05)  # the N6781A's 3 A range
    assert not np.all(in_range & (np.abs(current_a) > 1e-9))


# --- Fetch, abort, re-arm (N6700 User's Guide, "Measurement Subsystem": the data "is valid until the next
# MEASure or INITiate command"; SCPI-99: a query with no data to return queues -230 and sends nothing) --------

def test_fetch_with_no_acquisition_queues_data_stale_and_sends_nothing(session: ManualSession) -> None:
    program(session, "*RST", "*CLS", "FORM REAL")
    session.write("FETC:ARR:CURR? (@1)")
    assert session.error() == manual.DATA_CORRUPT_OR_STALE  # the next reply is SYST:ERR?'s, not a block
    assert session.errors() == []


def test_abort_discards_the_capture_and_a_new_init_runs_again(session: ManualSession) -> None:
    program(session, *CAPTURE, "INIT:ACQ (@1)", "ABOR:ACQ (@1)")
    assert not session.status() & manual.N6705C_MEAS_ACTIVE
    session.write("FETC:ARR:CURR? (@1)")
    assert session.error() == manual.DATA_CORRUPT_OR_STALE
    program(session, "INIT:ACQ (@1)", "*TRG")  # re-armed: the same settings capture again
    assert session.query_float32_block("FETC:ARR:CURR? (@1)", big_endian=True).size == 256
    assert session.errors() == []


def test_a_bus_trigger_with_nothing_initiated_is_ignored(session: ManualSession) -> None:
    # SCPI-99 ch. 21, -211 "Trigger ignored": a *TRG received but ignored, the device not ready for it.
    program(session, *CAPTURE)
    session.write("*TRG")
    assert session.error() == manual.TRIGGER_IGNORED


# --- What the guide forbids, refused with SCPI-99's codes ---------------------------------------------------

@pytest.mark.parametrize(("command", "error"), [
    ("SENS:SWE:TINT 1E-6,(@1)", manual.DATA_OUT_OF_RANGE),  # below 5.12 us (User's Guide p. 213)
    ("SENS:SWE:POIN 0,(@1)", manual.DATA_OUT_OF_RANGE),
    ("FORM:BORD BIG", manual.ILLEGAL_PARAMETER_VALUE),  # NORMal | SWAPped only
    ("TRIG:ACQ:SOUR SOMEWHERE,(@1)", manual.ILLEGAL_PARAMETER_VALUE),
    ("SENS:SWE:POIN", manual.MISSING_PARAMETER),
    ("SENS:SWE:NOPE 5", manual.UNDEFINED_HEADER),
])
def test_what_the_guide_forbids_is_refused_with_its_code(session: ManualSession, command: str,
                                                         error: tuple[int, str]) -> None:
    program(session, "*RST", "*CLS")
    session.write(command)
    assert session.errors() == [error]


def test_a_query_of_an_unknown_header_sends_nothing(session: ManualSession) -> None:
    session.write("SENS:SWE:NOPE? (@1)")
    assert session.query("*IDN?").split(",")[1].strip() == "N6705C"  # not a stray reply of the bad query
    assert session.errors() == [manual.UNDEFINED_HEADER]


@pytest.mark.parametrize("requested_s", [6e-6, 8e-6, 1.2e-5, 1.6e-5, 2.5e-5, 3.1e-5, 6.2e-5, 1.0e-4])
@pytest.mark.parametrize("resolution", ["RES20", "RES40"])
def test_the_interval_runs_on_the_guides_grid(session: ManualSession, requested_s: float, resolution: str) -> None:
    program(session, "*RST", "*CLS", f"SENS:SWE:TINT:RES {resolution}", f"SENS:SWE:TINT {requested_s:.6E},(@1)")
    runs_s = float(session.query("SENS:SWE:TINT? (@1)"))
    assert runs_s == pytest.approx(manual.n6705c_rounded_interval_s(requested_s, resolution), rel=1e-6)


# --- One parameter: voltage alone (User's Guide p. 213: 5.12 us with "1 parameter", N678xA SMU; a parameter is
# a digitized voltage or current, SENS:FUNC:VOLT / SENS:FUNC:CURR) ------------------------------------------

def test_voltage_alone_is_digitized_at_the_one_parameter_interval(session: ManualSession) -> None:
    program(session, "*RST", "*CLS", "VOLT 3.3,(@1)", "OUTP ON,(@1)", "SENS:FUNC:CURR OFF,(@1)",
            "SENS:FUNC:VOLT ON,(@1)", "SENS:SWE:POIN 256,(@1)", "SENS:SWE:TINT 5.12E-6,(@1)", "FORM REAL",
            "TRIG:ACQ:SOUR BUS,(@1)", "INIT:ACQ (@1)", "*TRG")
    assert float(session.query("SENS:SWE:TINT? (@1)")) == pytest.approx(manual.N6705C_TINT_ONE_PARAMETER_S)
    volts = session.query_float32_block("FETC:ARR:VOLT? (@1)", big_endian=True)
    assert session.errors() == []
    assert volts.size == 256
    assert np.median(volts) == pytest.approx(3.3, rel=0.01)


# --- Pre-trigger data (User's Guide p. 213): "If, during a pre-trigger data acquisition, a trigger occurs before the
# pre-trigger data count is completed, the measurement system ignores this trigger." ------------------------------

def test_a_trigger_before_the_pretrigger_count_is_complete_is_ignored(session: ManualSession) -> None:
    pre, interval_s = 100_000, 20.48e-6  # 2.048 s of pre-trigger points: a *TRG sent at once comes sooner
    program(session, *CAPTURE[:-1], f"SENS:SWE:POIN {pre + 1000},(@1)", f"SENS:SWE:OFFS:POIN -{pre},(@1)",
            "TRIG:ACQ:SOUR BUS,(@1)", "INIT:ACQ (@1)", "*TRG")
    # Ignored, without an error: still waiting for its trigger.
    assert session.status() & manual.N6705C_MEAS_ACTIVE
    session.handle.timeout = 300
    with pytest.raises(pyvisa.errors.VisaIOError):
        session.query("*OPC?")  # pending: the acquisition has not been triggered
    session.handle.timeout = 10000
    session.write("ABOR:ACQ (@1)")
    assert session.handle.read().strip() == "1"
    # Armed again, and triggered once the pre-trigger points have had their time: it completes.
    program(session, "INIT:ACQ (@1)")
    time.sleep(pre * interval_s * 1.1)
    program(session, "*TRG")
    assert session.query_float32_block("FETC:ARR:CURR? (@1)", big_endian=True).size == pre + 1000
    assert session.errors() == []
