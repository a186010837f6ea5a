"""The rig of the analyzer fault tests: each dialect's capture, the device played on the twin's timeline, and
the check that a capture after a fault is exactly what the twin served (the fixtures: conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin

# The same device playback and stage powers as the fault-free twin tests: a fault changes nothing else.
from ..test_analyzer_twin import IDLE_W, INFERENCE_W, play_device

__all__ = ["BINARY", "CAPTURES", "IDLE_W", "LATE_S", "POINTS", "SUPPLY_V", "TIMEOUT_MS", "TRIGGERED",
           "assert_capture_is_what_the_twin_served", "capture", "configure_and_arm", "streams"]

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
