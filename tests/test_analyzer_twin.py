"""Drivers against the analyzer twin: a real SCPI server on loopback TCP, reached through pyvisa-py.

A test plays the device by appending `StageSpan`s to an `ActivityTimeline` from another thread while
the driver waits on its armed acquisition, exactly as the device twin does on the simulated bench.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.errors import ConfigError, InstrumentError, InstrumentTimeout, ScpiError
from pytest_edgehil.instruments import keithley_2281s, keysight_n6705c, open_analyzer, rs_ngm202
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin, mean_power_per_sample
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

IDLE_W, LOAD_W, INFERENCE_W = 0.010, 0.050, 0.200
SUPPLY_V = 3.3

# dialect -> (driver class, sample interval, pre-trigger points)
DIALECTS = {
    "keysight-n6705c": (keysight_n6705c.KeysightN6705C, 10.24e-6, 40),
    "rs-ngm202": (rs_ngm202.RsNgm202, 20e-6, 40),
    "keithley-2281s": (keithley_2281s.Keithley2281S, 1e-3, 0),
}


@pytest.fixture
def manager() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
    bench.append(StageSpan("idle", 0.0, 0.25, IDLE_W))
    return bench


def play_device(timeline: ActivityTimeline, inference_s: float, *, delay_s: float = 0.02) -> threading.Thread:
    """After `delay_s` (real), record: load (no trigger), inference (trigger high), idle."""
    def run() -> None:
        time.sleep(delay_s)
        start = timeline.end_s
        timeline.append(StageSpan("load", start, start + inference_s, LOAD_W))
        timeline.append(StageSpan("inference", start + inference_s, start + 2 * inference_s, INFERENCE_W,
                                  trigger_high=True, run_index=0))
        timeline.append(StageSpan("idle", start + 2 * inference_s, start + 4 * inference_s, IDLE_W))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def twin(timeline: ActivityTimeline, dialect: str) -> Iterator[AnalyzerTwin]:
    with AnalyzerTwin(timeline, dialect=dialect, seed=7) as analyzer_twin:
        yield analyzer_twin


def capture(twin: AnalyzerTwin, manager: pyvisa.ResourceManager, *, points: int = 400):
    _driver, interval_s, pre = DIALECTS[twin.dialect_name]
    analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=2000)
    analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=interval_s, points=points,
                       pretrigger_points=pre)
    analyzer.arm("EXT")
    device = play_device(twin.timeline, inference_s=100 * interval_s)
    analyzer.wait_complete(timeout_s=5.0)
    trace = analyzer.fetch_trace()
    device.join()
    return analyzer, trace


def test_each_dialect_identifies_and_captures_the_device_span(twin: AnalyzerTwin, manager) -> None:
    driver, interval_s, pre = DIALECTS[twin.dialect_name]
    stream_start_s = twin.timeline.end_s  # where a FastLog stream starts: FLOG 1, before the device plays
    analyzer, trace = capture(twin, manager)
    try:
        assert type(analyzer) is driver
        assert trace.idn == twin.dialect.idn
        assert trace.sample_interval_s == pytest.approx(interval_s)
        window = twin.last_capture
        inference = next(s for s in twin.timeline.snapshot() if s.trigger_high)
        assert window is not None
        if driver.chunk_period_s is None:  # a triggered window: t = 0 at the trigger, the inference's start
            assert trace.trigger_located and trace.trigger_index == pre and trace.time_s[pre] == 0.0
            assert window.trigger_s == inference.start_s
        else:  # a stream (FastLog): t = 0 at its first sample, taken when FLOG 1 arrived; no trigger
            assert not trace.trigger_located and trace.trigger_index == 0 and trace.time_s[0] == 0.0
            assert window.t0_s == stream_start_s
        # Each sample on the device's timeline; inside the inference, one sample clear of its edges, the
        # mean power is the span's, and the load before it is the load's.
        sample_s = window.t0_s + np.arange(trace.current_a.size) * interval_s
        inside = (sample_s > inference.start_s + interval_s) & (sample_s < inference.end_s - interval_s)
        assert inside.sum() >= 90
        assert trace.power_w[inside].mean() == pytest.approx(INFERENCE_W, rel=0.01)
        assert trace.voltage_v.mean() == pytest.approx(SUPPLY_V, rel=0.001)
        before = sample_s < inference.start_s - interval_s
        if pre or not trace.trigger_located:
            assert before.sum() >= 30
            assert trace.power_w[before].mean() == pytest.approx(LOAD_W, rel=0.01)
    finally:
        analyzer.close()


def test_trapezoidal_energy_over_a_sample_aligned_window_matches_the_truth(
        timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline, noise_rel=0.0) as twin:
        analyzer, trace = capture(twin, manager, points=600)
        analyzer.close()
    window = twin.last_capture
    assert window is not None
    # Integrate over samples whose edges lie in flat stretches (load span before, idle after).
    first, last = trace.trigger_index - 20, trace.trigger_index + 100 + 20
    t_s = trace.time_s[first:last + 1]
    measured_j = np.trapezoid(trace.power_w[first:last + 1], t_s)
    true_j = twin.true_energy_j(window.trigger_s + t_s[0], window.trigger_s + t_s[-1])
    assert measured_j == pytest.approx(true_j, rel=1e-4)


def test_trigger_that_never_arrives_times_out(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=10.24e-6, points=50)
        analyzer.arm("EXT")
        timeline.append(StageSpan("inference", 0.25, 0.26, INFERENCE_W, trigger_high=False))
        with pytest.raises(InstrumentTimeout,
                           match=r"still waiting for trigger after 0.2 s.*trigger cabling"):
            analyzer.wait_complete(timeout_s=0.2)
        analyzer.close()


def test_an_aborted_fetch_is_answered_with_one_error_and_the_session_stays_in_step(
        timeline: ActivityTimeline, manager) -> None:
    # SCPI-99/IEEE 488.2: a query that has no data to send (its acquisition aborted) queues -230 and sends
    # nothing; ABORt itself queues nothing and clears nothing (only *CLS and reading empty the queue). So
    # the raw sequence leaves exactly one -230, read once; what clears it is the driver's recovery (*CLS,
    # tests/analyzer_faults/test_link_faults.py::test_a_fetch_left_waiting_for_a_trigger_is_released_...).
    with AnalyzerTwin(timeline) as twin:
        handle = manager.open_resource(twin.resource, read_termination="\n", write_termination="\n",
                                       timeout=300)
        try:
            handle.write("TRIG:ACQ:SOUR BUS,(@1)")
            handle.write("INIT:ACQ (@1)")  # no *TRG: it never triggers
            with pytest.raises(pyvisa.errors.VisaIOError) as timed_out:
                handle.query("FETC:ARR:CURR? (@1)")
            assert timed_out.value.error_code == pyvisa.constants.StatusCode.error_timeout
            handle.timeout = 5000
            handle.write("ABOR:ACQ (@1)")
            assert handle.query("*OPC?") == "1"  # no reply of the FETCh's came late
            assert handle.query("SYST:ERR?") == '-230,"Data corrupt or stale"'
            assert handle.query("SYST:ERR?") == '+0,"No error"'
            assert int(handle.query("STAT:OPER:COND? (@1)")) & (8 | 32) == 0  # WTG-meas, MEAS-active: idle
        finally:
            handle.close()


def test_a_capture_the_instrument_runs_at_another_interval_is_refused_at_configure(
        timeline: ActivityTimeline, manager) -> None:
    # Someone left the N6705C at RES40: above 40.96 us it runs 40.96 us steps (its guide), so the driver's
    # RES20 value 61.44 us comes back as another interval and the capture sized for it is not run.
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        analyzer.send("SENS:SWE:TINT:RES RES40")
        with pytest.raises(InstrumentError, match=r"SENS:SWE:TINT\? reads [\d.]+ us back after 61.44 us was "
                                                  r"programmed.*SENS:SWE:TINT:RES RES20"):
            analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=61.44e-6, points=50)
        assert analyzer.state == "open" and analyzer.capture is None
        analyzer.send("SENS:SWE:TINT:RES RES20")
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=61.44e-6, points=50)
        assert analyzer.capture is not None and analyzer.capture.sample_interval_s == pytest.approx(61.44e-6)
        analyzer.close()


def test_bad_setting_raises_the_instruments_own_text(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        with pytest.raises(ScpiError, match=r'-222,"Data out of range" after `SENS:SWE:POIN 0,\(@1\)`'):
            analyzer.send("SENS:SWE:POIN 0,(@1)")
        with pytest.raises(ScpiError, match=r'-113,"Undefined header"'):
            analyzer.send("SENS:SWE:BOGUS 5,(@1)")
        with pytest.raises(ScpiError, match=r'-241,"Hardware missing"'):
            analyzer.send("VOLT 1,(@7)")
        # Too fast for both functions on this module: the instrument refuses at INIT, we surface it.
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=5.12e-6, points=50)
        analyzer.send("SENS:FUNC:VOLT ON,(@1)")
        with pytest.raises(ScpiError, match=r'-221,"Settings conflict" after `INIT:ACQ'):
            analyzer.arm("EXT")
        analyzer.close()
    with AnalyzerTwin(timeline, dialect="rs-ngm202") as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        with pytest.raises(ScpiError, match=r'-224,"Illegal parameter value"'):
            analyzer.send("FLOG:SRAT S1M")
        analyzer.close()


def test_binary_and_ascii_fetch_agree(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer, binary = capture(twin, manager)
        analyzer.set_transfer_format("ASC")
        text = analyzer.fetch_trace()
        analyzer.close()
    # Identical float32 readings: nine significant digits of text round-trip a float32 exactly.
    assert np.array_equal(binary.current_a.astype(np.float32), text.current_a.astype(np.float32))
    assert np.array_equal(binary.voltage_v.astype(np.float32), text.voltage_v.astype(np.float32))
    assert "FORM ASC" in twin.commands
    assert binary.current_a.std() > 0  # the comparison is over a real signal, not zeros


def test_byte_order_mistake_does_not_pass_unnoticed(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer, _trace = capture(twin, manager)
        analyzer.send("FORM:BORD SWAP")  # e.g. another script changed it; the driver decodes NORM
        with pytest.raises(InstrumentError, match=r"mis-decoded.*FORM:BORD.*is_big_endian=True"):
            analyzer.fetch_trace()
        analyzer.close()
    with AnalyzerTwin(timeline, dialect="rs-ngm202") as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=2000)
        assert isinstance(analyzer, rs_ngm202.RsNgm202)
        analyzer.fetch_big_endian = True  # the classic is_big_endian slip, made before the stream is read
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=20e-6, points=400)
        analyzer.arm("EXT")
        analyzer.wait_complete(timeout_s=5.0)
        with pytest.raises(InstrumentError, match="mis-decoded"):
            analyzer.fetch_trace()
        analyzer.close()


def test_a_stream_started_with_the_device_idle_records_the_idle_level(timeline: ActivityTimeline, manager) -> None:
    # FastLog has no trigger (BUS or EXT): FLOG 1 starts the record at once, the idle board included.
    with AnalyzerTwin(timeline, dialect="rs-ngm202") as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.01, sample_interval_s=2e-6, points=200)
        analyzer.arm("BUS")
        assert analyzer.acquisition_status() in ("measuring", "complete")  # never "waiting for trigger"
        with pytest.raises(ConfigError, match="FastLog has no software trigger"):
            analyzer.trigger_now()
        analyzer.wait_complete(timeout_s=2.0)
        trace = analyzer.fetch_trace()
        analyzer.close()
    assert twin.last_capture is not None and twin.last_capture.t0_s == pytest.approx(0.25)
    assert not trace.trigger_located and trace.current_a.size == 200
    assert trace.power_w.mean() == pytest.approx(IDLE_W, rel=0.01)


def test_keysight_fast_capture_reports_the_programmed_voltage(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager)
        analyzer.configure(voltage_v=1.8, current_range_a=0.1, sample_interval_s=5.12e-6, points=100)
        analyzer.arm("BUS")
        analyzer.trigger_now()
        analyzer.wait_complete(timeout_s=2.0)
        trace = analyzer.fetch_trace()
        analyzer.close()
    assert np.all(trace.voltage_v == 1.8)
    assert trace.current_a.mean() == pytest.approx(IDLE_W / 1.8, rel=0.01)
    assert not any(c.startswith("FETC:ARR:VOLT") for c in twin.commands)


def test_traces_are_repeatable_for_a_seed(manager) -> None:
    def one(seed: int) -> np.ndarray:
        bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
        with AnalyzerTwin(bench, seed=seed) as twin:
            analyzer, trace = capture(twin, manager, points=100)
            analyzer.close()
        return trace.current_a

    first, again, other = one(3), one(3), one(4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_error_queue_reset_and_unknown_dialect(timeline: ActivityTimeline, manager) -> None:
    with AnalyzerTwin(timeline, dialect="keithley-2281s") as twin:
        handle = manager.open_resource(twin.resource, read_termination="\n", write_termination="\n")
        handle.write("NO:SUCH:THING")
        handle.write("VOLT 42")
        assert handle.query("SYST:ERR?") == '-113,"Undefined header"'
        assert handle.query("SYST:ERR?") == '-222,"Data out of range"'
        assert handle.query("SYST:ERR?") == '+0,"No error"'
        handle.write("VOLT 5")
        handle.write("*RST")
        assert float(handle.query("VOLT?")) == 0.0
        handle.close()
    assert twin.commands[:2] == ["NO:SUCH:THING", "VOLT 42"]
    with pytest.raises(ConfigError, match="keysight-n6705c"):
        AnalyzerTwin(timeline, dialect="agilent-66319")


def test_mean_power_per_sample_is_exact_for_steps() -> None:
    spans = [StageSpan("a", 1.0, 1.0 + 35e-6, 0.5), StageSpan("b", 1.0 + 35e-6, 1.0 + 80e-6, 0.1)]
    dt = 10e-6
    power = mean_power_per_sample(spans, idle_power_w=0.02, t0_s=0.99995, sample_interval_s=dt, points=20)
    # Samples fully inside a span equal its power; the sum of sample energies is the exact integral.
    assert power[0] == pytest.approx(0.02) and power[-1] == pytest.approx(0.02)
    assert power[7] == pytest.approx(0.5) and power[11] == pytest.approx(0.1)
    start, end = 0.99995 - dt / 2, 0.99995 + 19.5 * dt
    truth = 0.5 * 35e-6 + 0.1 * 45e-6 + 0.02 * ((end - start) - 80e-6)
    assert power.sum() * dt == pytest.approx(truth, rel=1e-9)


def record_run(timeline: ActivityTimeline, inference_s: float) -> None:
    """What the device twin does for RUN 1: busy while it records readout, inference (trigger high), idle."""
    timeline.set_busy(True)
    try:
        start = timeline.end_s
        timeline.append(StageSpan("readout", start, start + inference_s, LOAD_W))
        timeline.append(StageSpan("inference", start + inference_s, start + 2 * inference_s, INFERENCE_W,
                                  trigger_high=True, run_index=0))
    finally:
        timeline.set_busy(False)


@pytest.mark.parametrize("runs", [1, 3])
def test_a_virtual_capture_ends_when_the_host_asks_not_after_the_grace(timeline: ActivityTimeline, manager,
                                                                       runs: int) -> None:
    # The window reaches past the device's last activity. On a virtual clock nothing more comes once
    # the host asks for the capture, so it completes then: with a 60 s grace, wait_complete(20 s) would
    # time out if the twin still waited it out. Every RUN the host sent before asking is in the window,
    # however long the host took between them (a wall-clock grace would have cut the later ones off).
    interval_s = 10.24e-6
    with AnalyzerTwin(timeline, dialect="keysight-n6705c", seed=3, grace_s=60.0) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=manager, timeout_ms=5000)
        try:
            analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=interval_s,
                               points=4000, pretrigger_points=40)
            analyzer.arm("EXT")
            for run in range(runs):
                if run:
                    time.sleep(0.1)  # longer than the default grace
                record_run(timeline, 100 * interval_s)
            analyzer.wait_complete(timeout_s=20.0)
            trace = analyzer.fetch_trace()
        finally:
            analyzer.close()
    assert twin.last_capture is not None and twin.last_capture.t1_s > timeline.end_s  # not covered: no wait for it
    high = trace.power_w > (LOAD_W + INFERENCE_W) / 2
    rising = int(np.count_nonzero(high[1:] & ~high[:-1])) + int(high[0])
    assert rising == runs


def test_an_instrument_that_integrates_over_line_cycles_never_point_samples():
    # The 2281S integrates each reading over NPLC (its aperture is its interval): a bench set to point
    # sampling changes the digitizers, not it. The N6705C's digitizer does take the bench's model.
    from dataclasses import replace as _replace

    from pytest_edgehil.sim.bench_physics import BenchPhysics

    point = _replace(BenchPhysics.ideal(), sampling="point")
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    assert AnalyzerTwin(timeline, dialect="keithley-2281s", physics=point).physics.sampling == "integrating"
    assert AnalyzerTwin(timeline, dialect="keysight-n6705c", physics=point).physics.sampling == "point"
