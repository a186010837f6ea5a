"""The traps of the hardware path that the twins used to hide, each with a test on real parts.

- RUN n waits for the expected run time (the device's own period × n), not 10 s per 100 inferences: a
  board at ≥ 200 ms per inference completes the hardware energy plan (MLPerf Tiny: 5 windows ≥ 10 s),
  here with a twin on a scaled clock (it sleeps its simulated time × REALTIME) and a short link timeout
  that the old rule would have exceeded;
- `--backend hw` refuses a board whose HELLO says simulated firmware;
- a real board's analyzer powers it, with the trigger input configured, before its HELLO;
- energy tests skip with the reason where a real board has no analyzer wired.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.bring_up import simulated_firmware
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend
from pytest_edgehil.errors import DeviceError
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import Hello as HelloMessage
from pytest_edgehil.link.messages import HelloReply, StageTiming
from pytest_edgehil.link.run_wait import PROBE_ABOVE, RUN_MARGIN, RunWait
from pytest_edgehil.measure.meter import EnergyPlan, measure_energy
from pytest_edgehil.sim import start_analyzer_twin, start_device_twin
from pytest_edgehil.sim.profile import register_twin_profile, twin_profile

from .conftest import MODELS, REPO

SLOW_KIND = "cortex-m4"
REALTIME = 0.02  # the twin sleeps 2 % of its simulated time: a 10 s window takes 0.2 s of wall clock
LINK_TIMEOUT_S = 0.1


def _timing(end_to_end_us: float) -> StageTiming:
    return StageTiming(start_us=0.0, readout_us=0.0, inference_us=end_to_end_us, retrieval_us=0.0)


def test_run_wait_follows_the_expected_run_time():
    wait = RunWait(timeout_s=2.0)
    assert wait.needs_probe(PROBE_ABOVE + 1) and not wait.needs_probe(PROBE_ABOVE)
    assert wait.wait_s(3) == pytest.approx(6.0)  # unknown period, short run: one link timeout per inference
    wait.learn([_timing(250_000.0), _timing(300_000.0)])  # the slowest inference sets the period
    assert not wait.needs_probe(500)
    assert wait.wait_s(500) == pytest.approx(2.0 + RUN_MARGIN * 500 * 0.3)
    assert "0.3 s per inference, measured by the device" in wait.describe(500)
    wait.expect(0.5, "budget end_to_end_ms")
    wait.learn([_timing(100_000.0)])  # a fast reply never shortens a declared period
    assert wait.period_s == pytest.approx(0.5)
    wait.forget()
    assert wait.period_s is None and wait.needs_probe(50)


@pytest.fixture
def slow_profile() -> Iterator[float]:
    """The cortex-m4 twin at a quarter of its MAC rate: lowres_seg takes ≥ 200 ms per inference."""
    original = twin_profile(SLOW_KIND)
    register_twin_profile(dataclasses.replace(original, int8_macs_per_s=original.int8_macs_per_s / 4), replace=True)
    try:
        yield REALTIME
    finally:
        register_twin_profile(original, replace=True)


def test_a_board_at_200_ms_per_inference_completes_the_hardware_energy_plan(slow_profile):
    lab = LabConfig("slow", None, {"slow": DeviceConfig(name="slow", kind=SLOW_KIND, simulated=True)})
    bench = Bench(lab, timeout_s=LINK_TIMEOUT_S, twin_realtime=slow_profile)
    try:
        dut = bench.device("slow")
        dut.ensure_model((MODELS / "lowres_seg.tflite").read_bytes(), "lowres_seg")
        analyzer, supply = bench.analyzer("slow")
        analyzer_twin = bench.analyzer_twin("slow")
        assert analyzer_twin is not None
        # The window's idle tail after the last inference is waited for up to grace_s of wall clock (the
        # twin's device is idle, nothing more comes): shorten that wait, it is not what this test measures.
        analyzer_twin._digitizer.grace_s = 0.05
        plan = EnergyPlan.hardware()
        measured = measure_energy(dut, analyzer, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                                  plan=plan)
    finally:
        bench.close()
    period_s = max(t.end_to_end_us for run in measured.timings for t in run) * 1e-6
    assert period_s >= 0.2
    runs = {len(run) for run in measured.timings}
    assert len(measured.timings) == plan.windows and min(runs) >= math.ceil(plan.min_window_s / period_s)
    # The trap this closes: each window's RUN took longer than the old fixed wait (timeout per 100 runs).
    assert min(runs) * period_s * slow_profile > LINK_TIMEOUT_S * math.ceil(max(runs) / 100)
    assert (measured.end_to_end_j > 0).all() and measured.window_medians("end_to_end_j").size == plan.windows


def test_a_run_past_its_wait_names_the_expected_run_time(slow_profile):
    twin, port = start_device_twin(SLOW_KIND, "slow", realtime=slow_profile)
    try:
        # The load and the run that learns the period get a link timeout of seconds: the twin's first LiteRT
        # run and its 64 KiB output take ≈ 14 ms idle, and past LINK_TIMEOUT_S on a loaded machine (a CI
        # flake: "did not answer run(1) within 0.1 s"). Only run(50) is waited for with the short timeout; the
        # twin sleeps ≥ 50 × 0.2 s × REALTIME = 0.2 s for it, which load only lengthens.
        with DeviceClient(port, name="slow", timeout_s=10.0, retries=0) as client:
            client.load_model((MODELS / "lowres_seg.tflite").read_bytes(), "lowres_seg")
            client.run(1)
            assert client.run_wait.source == "measured by the device"
            period_s = client.run_wait.period_s
        assert period_s is not None and period_s >= 0.2
        with DeviceClient(port, name="slow", timeout_s=LINK_TIMEOUT_S, retries=0) as client:
            client.run_wait.expect(period_s / 1000, "a budget far too tight")
            with pytest.raises(DeviceError, match=r"did not answer run\(50\).*expected ≈ .* s per inference, declared"):
                client.run(50)
    finally:
        twin.close()


def _hello(firmware: str, serial: str, caps: tuple[str, ...] = ()) -> HelloReply:
    return HelloReply("cortex-m4", "b", firmware, 1, caps, 1, 1, serial)


def test_simulated_firmware_is_recognised_by_firmware_serial_or_capability():
    assert simulated_firmware(_hello("cm4-twin 1.0.0", "0001")) == "firmware 'cm4-twin 1.0.0'"
    assert simulated_firmware(_hello("fw 2.0", "SIM-1A2B3C4D")) == "serial number 'SIM-1A2B3C4D'"
    assert simulated_firmware(_hello("fw 2.0", "0001", ("simulated",))) == "capability 'simulated'"
    assert simulated_firmware(_hello("twinkle-fw 1.0", "SIMON-7")) is None  # only the exact marks count


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _hardware(port: str, **table: object) -> LabConfig:
    return LabConfig("bench", None, {"board": DeviceConfig(name="board", kind=SLOW_KIND, simulated=False, port=port,
                                                           **table)})  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", [None, "hw"])
def test_a_twin_declared_as_hardware_is_refused_and_its_port_closed(backend: str | None):
    # Without --backend hw too: its numbers would otherwise be recorded, summarised and gated as HW.
    twin, port = start_device_twin(SLOW_KIND, "board")
    try:
        before = open_fds()
        lab = _hardware(port) if backend is None else apply_backend(_hardware(port), backend)
        bench = Bench(lab, timeout_s=5)
        with pytest.raises(DeviceError, match=r"device 'board' on .*: declared as hardware in the lab file, but it "
                                              r"answers HELLO as simulated firmware \(firmware '.*-twin .*'\).*"
                                              r"simulated = true.*--as-board"):
            bench.device("board")
        with pytest.raises(DeviceError, match="not retried, its bring-up failed earlier"):
            bench.device("board")
        bench.close()
        assert open_fds() == before
    finally:
        twin.close()


def test_a_twin_standing_in_for_a_board_passes_backend_hw_and_otherwise_answers_as_its_kind():
    # A rack's stand-in board (tests/test_farm.py): HELLO without the twin's marks, the rest unchanged.
    twin, port = start_device_twin(SLOW_KIND, "board", as_board=True)
    try:
        bench = Bench(apply_backend(_hardware(port), "hw"), timeout_s=5)
        try:
            hello = bench.device("board").hello
        finally:
            bench.close()
    finally:
        twin.close()
    assert simulated_firmware(hello) is None and hello.device_kind == SLOW_KIND
    assert hello.firmware.split()[1:] == twin_profile(SLOW_KIND).firmware.split()[1:]  # its version kept
    assert "run" in hello.capabilities and hello.serial_number.endswith(twin.usb_serial.removeprefix("SIM-"))


def test_the_analyzer_powers_the_board_and_readies_its_trigger_input_before_hello():
    twin, port = start_device_twin(SLOW_KIND, "board", as_board=True)
    analyzer_twin, resource, supply_v, range_a = start_analyzer_twin(twin)
    at_hello: list[dict[str, object]] = []
    answer_hello = twin._handlers[HelloMessage]

    def hello(message: HelloMessage) -> object:
        at_hello.append(analyzer_twin.settings)
        return answer_hello(message)

    twin._handlers[HelloMessage] = hello
    try:
        bench = Bench(_hardware(port, analyzer=resource, supply_v=supply_v, current_range_a=range_a))
        try:
            bench.device("board")
            analyzer, _ = bench.analyzer("board")  # the one that powered it, not a second session
            assert analyzer.state == "open"
        finally:
            bench.close()
    finally:
        analyzer_twin.close()
        twin.close()
    assert at_hello, "the twin never answered HELLO"
    first = at_hello[0]
    assert first["output"] == "ON" and first["voltage_v"] == pytest.approx(supply_v)
    assert first["trigger_pin_function@1"] == "TINP" and first["trigger_pin_polarity@1"] == "POS"


ENERGY_TEST = (REPO / "suites" / "test_energy.py").read_text()


def test_energy_tests_skip_with_the_reason_where_no_analyzer_is_wired(edgehil_project, tmp_path: Path):
    twin, port = start_device_twin("imx500", "cam", as_board=True)
    try:
        edgehil_project.makefile(".toml", lab=f'[devices.cam]\nkind = "imx500"\nport = "{port}"\n')
        edgehil_project.makepyfile(test_energy=ENERGY_TEST)
        result = edgehil_project.runpytest("--lab=lab.toml", "--device=cam", "--model=qsegment",
                                           "-p", "no:cacheprovider", "-rs")
    finally:
        twin.close()
    result.assert_outcomes(skipped=2)
    reason = "*device 'cam' has no power analyzer wired: its lab-file table lacks analyzer, current_range_a*"
    result.stdout.fnmatch_lines([reason])
