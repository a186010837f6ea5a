"""A board behind EEMBC's IO manager (MLPerf Tiny's interface board, the energy setup): the host sends
`dut CMD%`, the interface answers `m-dut-passthrough(CMD)` and `m-ready`, then relays the board's lines as
`[dut]: LINE` up to the board's `m-ready`. Expected transcripts come from mlcommons/tiny
benchmark/interface/README.md and InterfaceMenu.cpp, expected outputs and energies from LiteRT and the
firmware twin's truth."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from pytest_edgehil.errors import ConfigError, DeviceTimeout, ProtocolError
from pytest_edgehil.link import eembc
from pytest_edgehil.link.eembc_client import EembcClient
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.eembc_twin import EembcTwin

from .conftest import MODELS

MODEL = MODELS / "tinytracker.tflite"


def _client(port: str, *, io_manager: bool = True, timeout_s: float = 5.0) -> EembcClient:
    return EembcClient(port, model_name="tinytracker", outputs=ModelRunner(MODEL).outputs, kind="cortex-m4",
                       timeout_s=timeout_s, name="mcu", io_manager=io_manager)


def _exchange(port: str, command: bytes, lines: int) -> list[str]:
    with serial.serial_for_url(port, timeout=2.0) as ser:
        ser.write(command)
        return [ser.readline().decode("ascii").rstrip("\r\n") for _ in range(lines)]


def test_the_io_manager_twin_answers_as_the_interface_boards_readme_shows():
    # benchmark/interface/README.md, "dut profile% should return" (the twin's firmware names itself otherwise)
    with EembcTwin(MODEL.read_bytes(), "kws01", io_manager=True) as twin:
        got = _exchange(twin.port, b"dut profile%", 5)
    assert got[:2] == ["m-dut-passthrough(profile)", "m-ready"]
    assert got[3:] == ["[dut]: m-model-[kws01]", "[dut]: m-ready"] and got[2].startswith("[dut]: m-profile-[")


def test_a_board_behind_the_io_manager_runs_as_a_direct_one():
    runner = ModelRunner(MODEL)
    spec = runner.inputs[0]
    x = np.random.default_rng(4).integers(-128, 128, size=spec.shape, dtype=spec.dtype)
    # the board's timer is virtual: windows sized for a 9600-baud print cost no wall time
    with EembcTwin(MODEL.read_bytes(), "tinytracker", io_manager=True, timer_inference_us=150.0,
                   uart_baud=9600) as twin:
        client = _client(twin.port)
        client.open()
        try:
            hello = client.hello()
            client.load_model(MODEL.read_bytes(), "tinytracker")
            client.set_input(0, x)
            result = client.run(2)
        finally:
            client.close()
        relayed = list(twin.io_manager.commands)
        reached = list(twin.commands)
    assert hello.device_name == "twin"
    np.testing.assert_array_equal(result.outputs[0], runner.run_raw([x])[0])
    assert len(result.timings) == 2 and all(t.inference_us > 0 for t in result.timings)
    assert relayed[:2] == ["dut name", "dut profile"] and all(c.startswith("dut ") for c in relayed)
    # the runner's chunk through the interface board (DUT._max_bytes = 26 with a power manager)
    hexes = [c for c in reached if c.startswith("db ") and not c.startswith("db load")]
    assert max(len(c) - 3 for c in hexes) == 2 * 26 and len(hexes) == -(-spec.size_bytes // 26)


def test_a_port_that_is_the_board_itself_is_named_when_the_lab_says_io_manager():
    with EembcTwin(MODEL.read_bytes(), "tinytracker") as twin:
        client = _client(twin.port, timeout_s=0.5)
        client.open()
        try:
            with pytest.raises(DeviceTimeout, match=r"Unknown command: dut.*not an IO manager.*eembc_io_manager"):
                client.hello()
        finally:
            client.close()


def test_an_io_manager_port_is_named_when_the_lab_does_not_say_so():
    with EembcTwin(MODEL.read_bytes(), "tinytracker", io_manager=True) as twin:
        client = _client(twin.port, io_manager=False)
        client.open()
        try:
            with pytest.raises(ProtocolError, match=r"IO manager.*eembc_io_manager = true"):
                client.hello()
        finally:
            client.close()


def test_a_late_reply_through_the_io_manager_is_not_the_next_commands():
    with EembcTwin(MODEL.read_bytes(), "tinytracker", device_name="dut", io_manager=True, infer_wall_s=0.8) as twin:
        client = _client(twin.port, timeout_s=0.5)
        client.open()
        try:
            with pytest.raises(DeviceTimeout):
                client.run(1, timed=False)
            lines = client.transact("name")
        finally:
            client.close()
    assert [line for line in lines if line != "m-ready"] == ["m-name-dut-[edgehil-twin]"]


def test_energy_through_the_io_manager_matches_the_firmware_twins_truth(tmp_path):
    from pytest_edgehil.bench import Bench
    from pytest_edgehil.config.catalog import ModelCatalog
    from pytest_edgehil.config.lab import load_lab
    from pytest_edgehil.measure.meter import EnergyPlan, measure_energy

    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.mcu]\nkind = "cortex-m4"\nsimulated = true\nprotocol = "eembc"\n'
                   'firmware_model = "qsegment"\neembc_mode = "energy"\neembc_io_manager = true\n'
                   'timestamp_hold_us = 50\ntwin_monitor = "ppk2"\n[physics]\nideal = true\n')
    catalog = ModelCatalog(MODELS)
    bench = Bench(load_lab(lab), seed=3, catalog=catalog)
    try:
        dut = bench.device("mcu")
        entry = catalog.get("qsegment")
        dut.ensure_model(entry.data, entry.name)
        monitor, supply = bench.analyzer("mcu")
        m = measure_energy(dut, monitor, supply_v=supply.supply_v, current_range_a=supply.current_range_a,
                           plan=EnergyPlan(windows=1, runs_per_window=5))
        twin = bench._firmware_twins["mcu"]
        relayed = list(twin.io_manager.commands)
        truth_j = twin.last_inference_j
    finally:
        bench.close()
    assert any(c.startswith("dut infer 5") for c in relayed)
    assert abs(float(m.windows[-1].inference_j[0]) / truth_j - 1) < 0.005


def test_the_io_manager_setting_is_for_eembc_devices_only(tmp_path):
    from pytest_edgehil.config.lab import load_lab

    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.mcu]\nkind = "cortex-m4"\nsimulated = true\neembc_io_manager = true\n')
    with pytest.raises(ConfigError, match="eembc_io_manager"):
        load_lab(lab)


def test_the_io_manager_prefix_is_checked_on_every_relayed_line():
    assert eembc.unwrap_io(["m-dut-passthrough(name)", "m-ready", "[dut]: m-name-dut-[x]", "[dut]: m-ready"],
                           "name") == ["m-name-dut-[x]", "m-ready"]
    with pytest.raises(ProtocolError, match="IO manager"):
        eembc.unwrap_io(["m-dut-passthrough(name)", "m-ready", "m-name-dut-[x]", "[dut]: m-ready"], "name")
    with pytest.raises(ProtocolError, match="IO manager"):
        eembc.unwrap_io(["m-dut-passthrough(profile)", "m-ready", "[dut]: m-ready"], "name")


def test_latency_through_the_io_manager_allows_for_the_boards_slower_uart():
    # The board behind the IO manager prints at 9600 baud (the reference energy build), 12 times slower than
    # the host side: its first m-lap-us- line's print, timed with the inferences, is 12 times longer. The
    # reference runner's figure, elapsed / N over a window of >= 10 s (here 100000 x 100 µs on the twin's
    # virtual timer), is the expected one; the client's windows may add up to LAP_PRINT_SHARE (1 %).
    with EembcTwin(MODEL.read_bytes(), "tinytracker", io_manager=True, timer_inference_us=100.0,
                   uart_baud=9600) as twin:
        client = _client(twin.port)
        client.open()
        try:
            laps = eembc.parse_infer(client.transact("infer 100000 10"), 100000)
            result = client.run(5)
        finally:
            client.close()
    reference_us = laps.elapsed_us / 100000
    assert float(np.median([t.inference_us for t in result.timings])) == pytest.approx(reference_us, rel=0.01)
