"""`edgehil sim analyzer`: an analyzer twin outside pytest, reached over real pyvisa-py TCP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pyvisa


def test_sim_analyzer_prints_its_resource_serves_scpi_and_stops_on_ctrl_c() -> None:
    process = subprocess.Popen([sys.executable, "-m", "pytest_edgehil.cli", "sim", "analyzer",
                                "--dialect", "keysight-n6705c", "--load", "0.02,0.005,0.5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert process.stdout is not None
        resource = process.stdout.readline().strip()
        assert re.fullmatch(r"TCPIP::127\.0\.0\.1::\d+::SOCKET", resource), resource
        handle = pyvisa.ResourceManager("@py").open_resource(resource, read_termination="\n",
                                                             write_termination="\n", timeout=5000)
        try:
            assert "N6705C" in handle.query("*IDN?")
            handle.write("OUTP ON,(@1)")
            handle.write("VOLT 5,(@1)")
            assert handle.query("SYST:ERR?") == '+0,"No error"'
            assert float(handle.query("MEAS:CURR? (@1)")) > 0  # the idle board draws current
        finally:
            handle.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sim_analyzer_refuses_a_malformed_load() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", "sim", "analyzer", "--load", "fast"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PERIOD_S,ACTIVE_S,POWER_W" in result.stderr


def test_sim_device_serves_a_twin_in_its_own_process_that_a_client_drives_and_stops_on_sigterm() -> None:
    from pathlib import Path

    import numpy as np

    from pytest_edgehil.config.catalog import ModelCatalog
    from pytest_edgehil.link.client import DeviceClient
    from pytest_edgehil.model.runtime import ModelRunner

    model = ModelCatalog(Path(__file__).resolve().parent.parent / "fixtures" / "models").get("tinytracker")
    process = subprocess.Popen([sys.executable, "-m", "pytest_edgehil.cli", "sim", "device", "imx500",
                                "--name", "bench-imx"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/"), port
        tensor = np.random.default_rng(3).integers(-128, 128, size=model.info.inputs[0].shape, dtype=np.int8)
        with DeviceClient(port, name="bench-imx", timeout_s=10) as client:
            hello = client.hello()
            assert (hello.device_kind, hello.device_name) == ("imx500", "bench-imx")
            assert "simulated" in hello.capabilities
            client.load_model(model.data, model.name)
            client.set_input(0, tensor)
            result = client.run(1)
        # The twin ran the model for real: the same outputs as LiteRT here.
        np.testing.assert_array_equal(result.outputs[0], ModelRunner(model.data).run_raw([tensor])[0])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "serving on " + port in (process.stderr.read() if process.stderr else "")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sim_device_refuses_a_kind_without_a_twin() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_edgehil.cli", "sim", "device", "toaster"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "toaster" in result.stderr and "imx500" in result.stderr  # names the kind and the ones there are


def test_two_sim_devices_of_one_kind_without_names_report_different_serial_numbers() -> None:
    from pytest_edgehil.link.client import DeviceClient

    processes = [subprocess.Popen([sys.executable, "-m", "pytest_edgehil.cli", "sim", "device", "coral"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    try:
        serials = []
        for process in processes:
            assert process.stdout is not None
            with DeviceClient(process.stdout.readline().strip(), timeout_s=10) as client:
                serials.append(client.hello().serial_number)
        assert serials[0] != serials[1], serials  # two boards, as two physical ones would be
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=20) == 0


def test_a_twin_signalled_as_soon_as_it_prints_its_port_stops_cleanly() -> None:
    # The signal handlers used to be taken after the port was printed: a script that read the port and
    # stopped the twin at once killed it with SIGTERM's default action (status -15, nothing closed).
    process = subprocess.Popen([sys.executable, "-m", "pytest_edgehil.cli", "sim", "device", "coral"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("/dev/")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
