"""A single inference shorter than the device timer's tick reads 0 µs, and that is no reason to refuse a RUN
whose caller takes no latency figure from it (link/replies.check_inferences_ran).

On a 1 ms timer a 0.23 ms inference reads 0 or 1000 µs, 0 about 3 times in 4. The all-zero refusal is for a
latency figure (0 µs passes any budget); it also refused the meter's RUN 1 that only sizes the acquisition,
and the accuracy path's RUN 1 that reads outputs only. The energy figure of such a board (end to end, from
the RUN's envelope) was refused at that RUN 1 on 21 of seeds 100-129 (ideal IMX500 twin, Q-Segment). Expected values: the twin's
truth (its energy over the RUN's true first and last edges / n) and the outputs the firmware sent.

The meter's capture RUN is untimed too: a stage read as 0 µs leaves per-inference figures untimed, naming the
timer's tick (the twin's setting is the expected value), and firmware that ran nothing (the twin's `no-invoke`
fault: the board idle, its stamps 0) is still refused, from the trace.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.errors import CannotResolve, InvalidPayload
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.energy import energy_from_trace
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy
from pytest_edgehil.sim.device_faults import DeviceFault
from pytest_edgehil.sim.pty_link import serve_pty

from .test_bench_physics import CATALOG, measure

TIMER_1MS = {"ideal": True, "timer_resolution_s": 1e-3}


def one_short_inference(message: p.Message) -> list[p.Message]:
    """Firmware on a 1 ms timer whose inference is shorter than a tick: RUN n reads every inference 0 µs."""
    if isinstance(message, p.Run):
        timings = tuple(p.StageTiming(2000.0 * i, 1000.0, 0.0, 1000.0) for i in range(message.count))
        return [p.Result(timings, (np.arange(3, dtype=np.int8),), bytes(32))]
    return [p.Ack(message.msg_type)]


def test_a_run_for_outputs_only_is_not_refused_for_a_zero_tick() -> None:
    with (serve_pty(one_short_inference, name="fw0") as endpoint,
          DeviceClient(endpoint.port, name="cm4-1", timeout_s=5) as client):
        result = client.run(1, timed=False)
        assert np.array_equal(result.outputs[0], np.arange(3, dtype=np.int8))


def end_to_end_checked(seed: int) -> None:
    end_to_end_checked_on(TIMER_1MS, seed)


def end_to_end_checked_on(physics: dict, seed: int) -> None:
    m, _, _, _, timeline, edges = measure(physics, seed=seed)
    last = m.windows[-1]
    truth_j = timeline.energy_between(edges[0, 0], edges[-1, 3]) / len(edges)
    assert last.end_to_end_j.size == 1
    error_j = abs(float(last.end_to_end_j[0]) - truth_j)
    assert error_j <= 3 * float(last.end_to_end_u_j[0]) and error_j <= 0.01 * truth_j, error_j / truth_j


@pytest.mark.parametrize("seed", [103, 108, 109])  # refused at the meter's RUN 1 before
def test_the_meters_probe_does_not_refuse_a_coarse_timers_end_to_end_figure(seed: int) -> None:
    end_to_end_checked(seed)


def test_a_capture_whose_inferences_all_read_zero_ticks_still_measures_end_to_end() -> None:
    """The capture's RUN 10 read every inference 0 µs (the board's period kept each inside one 1 ms tick; 13 of
    seeds 100-129, two windows) and the all-zero rule refused it; the trace shows the RUN, so end to end stands."""
    end_to_end_checked(100)


TIMER_500US = {"ideal": True, "timer_resolution_s": 0.5e-3}


@pytest.mark.parametrize(("physics", "seed", "stage"), [
    (TIMER_1MS, 100, "inference"),  # every inference of the capture reads 0 µs (InvalidPayload before)
    (TIMER_1MS, 1, "inference"),  # the probe's inference reads 0 µs ("use a digitizing analyzer" before)
    (TIMER_1MS, 3, "retrieval"),  # the probe's retrieval reads 0 µs (the same)
    (TIMER_500US, 5, "inference"),  # one capture window reads 0 µs ("use a finer sample interval" before)
    (TIMER_500US, 8, "inference"),
])
def test_a_stage_read_as_0_us_is_left_untimed_naming_the_device_timer_and_its_tick(physics: dict, seed: int,
                                                                                   stage: str) -> None:
    """A stage the device's timer reads as 0 µs is shorter than its tick: no sample interval places its window,
    a finer timer in the firmware does. The tick expected is the twin's timer setting; end to end is checked
    against the twin's truth."""
    m, _, _, _, _, _ = measure(physics, seed=seed)
    read = [getattr(t, f"{stage}_us") for run in m.timings for t in run]
    assert 0.0 in read or seed in (1, 3)  # the case itself: a capture stage read 0 µs (seeds 1, 3: the probe's)
    refusal = m.inference_refused
    assert refusal is not None
    tick_us = physics["timer_resolution_s"] * 1e6
    assert f"{stage} stage" in refusal.reason and "timer" in refusal.reason, refusal.reason
    assert f"{tick_us:.4g} µs, the timer's tick" in refusal.reason, refusal.reason
    assert "sample interval (" not in str(refusal) and "digitizing analyzer" not in str(refusal)
    assert "finer timer in the firmware" in refusal.fix
    with pytest.raises(CannotResolve):
        _ = m.inference_j
    # The note the trace-latency test skips with does not blame the analyzer either.
    assert all("sample interval" not in w.trace_latency_note for w in m.windows), m.windows[-1].trace_latency_note
    end_to_end_checked_on(physics, seed)


def test_firmware_that_ran_nothing_is_still_refused_behind_a_coarse_timer() -> None:
    """A stubbed model call (the twin's `no-invoke` fault) on the capture's RUN: its 1 ms timer reads every
    stage 0 µs, as it reads a coarse timer's inferences, and the board stays idle. The twin's truth says
    nothing ran; the meter must refuse it as such, not measure the idle trace as end to end."""
    bench = Bench(replace(simulated_lab(), physics=TIMER_1MS), seed=100)
    try:
        dut = bench.device("imx500")
        entry = CATALOG.get("qsegment")
        dut.ensure_model(entry.data, entry.name)
        analyzer, supply = bench.analyzer("imx500")
        assert dut.twin is not None
        dut.twin.faults.inject(DeviceFault("no-invoke", count=100, after=1))  # the probe RUN 1 runs soundly
        with pytest.raises(InvalidPayload) as caught:
            measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=EnergyPlan(windows=2, runs_per_window=10))
        # The twin's truth: the refused RUN ran no stage at all (trigger pulses at idle power only).
        spans = [s for s in dut.twin.timeline.spans if s.start_s >= dut.twin.last_run_edges_s[0][0]]
        assert spans and all(s.stage == "idle" for s in spans)
        assert dut.twin.faults.fired.get("no-invoke") == 1
        message = str(caught.value)
        assert "'imx500'" in message and dut.port in message and "no activity" in message
        assert "Nothing ran" in message and "runs the model on RUN" in message
    finally:
        bench.close()


def test_firmware_that_times_nothing_is_refused_at_the_probe() -> None:
    """The same stub from the first RUN: every stage of the probe reads 0 µs, so there is no period to size an
    acquisition by (the meter used to go on with a period of 0)."""
    bench = Bench(replace(simulated_lab(), physics=TIMER_1MS), seed=100)
    try:
        dut = bench.device("imx500")
        entry = CATALOG.get("qsegment")
        dut.ensure_model(entry.data, entry.name)
        analyzer, supply = bench.analyzer("imx500")
        assert dut.twin is not None
        dut.twin.faults.inject(DeviceFault("no-invoke", count=100))
        with pytest.raises(InvalidPayload, match=r"'imx500'.*0\.0 µs in every stage.*runs the model on RUN"):
            measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=EnergyPlan(windows=2, runs_per_window=10))
    finally:
        bench.close()


@pytest.mark.parametrize(("physics", "seed"), [(TIMER_1MS, 13), (TIMER_1MS, 14), (TIMER_1MS, 19), (TIMER_500US, 15),
                                               (TIMER_500US, 16)])
def test_a_run_window_placed_by_a_coarse_timer_states_an_uncertainty_that_holds_its_error(physics: dict,
                                                                                        seed: int) -> None:
    """The run window (the meter's end to end where a stage read 0 µs) starts at the second inference's
    retrieval end, placed by the device's stamps: a difference of two floored stamps, up to a tick either way,
    into whatever stage lies there (at 1 ms: 0.29 % off with 0.09 % stated, on these seeds). Truth: the twin's
    energy over the inferences the window holds (3..n), divided by their number."""
    m, _, _, _, timeline, edges = measure(physics, seed=seed)
    last = m.windows[-1]
    n = len(edges)
    assert last.end_to_end_j.size == 1 and f"over {n - 2} back-to-back inferences" in last.trace_latency_note
    truth_j = timeline.energy_between(edges[1, 3], edges[-1, 3]) / (n - 2)
    error_j = abs(float(last.end_to_end_j[0]) - truth_j)
    assert error_j <= 3 * float(last.end_to_end_u_j[0]), (error_j / truth_j, last.end_to_end_u_j[0] / truth_j)


@pytest.mark.parametrize("seed", [0, 2, 20, 23, 27])
def test_the_tick_is_read_from_every_run_the_meter_saw_not_one_run_s_stamps(seed: int) -> None:
    """A RUN whose every stamp happens to be a multiple of 17 ms (a 1 ms timer, Q-Segment's 17 ms period) reads
    as a 17 ms "tick": the refusal named 16000 or 17000 µs as the timer's tick, and a run window priced a 17 ms
    start uncertainty (5.4 % stated, for a 0.3 % figure). The tick expected is the twin's 1 ms timer setting."""
    m, _, _, _, _, _ = measure(TIMER_1MS, seed=seed)
    refusal = m.inference_refused
    assert refusal is not None and "1000 µs, the timer's tick" in refusal.reason, refusal and refusal.reason
    stated = [float(w.end_to_end_u_j[0] / w.end_to_end_j[0]) for w in m.windows]
    # A 1 ms start uncertainty at ≈ 0.27 W over 8 inferences of ≈ 4.3 mJ: 0.3 %, and nowhere near a 17 ms one.
    assert max(stated) < 0.01, stated


@pytest.mark.parametrize("seed", [0, 3])
def test_energy_from_trace_names_the_device_timer_for_a_stage_read_as_0_us(seed: int) -> None:
    """`energy_from_trace` on a 0.5 ms timer's RUN with inferences read as 0 µs said "the window holds fewer
    than two samples; use a finer sample interval": no interval places a window the stamps make 0 µs long.
    The tick expected is the twin's timer setting."""
    m, _, _, _, _, _ = measure(TIMER_500US, seed=seed)
    timings = m.timings[-1]
    assert m.last_trace is not None and any(t.inference_us == 0.0 for t in timings)  # the case itself
    with pytest.raises(CannotResolve) as caught:
        energy_from_trace(m.last_trace.time_s, m.last_trace.power_w, timings)
    assert "inference stage" in caught.value.reason and "500 µs, the timer's tick" in caught.value.reason
    assert "sample interval (" not in str(caught.value) and "finer timer in the firmware" in caught.value.fix


def test_a_0_us_stage_on_an_analyzer_too_slow_for_a_tick_names_both_fixes() -> None:
    """On the 2281S (1 ms readings) a stage a 1 ms timer reads as 0 µs is shorter than two readings too: a
    finer firmware timer alone would leave per-inference windows refused, so the refusal names the analyzer
    and the timer (it named the timer only). End to end is still checked against the twin's truth."""
    m, _, _, _, _, _ = measure(TIMER_1MS, seed=0, dialect="keithley-2281s")
    refusal = m.inference_refused
    assert refusal is not None and m.sample_interval_s * 2 >= TIMER_1MS["timer_resolution_s"]
    assert "1000 µs, the timer's tick" in refusal.reason and "Keithley" in refusal.reason, refusal.reason
    assert "finer timer in the firmware" in refusal.fix and "digitizing analyzer" in refusal.fix, refusal.fix
