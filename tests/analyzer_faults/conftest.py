"""Fixtures of the analyzer fault tests: an analyzer twin of each dialect (a real SCPI server on loopback TCP,
reached through pyvisa-py) and the driver opened on it, checked at close."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa

from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.driver import ScpiAnalyzer
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

from .rig import CAPTURES, IDLE_W, SUPPLY_V, TIMEOUT_MS


@pytest.fixture
def timeline() -> ActivityTimeline:
    bench = ActivityTimeline(idle_power_w=IDLE_W, supply_v=SUPPLY_V)
    bench.append(StageSpan("idle", 0.0, 0.25, IDLE_W))
    return bench


@pytest.fixture
def manager() -> pyvisa.ResourceManager:
    return pyvisa.ResourceManager("@py")



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
