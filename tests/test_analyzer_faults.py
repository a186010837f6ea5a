"""Faults injected in the analyzer twin (a real SCPI server on loopback TCP, reached through pyvisa-py):
each ends in the driver's typed error naming the resource, and the next capture on the same driver,
over the same VISA session, returns exactly what the twin served. One bad reply costs one test.

The NGM202 streams (FastLog, no trigger): its reader thread sends the status and FLOG:DATA? queries
while the stream runs, so a bad reply to them is raised by `wait_complete` (the record it was part of
is gone: chunks are overwritten every 250 ms), and a lost chunk takes the place of a lost trigger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import (
    InstrumentError,
    InstrumentReplyError,
    InstrumentTimeout,
    ScpiError,
    StreamGap,
)
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.scpi_header import short_command
from pytest_edgehil.sim.analyzer_twin import AnalyzerFault, AnalyzerTwin
from pytest_edgehil.sim.status_bits import STATUS_BITS
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

# The same device playback and stage powers as the fault-free twin tests: a fault changes nothing else.
from .test_analyzer_twin import IDLE_W, INFERENCE_W, play_device

SUPPLY_V = 3.3
TIMEOUT_MS = 500  # VISA timeout: short, so that timeouts cost little, with room for a loaded machine
LATE_S = 1.0  # a late reply arrives after the VISA timeout, well within the recovery's 2 s wait
POINTS = 400

# dialect -> (sample interval, pre-trigger points)
CAPTURES = {"keysight-n6705c": (10.24e-6, 40), "rs-ngm202": (20e-6, 40), "keithley-2281s": (1e-3, 0)}
BINARY = ("keysight-n6705c", "rs-ngm202")
TRIGGERED = ("keithley-2281s", "keysight-n6705c")  # the NGM202's FastLog has no trigger


def streams(twin: AnalyzerTwin) -> bool:
    """Whether the twin's instrument streams (FastLog): its queries run inside wait_complete."""
    return twin.dialect.driver.chunk_period_s is not None


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
    bench.append(StageSpan("idle", 0.0, 0.25, IDLE_W))
    return bench


@pytest.fixture
def manager() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


def configure_and_arm(analyzer: ScpiAnalyzer, twin: AnalyzerTwin, *, current_range_a: float = 0.1,
                      after_arm: Callable[[], object] | None = None) -> None:
    """Configure, arm and play the device; `after_arm` (e.g. a status fault's injection) runs once `arm()`
    has returned, so that a fault aimed at the status query hits the wait, not arm's ready check."""
    interval_s, pre = CAPTURES[twin.dialect_name]
    analyzer.configure(voltage_v=SUPPLY_V, current_range_a=current_range_a, sample_interval_s=interval_s,
                       points=POINTS, pretrigger_points=pre)
    analyzer.arm("EXT")
    if after_arm is not None:
        after_arm()
    play_device(twin.timeline, inference_s=100 * interval_s).join()


def capture(analyzer: ScpiAnalyzer, twin: AnalyzerTwin, **kwargs: float):
    configure_and_arm(analyzer, twin, **kwargs)
    analyzer.wait_complete(timeout_s=5.0)
    return analyzer.fetch_trace()


def assert_capture_is_what_the_twin_served(analyzer: ScpiAnalyzer, twin: AnalyzerTwin) -> None:
    """The next configure + capture on the same driver returns the twin's readings, bit for bit."""
    trace = capture(analyzer, twin)
    served = twin.last_readings()
    window = twin.last_capture
    assert served is not None and window is not None
    # A stream serves whole 250 ms chunks; the trace is their first `points` pairs.
    assert served[0].size == trace.current_a.size or (streams(twin) and served[0].size > trace.current_a.size)
    # float32 as served (the Keithley sends text: nine digits round-trip a float32 exactly)
    assert np.array_equal(trace.current_a.astype(np.float32), served[0][:trace.current_a.size])
    # Each sample on the device's timeline (a triggered window and a stream alike), inside the inference.
    sample_s = window.t0_s + np.arange(trace.current_a.size) * window.sample_interval_s
    inference = [span for span in twin.timeline.snapshot() if span.trigger_high][-1]
    dt = window.sample_interval_s
    inside = (sample_s > inference.start_s + dt) & (sample_s < inference.end_s - dt)
    assert inside.sum() >= 90  # the inference lies in the capture
    assert trace.power_w[inside].mean() == pytest.approx(INFERENCE_W, rel=0.01)


@pytest.fixture(params=sorted(CAPTURES))
def twin(request: pytest.FixtureRequest, timeline: ActivityTimeline) -> Iterator[AnalyzerTwin]:
    with AnalyzerTwin(timeline, dialect=request.param, seed=5) as analyzer_twin:
        yield analyzer_twin


@pytest.fixture
def analyzer(twin: AnalyzerTwin, manager: pyvisa.ResourceManager) -> Iterator[ScpiAnalyzer]:
    driver = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
    assert isinstance(driver, ScpiAnalyzer)
    yield driver
    driver.close()  # also checks the error queue is empty at the end


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


@pytest.mark.parametrize("twin", TRIGGERED, indirect=True)
def test_a_lost_trigger_times_out_naming_the_cabling_then_the_next_capture_works(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    twin.inject("lost-trigger")
    configure_and_arm(analyzer, twin)
    with pytest.raises(InstrumentTimeout, match=r"still waiting for trigger after 0.3 s.*trigger cabling") as info:
        analyzer.wait_complete(timeout_s=0.3)
    assert twin.resource in str(info.value)
    assert_capture_is_what_the_twin_served(analyzer, twin)


@pytest.mark.parametrize("twin", ["rs-ngm202"], indirect=True)
def test_a_lost_fastlog_chunk_is_refused_as_a_gap_then_the_next_capture_works(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    # The stream's second chunk is overwritten unread: a capture that needs it (more pairs than one
    # 250 ms chunk holds at 20 µs) must be refused, not returned with 250 ms missing.
    interval_s, _pre = CAPTURES[twin.dialect_name]
    points = round(1.5 * twin.dialect.driver.chunk_period_s / interval_s)
    twin.inject("lost-chunk")
    analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=interval_s, points=points)
    analyzer.arm("EXT")
    with pytest.raises(StreamGap, match=r"FastLog chunk 2 was offered up to .* after chunk 1.*overwritten") as info:
        analyzer.wait_complete(timeout_s=5.0)
    assert isinstance(info.value, InstrumentError) and twin.resource in str(info.value)
    assert twin.faults.fired == {"lost-chunk": 1} and twin.lost_chunks >= 1
    with pytest.raises(InstrumentError, match=r"fetch_trace\(\) called while the driver is 'armed'"):
        analyzer.fetch_trace()  # nothing of the refused stream is handed out
    assert_capture_is_what_the_twin_served(analyzer, twin)


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
        while other.query("STAT:OPER:COND? (@1)") != "0":
            time.sleep(0.01)
        other.close()
        with pytest.raises(InstrumentReplyError, match=r"announces a 400-byte block but 1600 were expected"):
            analyzer.fetch_trace()
        assert analyzer.link.recoveries == 1
        assert_capture_is_what_the_twin_served(analyzer, twin)
        analyzer.close()


def test_a_link_that_cannot_resynchronize_retries_before_its_next_use(
        timeline: ActivityTimeline, manager: pyvisa.ResourceManager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert isinstance(analyzer, ScpiAnalyzer)
        # The status query times out, and so does the *IDN? the recovery syncs on.
        def faults() -> None:
            twin.inject("timeout", on="STAT:OPER:COND")
            twin.inject("timeout", on="*IDN", count=2)

        configure_and_arm(analyzer, twin, after_arm=faults)
        with pytest.raises(InstrumentTimeout, match="did not answer 'STAT:OPER:COND"):
            analyzer.wait_complete(timeout_s=5.0)
        assert analyzer.link.needs_recovery and twin.faults.pending() == 1
        with pytest.raises(InstrumentError, match=r"did not answer '\*IDN\? \(resynchronizing\)'"):
            analyzer.acquisition_status()  # its use first retries the recovery, which fails again
        assert twin.faults.pending() == 0
        analyzer.wait_complete(timeout_s=5.0)  # the faults are spent: recovered, and the wait resumes
        assert not analyzer.link.needs_recovery
        analyzer.fetch_trace()
        analyzer.close()


@pytest.mark.parametrize("twin", TRIGGERED, indirect=True)
def test_a_fetch_left_waiting_for_a_trigger_is_released_and_leaves_no_stale_error(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    # The status register reads "complete" while the acquisition still waits for its trigger (a real
    # instrument's WTG bit lagging INIT), so the FETCh waits for a trigger that never comes and the client
    # times out. The recovery must end that FETCh (the driver's stop command: the instrument answers it
    # with -230, as SCPI answers a query that has no data) and clear what it queued, so that the next
    # capture is not refused for a stale error.
    interval_s, pre = CAPTURES[twin.dialect_name]
    analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=interval_s, points=POINTS,
                       pretrigger_points=pre)
    analyzer.arm("EXT")  # nothing plays on the timeline: no trigger
    # "Complete" as each register reads it: 0 on the N6705C, the idle bit on the 2281S (sim/status_bits.py).
    idle = STATUS_BITS[twin.dialect_name].idle
    twin.inject("inf-status", text=str(idle).encode())  # after arm's own ready check, which the twin passes
    analyzer.wait_complete(timeout_s=5.0)
    with pytest.raises(InstrumentTimeout, match=r"did not answer '(FETC|DATA)") as info:
        analyzer.fetch_trace()
    assert "[the session was cleared and resynchronized]" in str(info.value)
    assert not analyzer.link.needs_recovery and analyzer.state == "configured"
    assert short_command(analyzer.stop_command).format(channel=analyzer.channel) in twin.commands
    assert analyzer.link.query_error() == (0, "No error")
    assert_capture_is_what_the_twin_served(analyzer, twin)


@pytest.mark.parametrize("target", ["last-fetch", "SYST:ERR"])
@pytest.mark.parametrize("kind", ["late", "half"])
@pytest.mark.parametrize("twin", ["keysight-n6705c"], indirect=True)
def test_a_slow_part_of_the_compound_fetch_reply_within_the_timeout_is_read_whole(
        kind: str, target: str, twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    # The last block and the error entry are one response message (`<block>;<entry>`); a part of it
    # sent slowly, but well within the VISA timeout, is still that one message: read in full, no error.
    header = short_command(analyzer.fetch_queries[-1].query).split(" ")[0].rstrip("?")
    configure_and_arm(analyzer, twin)
    analyzer.wait_complete(timeout_s=5.0)
    twin.inject(kind, on=header if target == "last-fetch" else target, delay_s=TIMEOUT_MS / 1000 / 10)
    trace = analyzer.fetch_trace()
    assert twin.faults.fired == {kind: 1} and analyzer.link.recoveries == 0
    served = twin.last_readings()
    assert served is not None and np.array_equal(trace.voltage_v, served[1])


@pytest.mark.parametrize("twin", ["keysight-n6705c"], indirect=True)
def test_a_reply_later_than_the_timeout_but_within_the_resync_wait_is_drained_by_one_recovery(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    # The fetch times out; its reply comes 2.5 timeouts after it was asked, while the recovery waits for
    # its *IDN? (up to sync_timeout_s): one recovery drains it, and the next capture needs none.
    late_s = 2.5 * TIMEOUT_MS / 1000
    assert late_s < analyzer.link.sync_timeout_s
    twin.inject("late", delay_s=late_s)
    configure_and_arm(analyzer, twin)
    analyzer.wait_complete(timeout_s=5.0)
    with pytest.raises(InstrumentTimeout, match=r"\[the session was cleared and resynchronized\]"):
        analyzer.fetch_trace()
    assert analyzer.link.recoveries == 1 and not analyzer.link.needs_recovery
    assert_capture_is_what_the_twin_served(analyzer, twin)
    assert analyzer.link.recoveries == 1


@pytest.mark.parametrize(("target", "pattern"), [
    ("last-fetch", r"holds no block: only the error query was answered \(\+0, nothing queued\)"),
    ("SYST:ERR", r"ends after its 1600-byte block, without the reply to the query after it"),
])
@pytest.mark.parametrize("twin", ["keysight-n6705c"], indirect=True)
def test_a_part_of_the_compound_fetch_reply_missing_is_named_as_missing(
        target: str, pattern: str, twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    # One of the two queries of `FETC...;:SYST:ERR?` sends nothing: the refusal says which part is missing
    # (not "the instrument queued +0,No error instead", nor "longer than its header says").
    header = short_command(analyzer.fetch_queries[-1].query).split(" ")[0].rstrip("?")
    configure_and_arm(analyzer, twin)
    analyzer.wait_complete(timeout_s=5.0)
    twin.inject("timeout", on=header if target == "last-fetch" else target)
    with pytest.raises(InstrumentReplyError, match=pattern) as info:
        analyzer.fetch_trace()
    assert "SYST:ERR?" in str(info.value) and "[the session was cleared and resynchronized]" in str(info.value)
    assert_capture_is_what_the_twin_served(analyzer, twin)


def test_an_instrument_that_closed_its_connection_is_an_error_not_a_hang(
        timeline: ActivityTimeline, manager: pyvisa.ResourceManager) -> None:
    # The instrument goes away (its server closes the socket: a reboot, a new client taking over). The next
    # query times out and the recovery clears the session; pyvisa-py's device clear on a TCPIP SOCKET drains
    # the socket until it is silent, which a closed socket never is (select says readable, recv says b"").
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=TIMEOUT_MS)
        assert isinstance(analyzer, ScpiAnalyzer)
    outcome: list[BaseException] = []

    def use() -> None:
        try:
            analyzer.acquisition_status()
        except BaseException as exc:  # noqa: BLE001 - the test reads what came out
            outcome.append(exc)

    worker = threading.Thread(target=use, daemon=True)
    worker.start()
    worker.join(timeout=20 * analyzer.link.sync_timeout_s)
    assert not worker.is_alive(), "the recovery of a closed session never returned"
    assert len(outcome) == 1 and isinstance(outcome[0], InstrumentError), outcome
    assert twin.resource in str(outcome[0]) and "clearing the session failed too" in str(outcome[0])
    assert analyzer.link.needs_recovery
