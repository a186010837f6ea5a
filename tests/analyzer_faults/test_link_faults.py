"""Faults of the link to the analyzer and of a capture's course, injected in its twin (a real SCPI server on
loopback TCP, reached through pyvisa-py): a trigger or a FastLog chunk lost, replies late, partial or missing,
a session that cannot resynchronize, a connection closed. Each ends in the driver's typed error naming the
resource (never a hang, never a stale reply read as the next one), and the next capture on the same driver,
over the same VISA session, returns exactly what the twin served. Faults in what a reply says:
test_reply_faults.py.

The NGM202 streams (FastLog, no trigger): a lost chunk takes the place of a lost trigger.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import (
    InstrumentError,
    InstrumentReplyError,
    InstrumentTimeout,
    StreamGap,
    TriggerTimeout,
)
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.instruments.scpi_header import short_command
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.status_bits import STATUS_BITS
from pytest_edgehil.sim.timeline import ActivityTimeline

from .rig import (
    CAPTURES,
    POINTS,
    SUPPLY_V,
    TIMEOUT_MS,
    TRIGGERED,
    assert_capture_is_what_the_twin_served,
    configure_and_arm,
)


@pytest.mark.parametrize("twin", TRIGGERED, indirect=True)
def test_a_lost_trigger_times_out_naming_the_cabling_then_the_next_capture_works(
        twin: AnalyzerTwin, analyzer: ScpiAnalyzer) -> None:
    twin.inject("lost-trigger")
    configure_and_arm(analyzer, twin)
    with pytest.raises(InstrumentTimeout, match=r"still waiting for trigger after 0.3 s.*trigger cabling") as info:
        analyzer.wait_complete(timeout_s=0.3)
    assert twin.resource in str(info.value)
    # Typed as the trigger's fault (the plugin waits for a missing trigger once per device: trigger_faults.py).
    assert isinstance(info.value, TriggerTimeout) and info.value.timeout_s == 0.3
    assert info.value.resource.startswith(twin.resource)
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
        with pytest.raises(InstrumentTimeout, match="did not answer 'STAT:OPER:COND") as info:
            analyzer.wait_complete(timeout_s=5.0)
        assert not isinstance(info.value, TriggerTimeout)  # a silent link is no missing trigger
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
