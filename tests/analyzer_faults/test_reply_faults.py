"""Faults in what the analyzer says, injected in its twin (a real SCPI server on loopback TCP, reached through
pyvisa-py): damaged or non-numeric replies, queued SCPI errors, clipped or mis-sized data. Each ends in the
driver's typed error naming the resource, and the next capture on the same driver, over the same VISA
session, returns exactly what the twin served. One bad reply costs one test. Faults of the link and the
capture's course (lost triggers and chunks, late, partial or missing replies): test_link_faults.py.

The NGM202 streams (FastLog, no trigger): its reader thread sends the status and FLOG:DATA? queries
while the stream runs, so a bad reply to them is raised by `wait_complete` (the record it was part of
is gone: chunks are overwritten every 250 ms).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import InstrumentReplyError, InstrumentTimeout, ScpiError
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.sim.analyzer_twin import AnalyzerFault, AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline

from .rig import (
    BINARY,
    LATE_S,
    TIMEOUT_MS,
    assert_capture_is_what_the_twin_served,
    capture,
    configure_and_arm,
    streams,
)

# fault -> (error type, message pattern); the pattern is the part that says what happened.
FETCH_FAULTS = {
    "timeout": (InstrumentTimeout, r"did not answer '(FETC|FLOG|DATA)"),
    "late": (InstrumentTimeout, r"did not answer '(FETC|FLOG|DATA)"),
    "half": (InstrumentTimeout, r"stopped after \d+ bytes.*short block or a stalled transfer"),
    "short-block": (InstrumentTimeout, r"stopped after \d+ bytes.*short block or a stalled transfer"),
    "bad-header": (InstrumentReplyError, r"block header whose length is not digits"),
    "surplus": (InstrumentReplyError, r"carries bytes after its \d+-byte block"),
}


@pytest.mark.parametrize("kind", sorted(FETCH_FAULTS))
def test_a_bad_fetch_reply_costs_one_capture_not_the_session(kind: str, twin: AnalyzerTwin,
                                                             analyzer: ScpiAnalyzer) -> None:
    if kind not in ("timeout", "late", "half") and twin.dialect_name not in BINARY:
        pytest.skip("the Keithley's buffer comes back as text: no block to damage")
    error, pattern = FETCH_FAULTS[kind]
    if twin.dialect_name not in BINARY and kind == "half":
        error, pattern = InstrumentTimeout, r"did not answer 'DATA:DATA\? \"READ,SOUR,REL\"' \(in full\)"
    twin.inject(kind, delay_s=LATE_S)
    configure_and_arm(analyzer, twin)
    if streams(twin):  # the reader's FLOG:DATA? fails while the stream runs
        with pytest.raises(error, match=pattern) as info:
            analyzer.wait_complete(timeout_s=5.0)
    else:
        analyzer.wait_complete(timeout_s=5.0)
        with pytest.raises(error, match=pattern) as info:
            analyzer.fetch_trace()
    assert twin.resource in str(info.value) and "[the session was cleared and resynchronized]" in str(info.value)
    assert twin.faults.fired == {kind: 1}
    assert analyzer.link.recoveries == 1 and not analyzer.link.needs_recovery
    assert_capture_is_what_the_twin_served(analyzer, twin)


@pytest.mark.parametrize("text", [b"INF", b"9.9E37", b"9.91E37", b"NAN"])
def test_inf_or_nan_in_a_status_reply_is_a_typed_error_and_the_wait_resumes(
        text: bytes, timeline: ActivityTimeline, manager: pyvisa.ResourceManager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert isinstance(analyzer, ScpiAnalyzer)
        configure_and_arm(analyzer, twin, after_arm=lambda: twin.inject("inf-status", text=text))
        with pytest.raises(InstrumentReplyError, match=r"STAT:OPER:COND\? \(@1\)'.*(sentinel|not a number)") as info:
            analyzer.wait_complete(timeout_s=5.0)
        assert twin.resource in str(info.value) and info.value.reply == text
        analyzer.wait_complete(timeout_s=5.0)  # the same acquisition, read on the cleared session
        trace = analyzer.fetch_trace()
        served = twin.last_readings()
        assert served is not None and np.array_equal(trace.current_a, served[0].astype(np.float64))
        analyzer.close()


def test_non_ascii_bytes_in_a_text_reply_are_named_and_cleared(twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    configure_and_arm(analyzer, twin, after_arm=lambda: twin.inject("non-ascii"))
    with pytest.raises(InstrumentReplyError, match=r"non-ASCII byte 0xb5 at offset 1") as info:
        analyzer.wait_complete(timeout_s=5.0)
    assert twin.resource in str(info.value) and b"\xb5" in info.value.reply
    if not streams(twin):  # a stream's record is gone with its reader; a triggered capture is still there
        analyzer.wait_complete(timeout_s=5.0)
        analyzer.fetch_trace()
    # ... and in the error queue's reply, during configure: the next configure works.
    twin.inject("non-ascii", on="SYST:ERR")
    with pytest.raises(InstrumentReplyError, match=r"SYST:ERR\?"):
        configure_and_arm(analyzer, twin)
    assert_capture_is_what_the_twin_served(analyzer, twin)


def test_non_ascii_identity_fails_open_with_the_resource(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline, faults=[AnalyzerFault("non-ascii", on="*IDN")]) as twin:
        with pytest.raises(InstrumentReplyError, match=r"reply to '\*IDN\?' holds the non-ASCII byte") as info:
            open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert twin.resource in str(info.value)


def test_a_queued_scpi_error_is_raised_with_its_text_then_configure_works(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    twin.inject("scpi-error", error=(-240, "Hardware error"))
    with pytest.raises(ScpiError, match=r'-240,"Hardware error" after `') as info:
        configure_and_arm(analyzer, twin)
    assert twin.resource in str(info.value)
    assert_capture_is_what_the_twin_served(analyzer, twin)


def test_a_non_finite_setting_read_back_fails_configure_once(twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    header = analyzer.settings[analyzer.roles.current_range].short()
    twin.inject("inf-status", on=header, text=b"9.9E37")
    with pytest.raises(InstrumentReplyError, match=r"is not a float within") as info:
        configure_and_arm(analyzer, twin)
    assert twin.resource in str(info.value) and header in str(info.value)
    assert_capture_is_what_the_twin_served(analyzer, twin)


def test_a_block_of_the_wrong_length_is_refused_before_its_payload_is_read(
        timeline: ActivityTimeline, manager: pyvisa.ResourceManager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert isinstance(analyzer, ScpiAnalyzer)
        capture(analyzer, twin)
        # Another program on a second session shortens the capture and re-runs it.
        other = manager.open_resource(twin.resource, read_termination="\n", write_termination="\n")
        for command in ("SENS:SWE:POIN 100,(@1)", "SENS:SWE:OFFS:POIN 0,(@1)", "TRIG:ACQ:SOUR BUS,(@1)",
                        "INIT:ACQ (@1)", "*TRG"):
            other.write(command)
        while int(other.query("STAT:OPER:COND? (@1)")) & 32:  # MEAS-active (guide p. 350)
            time.sleep(0.01)
        other.close()
        with pytest.raises(InstrumentReplyError, match=r"announces a 400-byte block but 1600 were expected"):
            analyzer.fetch_trace()
        assert analyzer.link.recoveries == 1
        assert_capture_is_what_the_twin_served(analyzer, twin)
        analyzer.close()


def test_a_clipped_capture_is_refused_with_raise_the_range(twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    twin.inject("clip")
    configure_and_arm(analyzer, twin)
    analyzer.wait_complete(timeout_s=5.0)
    with pytest.raises(InstrumentReplyError, match=r"at the 0.1 A range limit \(clipped\).*raise current_range_a") as info:
        analyzer.fetch_trace()
    assert twin.resource in str(info.value)
    served = twin.last_readings()
    assert served is not None and np.max(np.abs(served[0])) == np.float32(0.1)  # pinned, not beyond
    assert_capture_is_what_the_twin_served(analyzer, twin)


def test_a_device_drawing_more_than_the_range_is_refused_not_integrated(
        timeline: ActivityTimeline, manager: pyvisa.ResourceManager) -> None:
    # No injected fault: the inference draws 61 mA on the N6781A's 1 mA range; the ADC saturates.
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert isinstance(analyzer, ScpiAnalyzer)
        configure_and_arm(analyzer, twin, current_range_a=0.001)
        analyzer.wait_complete(timeout_s=5.0)
        with pytest.raises(InstrumentReplyError, match=r"0.001 A range limit \(clipped\).*raise current_range_a"):
            analyzer.fetch_trace()
        assert_capture_is_what_the_twin_served(analyzer, twin)
        analyzer.close()
