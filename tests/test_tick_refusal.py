"""A window refused for its device timer's tick says so: the edges the trace did not locate sit where the
device's stamps put them, and those are only as exact as the timer's tick, whatever the clock map.

Q-Segment's 0.23 ms inference on the N6705C at 40.96 µs (the interval MLPerf Tiny's 10 s window runs at),
behind a 1 µs device timer, the clock otherwise exact: the clock map is pinned by the located edges, and the
refusal used to say the edges "are not visible ... and the located ones do not pin that clock", sending the
user after the clock and the wiring. The truth here is the twin's: its timer floors every stamp to 1 µs.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import simulated_lab
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy

from .conftest import MODELS

CATALOG = ModelCatalog(MODELS)
COARSE_S = 40.96e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_a_window_refused_for_the_device_timers_tick_names_the_tick_not_the_clock(seed: int) -> None:
    bench = Bench(replace(simulated_lab(), physics={"ideal": True, "timer_resolution_s": 1e-6}), seed=seed)
    try:
        dut = bench.device("imx500")
        entry = CATALOG.get("qsegment")
        dut.ensure_model(entry.data, entry.name)
        analyzer, supply = bench.analyzer("imx500")
        finest = analyzer.supported_sample_interval_s
        analyzer.supported_sample_interval_s = lambda s: finest(max(s, COARSE_S))  # type: ignore[method-assign]
        m = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=EnergyPlan(windows=1, runs_per_window=20))
    finally:
        bench.close()
    assert m.sample_interval_s == pytest.approx(COARSE_S)
    refusal = m.inference_refused
    assert refusal is not None and refusal.window.startswith("inference window")
    text = str(refusal)
    assert "1 µs tick" in text and "device's timer" in text  # what limits it: the stamps' tick
    assert "do not pin that clock" not in text  # the located edges did pin it
    assert "finer sample interval" in refusal.fix and "stage-only loop" in refusal.fix
