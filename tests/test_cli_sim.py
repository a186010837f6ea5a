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
