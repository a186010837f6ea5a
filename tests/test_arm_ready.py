"""An armed acquisition is ready for its trigger only once the instrument says so.

N6705C programming guide (Operating and Service Guide, "Triggered measurements"): after INITiate the
trigger system takes a few milliseconds to become ready; a trigger that arrives before then is ignored, and
the WTG-meas bit of the OPERation status register says when it is ready. A driver that starts the device
right after INIT has the first inference's trigger ignored: the capture fires on a later inference (or
never), and windows placed from the device's timings then land one period late — energies of several times
the truth, and an end-to-end window over idle, all with no error (measured from outside: 4.07x, 3.59x,
0.17x on Q-Segment/IMX500). The twins model the delay (`AnalyzerTwin(arm_latency_s=...)`: no status bit
while arming, device activity recorded meanwhile is not seen); `arm()` must return only once WTG is up.
"""

from __future__ import annotations

import pytest
import pyvisa

from pytest_edgehil import sim
from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.errors import InstrumentTimeout
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

from .conftest import MODELS

SUPPLY_V = 3.3


def test_energy_is_measured_from_the_first_inference_when_the_analyzer_arms_slowly(monkeypatch) -> None:
    """The bench twin takes 50 ms (real) to arm: longer than the device twin needs to record its RUN."""
    monkeypatch.setattr(sim, "ARM_LATENCY_S", 0.05)
    bench = Bench(simulated_lab(), seed=7)
    try:
        dut = bench.device("imx500")
        model = ModelCatalog(MODELS).get("qsegment")
        dut.ensure_model(model.data, model.name)
        analyzer, supply = bench.analyzer("imx500")
        twin = bench.analyzer_twin("imx500")
        assert twin is not None
        m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=EnergyPlan(windows=1, runs_per_window=8, timeout_s=3.0))
        edges = dut.twin.last_run_edges_s  # true (readout start, trigger, inference end, end) per inference
        # The capture fired on the first inference's edge (plus the bench's few-µs trigger latency).
        assert twin.last_capture is not None
        assert twin.last_capture.trigger_s - edges[0][1] == pytest.approx(0.0, abs=10e-6)
        truth_j = [twin.true_energy_j(start, end) for _, start, end, _ in edges]
        e2e_truth_j = [twin.true_energy_j(start, end) for start, _, _, end in edges]
        for measured, true in zip(m.windows[-1].inference_j, truth_j, strict=True):
            assert measured == pytest.approx(true, rel=0.01)
        for measured, true in zip(m.windows[-1].end_to_end_j, e2e_truth_j, strict=True):
            assert measured == pytest.approx(true, rel=0.01)
    finally:
        bench.close()


def test_arm_returns_once_the_instrument_reports_waiting_for_trigger() -> None:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=SUPPLY_V)
    timeline.append(StageSpan("idle", 0.0, 0.25, 0.01))
    with AnalyzerTwin(timeline, arm_latency_s=0.3) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=10.24e-6, points=50)
        analyzer.arm("EXT")
        # Asked from outside, as the manual says: the WTG-meas bit (8) of STAT:OPER:COND? is set.
        assert int(analyzer.link.query("STAT:OPER:COND? (@1)")) & 8
        analyzer.abort()
        analyzer.close()


def test_an_instrument_that_never_gets_ready_is_a_typed_timeout_naming_the_bit() -> None:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=SUPPLY_V)
    timeline.append(StageSpan("idle", 0.0, 0.25, 0.01))
    with AnalyzerTwin(timeline, arm_latency_s=30.0) as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        analyzer.arm_timeout_s = 0.3
        analyzer.configure(voltage_v=SUPPLY_V, current_range_a=0.1, sample_interval_s=10.24e-6, points=50)
        with pytest.raises(InstrumentTimeout, match=r"N6705C.*not ready for its trigger.*0\.3 s.*STAT:OPER:COND"):
            analyzer.arm("EXT")
        analyzer.close()
