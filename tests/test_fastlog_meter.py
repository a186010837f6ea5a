"""The meter on a FastLog stream (R&S NGM202 twin over pyvisa-py TCP): no trigger, the RUN placed from
its first power step, every number within 0.5 % of the twins' truth; a lost chunk is never integrated
(the window is captured again, and refused with StreamGap when it keeps happening)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.errors import CannotResolve, InstrumentError, StreamGap, WindowMisplaced
from pytest_edgehil.measure.digital_windows import WINDOW_SOURCE_RUN_START
from pytest_edgehil.measure.energy import energy_from_trace
from pytest_edgehil.measure.meter import (
    STREAM_GAP_RETRIES,
    EnergyPlan,
    _placed_in_stream,
    measure_energy,
    plan_acquisition,
)

from .conftest import MODELS
from .truth_checks import method_error

CATALOG = ModelCatalog(MODELS)
PLAN = EnergyPlan(windows=1, runs_per_window=8)


def _ngm202_bench(physics: dict, model: str, seed: int):
    """A bench whose imx500 streams to the NGM202 twin, `model` loaded: (bench, dut, analyzer, supply)."""
    lab = replace(simulated_lab(), physics=physics)
    lab.devices["imx500"] = replace(lab.devices["imx500"], twin_analyzer="rs-ngm202")
    bench = Bench(lab, seed=seed)
    dut = bench.device("imx500")
    entry = CATALOG.get(model)
    dut.ensure_model(entry.data, entry.name)
    analyzer, supply = bench.analyzer("imx500")
    return bench, dut, analyzer, supply


@pytest.fixture
def ngm202_bench():
    bench, dut, analyzer, supply = _ngm202_bench({"ideal": True}, "qsegment", seed=3)
    yield bench, dut, analyzer, supply
    bench.close()


def _worst_errors(dut, m, samples=None) -> tuple[float, float]:
    """Worst relative error of the inference and end-to-end energies against the device twin's truth (of
    `samples` if given, else of the measurement's last window)."""
    window = samples if samples is not None else m.windows[-1]
    timeline, edges = dut.twin.timeline, np.array(dut.twin.last_run_edges_s)
    inference = np.array([timeline.energy_between(b, c) for _, b, c, _ in edges])
    end_to_end = np.array([timeline.energy_between(a, d) for a, _, _, d in edges])
    if samples is not None:  # a window measured outside the meter: no instrument limit stated, none taken off
        return (float(np.abs(window.inference_j / inference - 1).max()),
                float(np.abs(window.end_to_end_j / end_to_end - 1).max()))
    on = dut.twin.physics.instrument_accuracy_rel > 0  # beyond the limit the meter states, where the twin errs
    return (float(method_error(window.inference_j, inference, window.inference_instrument_j, instrument_errors=on).max()),
            float(method_error(window.end_to_end_j, end_to_end, window.end_to_end_instrument_j,
                               instrument_errors=on).max()))


def test_a_stream_is_measured_within_half_a_percent_from_the_runs_first_step(ngm202_bench):
    bench, dut, analyzer, supply = ngm202_bench
    m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a, plan=PLAN)
    assert m.instrument == "R&S NGM202" and m.window_source == WINDOW_SOURCE_RUN_START
    assert m.last_trace is not None and not m.last_trace.trigger_located
    assert m.windows[-1].inference_j.size == 8
    inference_err, end_to_end_err = _worst_errors(dut, m)
    assert inference_err < 0.005 and end_to_end_err < 0.005, (inference_err, end_to_end_err)
    assert bench.analyzer_twin("imx500").lost_chunks == 0


def test_a_lost_chunk_is_captured_again_never_integrated(ngm202_bench):
    bench, dut, analyzer, supply = ngm202_bench
    twin = bench.analyzer_twin("imx500")
    twin.inject("lost-chunk")  # the stream's second chunk: the RUN's window needs it (start latency 0.2 s)
    m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a, plan=PLAN)
    assert twin.faults.fired == {"lost-chunk": 1} and twin.lost_chunks >= 1
    # The number comes from the second, whole record: its runs are the device's last RUN.
    inference_err, end_to_end_err = _worst_errors(dut, m)
    assert inference_err < 0.005 and end_to_end_err < 0.005, (inference_err, end_to_end_err)


def test_a_stream_that_keeps_losing_chunks_is_refused_with_stream_gap(ngm202_bench):
    bench, dut, analyzer, supply = ngm202_bench
    twin = bench.analyzer_twin("imx500")
    twin.inject("lost-chunk", count=STREAM_GAP_RETRIES + 1)
    with pytest.raises(StreamGap, match=r"chunk .* may have been overwritten.*refused") as info:
        measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a, plan=PLAN)
    assert isinstance(info.value, InstrumentError) and twin.resource in str(info.value)
    assert twin.faults.fired == {"lost-chunk": STREAM_GAP_RETRIES + 1}


@pytest.fixture
def rc_clock_bench():
    """The NGM202 stream with an RC-oscillator board: its timer 0.2 % fast against the analyzer."""
    bench, dut, analyzer, supply = _ngm202_bench({"ideal": True, "clock_ppm": 2000.0}, "tinytracker", seed=1)
    yield dut, analyzer, supply
    bench.close()


def test_a_stream_from_a_board_with_an_rc_clock_is_measured_within_half_a_percent(rc_clock_bench):
    # The record's t = 0 is its first step plus the device-timed readout (17.9 ms, 36 µs long at 0.2 %):
    # the locator must search that far for the first edges, then fit the clock over the run (was +240 %).
    dut, analyzer, supply = rc_clock_bench
    m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                       plan=EnergyPlan(windows=1, runs_per_window=20))
    inference_err, end_to_end_err = _worst_errors(dut, m)
    assert inference_err < 0.005 and end_to_end_err < 0.005, (inference_err, end_to_end_err)
    assert m.windows[-1].clock_ratio == pytest.approx(1 / 1.002, rel=2e-5)


# A record placed this far off the device's t = 0, the locator not told (origin_u_s = 0): past half the 0.86 ms
# inference, no search can tell an inference's start from its end.
_UNTOLD_ORIGIN_S = 1e-3


def test_windows_placed_by_an_unchecked_clock_are_refused_not_measured(rc_clock_bench):
    # The same record, the locator not told how far t = 0 may be off (36 µs here: inside its 0.5 % search,
    # which pass 1 keeps until three located edges pin the clock), so it still finds the edges and fits the
    # clock; placed a further 0.3 ms off it does too, since its first searches run at the RUN's envelope's
    # clock (they ran at the device's, which drifted 0.2 % away, and refused it): both measured, the located
    # edges confirming the clock. Placed 1 ms off, the windows it could only place by a clock the edges do not
    # confirm must be refused, never integrated.
    dut, analyzer, supply = rc_clock_bench
    plan = EnergyPlan(windows=1, runs_per_window=20)
    m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a, plan=plan)
    timings, trace = m.timings[-1], m.last_trace
    _, _, points, pre = plan_acquisition(timings[0], analyzer, plan)  # the meter's own cut of the record
    time_s, power_w = _placed_in_stream(trace.time_s, trace.power_w, timings[0], pre, points, analyzer)
    for shift_s in (0.0, 0.3e-3):
        found = energy_from_trace(time_s - shift_s, power_w, timings, origin_u_s=0.0)
        inference_err, end_to_end_err = _worst_errors(dut, m, found)
        assert inference_err < 0.005 and end_to_end_err < 0.005, (shift_s, inference_err, end_to_end_err)
        assert found.clock_ratio == pytest.approx(1 / 1.002, rel=2e-5)
    with pytest.raises((CannotResolve, WindowMisplaced), match=r"window \d+ .*not visible in the trace|disagree"):
        energy_from_trace(time_s - _UNTOLD_ORIGIN_S, power_w, timings, origin_u_s=0.0)

def test_windows_placed_by_an_unchecked_clock_are_refused_for_another_seed_too():
    """test_windows_placed_by_an_unchecked_clock_are_refused_not_measured on the bench of seed 24 (found by
    running the suite with every seeded generator shifted: the refusal held only for some seeds)."""
    bench, dut, analyzer, supply = _ngm202_bench({"ideal": True, "clock_ppm": 2000.0}, "tinytracker", seed=24)
    try:
        plan = EnergyPlan(windows=1, runs_per_window=20)
        m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a, plan=plan)
        timings, trace = m.timings[-1], m.last_trace
        _, _, points, pre = plan_acquisition(timings[0], analyzer, plan)
        time_s, power_w = _placed_in_stream(trace.time_s, trace.power_w, timings[0], pre, points, analyzer)
        with pytest.raises((CannotResolve, WindowMisplaced)):
            energy_from_trace(time_s - _UNTOLD_ORIGIN_S, power_w, timings, origin_u_s=0.0)
    finally:
        bench.close()


def test_the_record_handed_to_the_locator_opens_at_idle():
    # A FastLog record starts as it is armed, while the previous command still drains through the supply path
    # (behind a 1 µs RC: 251 mW falling to the 12 mW idle over ~10 samples). A triggered capture's pre-trigger
    # part holds the settled idle before the RUN; the record cut to look like one must too, or the RUN's first
    # edge, searched ±90 µs, reads its level in that decay (it was placed 90 µs off).
    bench, dut, analyzer, supply = _ngm202_bench({"decoupling_tau_s": 1e-6}, "tinytracker", seed=13)
    try:
        plan = EnergyPlan(windows=1, runs_per_window=10)
        m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=plan)
        timings, trace = m.timings[-1], m.last_trace
        _, _, points, pre = plan_acquisition(timings[0], analyzer, plan)
        _, power_w = _placed_in_stream(trace.time_s, trace.power_w, timings[0], pre, points, analyzer)
        idle_w = dut.twin.timeline.idle_power_w  # the twin's truth
    finally:
        bench.close()
    assert abs(trace.power_w[0] - idle_w) > 0.1  # the raw record does open on the decay
    lead = power_w[:4]  # run_start.LEAD_SAMPLES: what the first edge's level is read from
    assert np.abs(lead - idle_w).max() < 0.02 * float(np.max(power_w)), lead
