"""Fixtures the suites (and users' own tests) compose: session → bench → device with model → recorder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_edgehil.bench import Bench, DeviceUnderTest, SupplySettings
from pytest_edgehil.config.catalog import CatalogModel
from pytest_edgehil.config.pairs import Pair
from pytest_edgehil.instruments.base import PowerAnalyzer
from pytest_edgehil.measure.meter import EnergyMeasurement, EnergyPlan, measure_energy
from pytest_edgehil.model.info import ModelInfo
from pytest_edgehil.plugin.recorder import Recorder, context_key
from pytest_edgehil.plugin.session import EdgeHILSession, duts_key, session_key


@pytest.fixture(scope="session")
def edgehil_session(pytestconfig: pytest.Config) -> EdgeHILSession:
    return pytestconfig.stash[session_key]


@pytest.fixture(scope="session")
def edgehil_bench(edgehil_session: EdgeHILSession) -> Iterator[Bench]:
    bench = edgehil_session.get_bench()
    yield bench
    bench.close()
    edgehil_session.bench = None


@pytest.fixture
def edgehil_pair(request: pytest.FixtureRequest) -> Pair:
    # Parametrized by the plugin's pytest_generate_tests; reached directly only when misused.
    if not hasattr(request, "param"):
        pytest.fail("edgehil_pair is parametrized by pytest-edgehil; request it from a test, not a fixture "
                    "outside the suites' parametrization", pytrace=False)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def edgehil_model(edgehil_pair: Pair, edgehil_session: EdgeHILSession) -> CatalogModel:
    return edgehil_session.catalog.get(edgehil_pair.model)


@pytest.fixture
def model_info(edgehil_model: CatalogModel) -> ModelInfo:
    return edgehil_model.info


@pytest.fixture
def device(request: pytest.FixtureRequest, edgehil_pair: Pair, edgehil_bench: Bench,
           edgehil_model: CatalogModel) -> DeviceUnderTest:
    """The pair's device, connected, with the pair's model active and a fresh traffic log."""
    dut = edgehil_bench.device(edgehil_pair.device)
    dut.traffic.clear()
    request.node.stash.setdefault(duts_key, []).append(dut)
    dut.ensure_model(edgehil_model.data, edgehil_model.name)
    request.node.stash.setdefault(context_key, {}).update(
        model_sha256=dut.loaded_sha256, device_firmware=dut.hello.firmware,
        protocol_version=dut.hello.protocol_version, device_serial=dut.hello.serial_number)
    return dut


@pytest.fixture
def edgehil_record(request: pytest.FixtureRequest, edgehil_pair: Pair,
                   edgehil_session: EdgeHILSession) -> Recorder:
    return Recorder(request.node, edgehil_pair, edgehil_session.backend_label)


@pytest.fixture(scope="session")
def dataset_root(edgehil_session: EdgeHILSession) -> Path | None:
    return edgehil_session.dataset_root


@pytest.fixture
def power_analyzer(edgehil_pair: Pair, edgehil_bench: Bench) -> tuple[PowerAnalyzer, SupplySettings]:
    """The analyzer on the pair's device supply (the SCPI twin over TCP for a simulated device)."""
    return edgehil_bench.analyzer(edgehil_pair.device)


@pytest.fixture
def energy_plan(pytestconfig: pytest.Config, device: DeviceUnderTest) -> EnergyPlan:
    """MLPerf Tiny's 5 windows of >= 10 s on hardware; short windows on the simulated bench."""
    if not device.config.simulated:
        return EnergyPlan.hardware()
    base = EnergyPlan.simulated()
    return EnergyPlan(windows=int(pytestconfig.getini("edgehil_energy_windows") or base.windows),
                      runs_per_window=int(pytestconfig.getini("edgehil_energy_runs") or base.runs_per_window))


@pytest.fixture
def energy_meter(request: pytest.FixtureRequest, device: DeviceUnderTest,
                 power_analyzer: tuple[PowerAnalyzer, SupplySettings], energy_plan: EnergyPlan,
                 edgehil_session: EdgeHILSession) -> EnergyMeasurement:
    """Energy per inference of the pair's model on its device, measured once per pair and session."""
    key = (device.name, device.loaded_sha256)
    cache = edgehil_session.energy_cache
    if key not in cache:
        analyzer, supply = power_analyzer
        cache[key] = measure_energy(device, analyzer, supply_v=supply.supply_v,
                                    current_range_a=supply.current_range_a, plan=energy_plan)
    measurement = cache[key]
    request.node.stash.setdefault(context_key, {}).update(
        instrument_idn=measurement.idn, sample_interval_s=measurement.sample_interval_s)
    return measurement
