"""N6705C User's Guide p. 213, "Capture Pre-Trigger Data": "If, during a pre-trigger data acquisition, a trigger
occurs before the pre-trigger data count is completed, the measurement system ignores this trigger." So `arm()`
must not hand the bench over to the device (whose RUN raises the trigger) before the pre-trigger points have had
their time to be digitized: the meter's pre-trigger part (1.25 × the readout + 20 samples) is longer than the
readout that precedes the first trigger, and a first trigger ignored makes the capture fire on a later inference.

The wait is asserted as what the driver asks of the clock (its sleeps), not as elapsed wall time."""

from __future__ import annotations

import pytest
import pyvisa

from pytest_edgehil.instruments import driver as driver_module
from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

INTERVAL_S = 20.48e-6  # on the guide's grid


@pytest.mark.parametrize("pretrigger_points", [0, 1000])
def test_arm_waits_out_the_pretrigger_count_before_returning(monkeypatch: pytest.MonkeyPatch,
                                                             pretrigger_points: int) -> None:
    timeline = ActivityTimeline(idle_power_w=0.033, supply_v=3.3)
    timeline.append(StageSpan("idle", 0.0, 0.05, 0.033))
    slept: list[float] = []
    real_sleep = driver_module.time.sleep
    with AnalyzerTwin(timeline, dialect="keysight-n6705c") as twin:
        analyzer = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"))
        assert isinstance(analyzer, ScpiAnalyzer)
        analyzer.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=INTERVAL_S, points=4000,
                           pretrigger_points=pretrigger_points)

        def recorded_sleep(seconds: float) -> None:
            slept.append(seconds)
            real_sleep(min(seconds, 0.001))

        monkeypatch.setattr(driver_module.time, "sleep", recorded_sleep)
        analyzer.arm("BUS")
        monkeypatch.setattr(driver_module.time, "sleep", real_sleep)
        analyzer.abort()
        analyzer.close()
    fill_s = pretrigger_points * INTERVAL_S  # 20.48 ms for 1000 points; nothing to wait for with none
    assert sum(slept) >= fill_s * (1 - 1e-6)
