"""Fixtures the suites (and users' own tests) compose: session → bench → device with model → recorder.

Every name is the plugin's own (`edgehil_*`), so it never claims a generic name like `device` in a
project that happens to have the plugin installed. Bodies import what they need: this module is loaded
in every pytest run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_edgehil.config.session import EdgeHILSession
from pytest_edgehil.plugin.run import duts_key, run_key

if TYPE_CHECKING:
    from pytest_edgehil.bench import Bench, DeviceUnderTest, SupplySettings
    from pytest_edgehil.config.catalog import CatalogModel
    from pytest_edgehil.config.pairs import Pair
    from pytest_edgehil.instruments.base import PowerAnalyzer
    from pytest_edgehil.measure.interleave import ABEnergy
    from pytest_edgehil.measure.meter import EnergyMeasurement, EnergyPlan
    from pytest_edgehil.model.info import ModelInfo
    from pytest_edgehil.plugin.recorder import Recorder
    from pytest_edgehil.sim.device_faults import DeviceFaultPlan

SENSOR_INPUTS = "inputs:sensor"  # HELLO capability: the network runs on the board's sensor frames, not pushed inputs
HOW_TO_PARAMETRIZE = (
    "{test} uses {fixtures}: these run once per model/device pair, and only tests marked with the metrics "
    "they check are parametrized over pairs. Add @pytest.mark.edgehil_metrics(\"inference_ms\", …, "
    "unbudgeted=True) to {test} (unbudgeted=True also runs models without a budget, e.g. --model PATH.tflite)")


@pytest.fixture(scope="session")
def edgehil_session(pytestconfig: pytest.Config) -> EdgeHILSession:
    """The configuration of this run (lab, selected devices, catalog, budgets, pairs); frozen."""
    return pytestconfig.stash[run_key].session


@pytest.fixture(scope="session")
def edgehil_bench(pytestconfig: pytest.Config) -> Iterator[Bench]:
    """The bench of this session: devices and analyzers come up on first use, all close at the end."""
    run = pytestconfig.stash[run_key]
    yield run.get_bench()
    run.close_bench()


@pytest.fixture
def edgehil_pair(request: pytest.FixtureRequest) -> Pair:
    # Parametrized by the plugin's pytest_generate_tests for marked tests; reached here only when misused.
    if not hasattr(request, "param"):
        used = [n for n in request.fixturenames if n.startswith("edgehil_") and n != "edgehil_session"]
        pytest.fail(HOW_TO_PARAMETRIZE.format(fixtures=", ".join(used), test=request.node.name), pytrace=False)
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def edgehil_model(edgehil_pair: Pair, edgehil_session: EdgeHILSession) -> CatalogModel:
    """The pair's model from the catalog (bytes, card, static analysis on demand), checked as the models
    named with --model are at start-up (`CatalogModel.check`: a damaged file, a dynamic input without a size,
    an input or outputs over one frame): a ModelError here, before its device is touched."""
    model = edgehil_session.catalog.get(edgehil_pair.model)
    model.check()
    return model


@pytest.fixture
def edgehil_model_info(edgehil_model: CatalogModel) -> ModelInfo:
    """Static analysis of the pair's model: size, MACs, peak activation memory, tensors."""
    return edgehil_model.info


@pytest.fixture
def edgehil_dut(request: pytest.FixtureRequest, edgehil_pair: Pair, edgehil_bench: Bench,
                edgehil_model: CatalogModel) -> DeviceUnderTest:
    """The pair's device, connected, with the pair's model active and a fresh traffic log.

    A device whose port was lost in an earlier test (the board reset or rebooted: that test failed, its
    number is lost) is found again first, by `Bench.recover_lost` within the bench's timeout, and the test's
    report says so. If it is not found, this test errors with a DeviceError saying what to check, and the
    device's later tests error at once instead of each waiting again.
    """
    from pytest_edgehil.errors import DeviceError
    from pytest_edgehil.plugin.recorder import context_key

    name = edgehil_pair.device
    users = request.config.stash[run_key].last_test_of
    previous, users[name] = users.get(name), request.node.nodeid
    dut = edgehil_bench.device(name)
    dut.traffic.clear()
    request.node.stash.setdefault(duts_key, []).append(dut)
    _find_again_if_lost(request, edgehil_bench, name, f"after test {previous}" if previous else "")
    artifact, _ = edgehil_model.artifact_for(dut.config.kind)  # a compiled file where the card has one for the kind
    if artifact is edgehil_model.data:  # the .tflite itself, not a file compiled for the kind
        _refuse_float_on_integer_board(edgehil_model, dut)
    try:
        dut.ensure_model(artifact, edgehil_model.name)
    except DeviceError:
        if dut.client.lost is None:
            raise
        # Lost between tests, learnt only now (the first command after a reboot finds the port gone): once more.
        _find_again_if_lost(request, edgehil_bench, name, "while this test selected its model")
        dut.ensure_model(artifact, edgehil_model.name)
    _feed_the_cards_size(dut, edgehil_model)
    request.node.stash.setdefault(context_key, {}).update(
        model_sha256=dut.loaded_sha256, device_firmware=dut.hello.firmware,
        protocol_version=dut.hello.protocol_version, device_serial=dut.hello.serial_number)
    if dut.place is not None:  # a labgrid farm board: which place, on which exporter host, measured it
        request.node.stash[context_key].update(place=dut.place.place, place_host=dut.place.host)
    return dut


def _refuse_float_on_integer_board(model: CatalogModel, dut: DeviceUnderTest) -> None:
    """ModelError, before any upload, for a model a board of the device's kind cannot run (`DeviceKind.refuses`:
    float arithmetic on a kind that runs quantized models only): a twin's timing of it is no board's figure."""
    refuse_float_model(model.info, f"model {model.name!r} ({model.path})", dut)


def refuse_float_model(info: ModelInfo, what: str, dut: DeviceUnderTest) -> None:
    """`_refuse_float_on_integer_board` for any model about to be uploaded (`what` names it: the pair's model,
    an A/B baseline)."""
    from pytest_edgehil.config.kinds import get_device_kind
    from pytest_edgehil.errors import ModelError

    reason = get_device_kind(dut.config.kind).refuses(info)
    if reason is None:
        return
    raise ModelError(f"{what}: {reason}, so device {dut.name!r} cannot run it and no "
                     "figure of it there can exist. Convert it to a full-integer (int8) model, or give its card an "
                     "`artifacts` entry compiled for the kind, or measure it on a board that computes in float")


def _feed_the_cards_size(dut: DeviceUnderTest, model: CatalogModel) -> None:
    """A model with dynamic inputs runs at its card's `input.shape`: the device is given zeros of that shape
    (SET_INPUT sizes it; a static model's device feeds zeros of its own shape by itself). ModelError naming
    the card, before any RUN, when the card gives no size."""
    info = model.info  # analysed once per file and shape (model.info's cache): cheap after the first test
    if not info.dynamic_inputs:
        return
    if not info.resolved:
        from pytest_edgehil.errors import ModelError

        raise ModelError(f"model {model.name!r} ({model.path}): {info.dynamic_text()}, so the device has no size "
                         f"to run it at; give the input shape to measure as `input.shape` in its card "
                         f"{model.card_path} (docs/models.md)")
    import numpy as np

    for index, spec in enumerate(info.inputs):
        dut.client.set_input(index, np.zeros(spec.shape, dtype=spec.dtype))


def _find_again_if_lost(request: pytest.FixtureRequest, bench: Bench, name: str, after: str) -> None:
    note = bench.recover_lost(name, after=after)
    if note is not None:
        request.node.add_report_section("setup", "edgehil", note)


@pytest.fixture
def edgehil_pushed_inputs(edgehil_dut: DeviceUnderTest) -> DeviceUnderTest:
    """The pair's device, where the host can push inputs to it; skips, with the reason, on a board whose
    network consumes its own sensor frames (HELLO capability `inputs:sensor`)."""
    if SENSOR_INPUTS in edgehil_dut.hello.capabilities:
        pytest.skip(f"device {edgehil_dut.name!r} infers on its own sensor frames (HELLO says {SENSOR_INPUTS!r}): "
                    "this test pushes its inputs from a data set")
    return edgehil_dut


@pytest.fixture
def edgehil_device_faults(edgehil_dut: DeviceUnderTest) -> Iterator[DeviceFaultPlan]:
    """The fault plan of the pair's device twin (`pytest_edgehil.sim.device_faults`): arm faults with
    `.inject(DeviceFault("corrupt", direction="reply"))` or `.set_rate(p)`; `.fired` counts what fired.
    What a test arms is disarmed after it (the lab file's `[devices.NAME.faults]` stay). Skips on a real
    board: its faults come by themselves."""
    if edgehil_dut.twin is None:
        pytest.skip(f"device {edgehil_dut.name!r} on {edgehil_dut.port} is a real board: fault injection needs "
                    "its twin (`simulated = true` in the lab file, or --backend sim)")
    plan = edgehil_dut.twin.faults
    armed, rate = list(plan.faults), plan.rate
    yield plan
    plan.disarm_all_but(armed)  # consumed ones stay consumed
    plan.set_rate(rate)


@pytest.fixture
def edgehil_record(request: pytest.FixtureRequest, edgehil_pair: Pair,
                   edgehil_session: EdgeHILSession) -> Recorder:
    """Checks measured values against the pair's budget and records them for the summary and results."""
    from pytest_edgehil.plugin.recorder import Recorder

    return Recorder(request.node, edgehil_pair, edgehil_session.backend_label)


@pytest.fixture(scope="session")
def edgehil_dataset_root(edgehil_session: EdgeHILSession) -> Path | None:
    """--dataset-root, else the lab file's dataset_root, else None (suites skip the public-data tests)."""
    return edgehil_session.dataset_root


@pytest.fixture
def edgehil_analyzer(edgehil_pair: Pair, edgehil_bench: Bench) -> tuple[PowerAnalyzer, SupplySettings]:
    """The analyzer on the pair's device supply (the SCPI twin over TCP for a simulated device).

    Skips, with the reason, on a real board whose lab-file table wires no analyzer: energy cannot be
    measured there, which is not an error of the test."""
    missing = edgehil_bench.analyzer_missing(edgehil_pair.device)
    if missing is not None:
        pytest.skip(missing)
    return edgehil_bench.analyzer(edgehil_pair.device)


@pytest.fixture
def edgehil_energy_plan(pytestconfig: pytest.Config, edgehil_dut: DeviceUnderTest) -> EnergyPlan:
    """MLPerf Tiny's 5 windows of >= 10 s on hardware; short windows on the simulated bench."""
    from pytest_edgehil.measure.meter import EnergyPlan

    if not edgehil_dut.config.simulated:
        return EnergyPlan.hardware()
    base = EnergyPlan.simulated()
    return EnergyPlan(windows=int(pytestconfig.getini("edgehil_energy_windows") or base.windows),
                      runs_per_window=int(pytestconfig.getini("edgehil_energy_runs") or base.runs_per_window))


# The figures an energy measurement yields; their budgets' tolerance is what its instrument's accuracy may take.
ENERGY_METRICS = ("inference_mj", "inference_mw", "end_to_end_mj", "end_to_end_mw")


def energy_tolerance(pair: Pair) -> float | None:
    """The smallest relative tolerance the pair's budget gives an energy or power figure; None without one."""
    limits = pair.budget.limits if pair.budget else {}
    tolerances = [limits[m].tolerance for m in ENERGY_METRICS if m in limits and limits[m].tolerance is not None]
    return min(tolerances) if tolerances else None  # type: ignore[type-var]


@pytest.fixture
def edgehil_energy(request: pytest.FixtureRequest, pytestconfig: pytest.Config, edgehil_dut: DeviceUnderTest,
                   edgehil_bench: Bench, edgehil_energy_plan: EnergyPlan, edgehil_pair: Pair) -> EnergyMeasurement:
    """Energy per inference of the pair's model on its device, measured once per pair and session.

    Where the data cannot give the figure — the meter's CannotResolve (a window the trace cannot resolve) or
    SupplyPathTooSlow (a supply path too slow for the RUN's stages), or the monitor's MonitorLimit (a sample rate it does not have) — the energy tests skip with that typed
    refusal as the reason, never an error. A monitor that cannot power the board is a ConfigError at
    bring-up instead (a wiring to change: docs/instruments.md). A board with no analyzer wired whose agent
    serves on-board counters (`energy_read`) is measured through them: end-to-end energy over many
    inferences (`measure.onboard_energy`); per-inference energy then skips with the reason. A figure its
    instrument's data-sheet accuracy cannot state to within its budget's tolerance is such a refusal too
    (`measure_energy(max_instrument_rel=...)`), naming the instrument, its range and the fix. The records carry
    the instrument's accuracy and each figure's stated uncertainty (relative) in their context. A trigger that
    never came (TriggerTimeout) is waited for once per device and analyzer in a session: later tests fail at
    once with TriggerTimedOutEarlier (`plugin/trigger_faults.py`)."""
    from pytest_edgehil.errors import CannotResolve, MonitorLimit, SupplyPathTooSlow
    from pytest_edgehil.measure.meter import measure_energy
    from pytest_edgehil.measure.onboard_energy import has_onboard_counters, measure_onboard_energy
    from pytest_edgehil.plugin.recorder import context_key
    from pytest_edgehil.plugin.trigger_faults import trigger_once

    key = (edgehil_dut.name, edgehil_dut.loaded_sha256)
    cache = pytestconfig.stash[run_key].energy_cache
    if key not in cache:
        onboard = edgehil_bench.analyzer_missing(edgehil_dut.name) is not None and has_onboard_counters(edgehil_dut)
        analyzer, supply = (None, None) if onboard else request.getfixturevalue("edgehil_analyzer")
        try:
            if analyzer is None or supply is None:
                cache[key] = measure_onboard_energy(edgehil_dut, edgehil_energy_plan)
            else:
                with trigger_once(request.session, edgehil_dut.name, analyzer_name(supply), request.node.nodeid):
                    cache[key] = measure_energy(edgehil_dut, analyzer, supply_v=supply.supply_v,
                                                current_range_a=supply.current_range_a, plan=edgehil_energy_plan,
                                                max_instrument_rel=energy_tolerance(edgehil_pair))
        except (MonitorLimit, CannotResolve, SupplyPathTooSlow) as exc:  # what the data cannot give: a typed refusal
            cache[key] = exc
    measurement = cache[key]
    if isinstance(measurement, MonitorLimit):
        pytest.skip(f"refused by the power monitor: {measurement}")
    if isinstance(measurement, (CannotResolve, SupplyPathTooSlow)):
        pytest.skip(f"refused by the meter: {measurement}")
    request.node.stash.setdefault(context_key, {}).update(
        instrument_idn=measurement.idn, sample_interval_s=measurement.sample_interval_s,
        instrument=measurement.instrument, window_source=measurement.window_source, **uncertainty_context(measurement))
    return measurement


def uncertainty_context(measurement: EnergyMeasurement) -> dict[str, object]:
    """What a record says of its figure's uncertainty: the instrument's accuracy and range, and each figure's
    stated standard uncertainty and instrument limit, relative (`EnergyMeasurement.uncertainty_rel`)."""
    context: dict[str, object] = {}
    if measurement.accuracy is not None:
        context["instrument_accuracy"] = measurement.accuracy.describe()
        if measurement.accuracy.range_a is not None:
            context["current_range_a"] = measurement.accuracy.range_a
    for name in ("end_to_end", *(() if measurement.inference_refused else ("inference",))):
        for key, value in ((f"{name}_u_rel", measurement.uncertainty_rel(f"{name}_j")),
                           (f"{name}_instrument_rel", measurement.instrument_rel(f"{name}_j"))):
            if not math.isnan(value):
                context[key] = value
    return context


@pytest.fixture
def edgehil_ab_energy(request: pytest.FixtureRequest, pytestconfig: pytest.Config, edgehil_dut: DeviceUnderTest,
                      edgehil_analyzer: tuple[PowerAnalyzer, SupplySettings], edgehil_energy_plan: EnergyPlan,
                      edgehil_model: CatalogModel) -> ABEnergy:
    """The pair's model and its `--edgehil-ab` baseline measured interleaved on the pair's device, one
    window each per round (AB, BA, …; as many rounds as the energy plan has windows). Skips without
    --edgehil-ab; a ConfigError (a missing baseline model) fails the test naming the file. A missing trigger
    is waited for once per device and analyzer, as for `edgehil_energy`."""
    from pytest_edgehil.measure.interleave import ABModel, measure_energy_ab
    from pytest_edgehil.model.info import analyze_model
    from pytest_edgehil.plugin.gate import ab_source_key
    from pytest_edgehil.plugin.trigger_faults import trigger_once

    source = pytestconfig.stash.get(ab_source_key, None)
    if source is None:
        pytest.skip("same-session A/B needs --edgehil-ab=DIR or --edgehil-ab=git:REV (the baseline's models)")
    baseline = source.model_bytes(edgehil_model.path, edgehil_model.name)
    # Both sides are uploaded as .tflite bytes (measure_energy_ab): a float baseline is refused as a float model.
    refuse_float_model(analyze_model(baseline, edgehil_model.name),
                       f"the --edgehil-ab baseline of model {edgehil_model.name!r} ({source.spec})", edgehil_dut)
    analyzer, supply = edgehil_analyzer
    with trigger_once(request.session, edgehil_dut.name, analyzer_name(supply), request.node.nodeid):
        return measure_energy_ab(edgehil_dut, analyzer, supply_v=supply.supply_v,
                                 current_range_a=supply.current_range_a, baseline=ABModel(edgehil_model.name, baseline),
                                 candidate=ABModel(edgehil_model.name, edgehil_model.data), plan=edgehil_energy_plan)


def analyzer_name(supply: SupplySettings) -> str:
    """The analyzer as the trigger rule keys and names it: its resource and channel."""
    return f"{supply.resource} ch{supply.channel}"
