"""Binary vs ASCII array transfer of about a million samples from the analyzer twin over TCP.

One Keysight N6705C capture of 524,288 points with current and voltage digitized (2**20 samples),
fetched through pyvisa-py and the driver: `FORM REAL` (float32 blocks) against `FORM ASC` (text).
Run: `.venv/bin/pytest benchmarks/test_bench_fetch.py --benchmark-only`. The `bare` case is pyvisa's
`query_binary_values` of the same two blocks on the same socket (group "fetch-real"): what the driver's
decoding, plausibility checks and error-queue drains add. `python -m benchmarks.ratios` interleaves them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import pyvisa

from pytest_edgehil.instruments import open_analyzer
from pytest_edgehil.instruments.keysight_n6705c import MAX_POINTS, KeysightN6705C
from pytest_edgehil.sim.analyzer_twin import AnalyzerTwin
from pytest_edgehil.sim.timeline import ActivityTimeline, StageSpan

SAMPLES = 2 * MAX_POINTS  # current and voltage


@pytest.fixture(scope="module")
def analyzer() -> Iterator[KeysightN6705C]:
    timeline = ActivityTimeline(idle_power_w=0.01, supply_v=3.3)
    timeline.append(StageSpan("inference", 0.0, 2.0, 0.2, trigger_high=True))
    with AnalyzerTwin(timeline) as twin:
        driver = open_analyzer(twin.resource, resource_manager=pyvisa.ResourceManager("@py"),
                               timeout_ms=60_000)
        assert isinstance(driver, KeysightN6705C)
        driver.configure(voltage_v=3.3, current_range_a=0.1, sample_interval_s=10.24e-6, points=MAX_POINTS)
        driver.arm("BUS")
        driver.trigger_now()
        driver.wait_complete(timeout_s=30.0)
        yield driver
        driver.close()


@pytest.mark.benchmark(group="fetch-real")
def test_bare_query_binary_values(benchmark, analyzer: KeysightN6705C) -> None:
    analyzer.set_transfer_format("REAL")
    resource = analyzer.link.resource

    def bare() -> list[np.ndarray]:
        return [resource.query_binary_values(f"FETC:ARR:{what}? (@1)", datatype="f", is_big_endian=True,
                                             container=np.array) for what in ("CURR", "VOLT")]

    blocks = benchmark.pedantic(bare, rounds=3, iterations=1, warmup_rounds=0)
    assert sum(b.size for b in blocks) == SAMPLES
    np.testing.assert_array_equal(blocks[0], analyzer.fetch_trace().current_a)


@pytest.mark.benchmark(group="fetch-real")
def test_fetch_real(benchmark, analyzer: KeysightN6705C) -> None:
    analyzer.set_transfer_format("REAL")
    trace = benchmark.pedantic(analyzer.fetch_trace, rounds=3, iterations=1, warmup_rounds=0)
    assert trace.current_a.size + trace.voltage_v.size == SAMPLES


@pytest.mark.parametrize("data_format", ["REAL", "ASC"])
def test_fetch_a_million_samples(benchmark, analyzer: KeysightN6705C, data_format: str) -> None:
    analyzer.set_transfer_format(data_format)
    trace = benchmark.pedantic(analyzer.fetch_trace, rounds=3, iterations=1, warmup_rounds=0)
    assert trace.current_a.size + trace.voltage_v.size == SAMPLES
    assert np.isfinite(trace.power_w).all()
    benchmark.extra_info["samples"] = SAMPLES
