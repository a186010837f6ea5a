"""`level_crossing_s`: where a level trigger fires on a piecewise-constant supply (closed form)."""

from __future__ import annotations

import pytest

from pytest_edgehil.sim.analyzer_acquisition import level_crossing_s
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

V = 2.0  # supply volts: current = power / 2


def timeline() -> ActivityTimeline:
    line = ActivityTimeline(idle_power_w=0.1, supply_v=V)  # idle: 0.05 A
    line.append(StageSpan("inference", 0.010, 0.015, 1.0))  # 0.5 A
    line.append(StageSpan("retrieval", 0.015, 0.020, 0.4))  # 0.2 A, contiguous
    line.append(StageSpan("idle", 0.020, 0.030, 0.1))
    line.append(StageSpan("inference", 0.040, 0.045, 1.0))  # after an unrecorded (idle) gap
    return line


@pytest.mark.parametrize(("after_s", "level_a", "slope", "expected_s"), [
    (0.0, 0.3, "POS", 0.010),  # idle -> active
    (0.011, 0.3, "POS", 0.040),  # armed inside the first burst: the next rising crossing
    (0.0, 0.3, "NEG", 0.015),  # 0.5 A -> 0.2 A falls through 0.3 A
    (0.0, 0.1, "NEG", 0.020),  # 0.2 A -> idle
    (0.021, 0.1, "POS", 0.040),  # across the unrecorded gap (idle) into the second burst
])
def test_crossings_at_span_edges(after_s: float, level_a: float, slope: str, expected_s: float) -> None:
    found = level_crossing_s(timeline(), after_s, level_a, slope, quantity="current", voltage_v=V)
    assert found == pytest.approx(expected_s)


@pytest.mark.parametrize(("level_a", "slope"), [(0.6, "POS"), (0.01, "NEG")])
def test_a_level_never_crossed_gives_none(level_a: float, slope: str) -> None:
    assert level_crossing_s(timeline(), 0.0, level_a, slope, quantity="current", voltage_v=V) is None


def test_the_ideal_source_voltage_never_crosses() -> None:
    assert level_crossing_s(timeline(), 0.0, 1.0, "POS", quantity="voltage", voltage_v=V) is None
