"""Faults configured where a lab configures its bench: the lab file's `[devices.NAME.faults]` table and the
`edgehil_device_faults` fixture (the device twin's plan, sim/device_faults.py)."""

from __future__ import annotations

import pytest

from pytest_edgehil.config.lab import load_lab
from pytest_edgehil.errors import ConfigError

LAB = """
[devices.cam]
kind = "imx500"
simulated = true
[devices.cam.faults]
seed = 3
[[devices.cam.faults.armed]]
kind = "corrupt"
direction = "reply"
on = "RUN"
count = 2
"""

USER_TEST = """
import pytest
from pytest_edgehil.measure.latency import stage_timings, timing_arrays_ms
from pytest_edgehil.sim.device_faults import DeviceFault


@pytest.mark.edgehil_metrics("inference_ms")
def test_runs_through_armed_faults(edgehil_dut, edgehil_device_faults, edgehil_record):
    ms = timing_arrays_ms(stage_timings(edgehil_dut, 5))
    # The lab file's two corrupted RUN replies fired and were retransmitted: the numbers are the real ones.
    assert edgehil_device_faults.fired.get("corrupt") == 2
    edgehil_device_faults.inject(DeviceFault("drop-frame", direction="reply", on="RUN"))
    edgehil_record.check_median("inference_ms", ms["inference_ms"])


@pytest.mark.edgehil_metrics("inference_ms")
def test_what_a_test_armed_is_gone_after_it(edgehil_device_faults):
    assert edgehil_device_faults.pending() == 0
"""


def test_lab_file_faults_reach_the_twin_and_the_fixture_disarms_per_test(edgehil_project):
    edgehil_project.makefile(".toml", lab=LAB)
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--lab=lab.toml", "--device=cam", "--model=qsegment", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(("table", "message"), [
    ('[devices.cam.faults]\nrate = 2.0\n', r"\[devices.cam\].*rate"),
    ('[devices.cam.faults]\nkinds = ["gremlins"]\n', r"\[devices.cam.faults\].*gremlins"),
    ('[[devices.cam.faults.armed]]\nkind = "reboot"\ndirection = "reply"\n', r"reboot.*cannot act in direction"),
])
def test_bad_fault_tables_are_config_errors_naming_the_device(tmp_path, table, message):
    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.cam]\nkind = "imx500"\nsimulated = true\n' + table)
    with pytest.raises(ConfigError, match=message):
        load_lab(lab)


def test_faults_on_a_real_board_are_refused(tmp_path):
    lab = tmp_path / "lab.toml"
    lab.write_text('[devices.cam]\nkind = "imx500"\nport = "/dev/ttyACM0"\n[devices.cam.faults]\nrate = 0.1\n')
    with pytest.raises(ConfigError, match=r"\[devices.cam\].*injected by a device twin.*simulated = true"):
        load_lab(lab)
