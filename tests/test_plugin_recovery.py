"""A board lost in one test (it rebooted: its port went away and came back under another name) costs that
test only: the plugin's `edgehil_dut` finds it again by USB serial number before the device's next test
and says so in that test's report. A board that does not come back fails the next test with a DeviceError
saying what to check, and is not waited for again by every later test."""

from __future__ import annotations

import re
import zlib

import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import DeviceError
from pytest_edgehil.sim.device_faults import DeviceFault

from .conftest import REPO

LAB = """
[devices.cam]
kind = "imx500"
simulated = true
[[devices.cam.faults.armed]]
kind = "reboot"
on = "RUN"
count = 1
"""

# Each test runs the pair's model on the device and compares the outputs with LiteRT on the host, on the same
# input: "passes" means a correct number after the recovery, not merely no error.
USER_TEST = """
import numpy as np
import pytest
from pytest_edgehil.model.runtime import ModelRunner


def infer_and_compare(dut, model, index):
    runner = ModelRunner(model.data)
    spec = runner.inputs[0]
    x = np.random.default_rng([11, index]).integers(-128, 128, size=spec.shape, dtype=spec.dtype)
    dut.client.set_input(0, x)
    got = dut.client.run(1).outputs
    want = runner.run_raw([x])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.edgehil_metrics("inference_ms")
def test_first(edgehil_dut, edgehil_model):
    infer_and_compare(edgehil_dut, edgehil_model, 1)


@pytest.mark.edgehil_metrics("inference_ms")
def test_second(edgehil_dut, edgehil_model):
    infer_and_compare(edgehil_dut, edgehil_model, 2)


@pytest.mark.edgehil_metrics("inference_ms")
def test_third(edgehil_dut, edgehil_model):
    infer_and_compare(edgehil_dut, edgehil_model, 3)
"""


def test_a_reboot_in_one_test_fails_that_test_only_and_the_next_finds_the_board_again(edgehil_project):
    edgehil_project.makefile(".toml", lab=LAB)
    edgehil_project.makepyfile(test_user=USER_TEST)
    result = edgehil_project.runpytest("--lab=lab.toml", "--device=cam", "--model=qsegment", "-p", "no:cacheprovider",
                                       "-rA")
    result.assert_outcomes(failed=1, passed=2)
    out = result.stdout.str()
    # The test whose RUN rebooted the board fails with the typed error naming the device and the port it lost.
    assert re.search(r"FAILED test_user.py::test_first\[qsegment-cam\]", out)
    result.stdout.fnmatch_lines(["*DeviceError: device 'cam': port /dev/pts/* failed during *re-enumerated*"])
    # The next test's report says the board was lost, after which test, and on which port it was found again.
    lost = re.search(r"device 'cam' was lost after test test_user.py::test_first\[qsegment-cam\] \(.*\) and found "
                     r"again on port (/dev/pts/\d+)", out)
    assert lost is not None, out
    first_port = re.search(r"DeviceError: device 'cam': port (/dev/pts/\d+) failed", out)
    assert first_port is not None and first_port.group(1) != lost.group(1)  # it re-enumerated under a new name


def test_a_board_that_does_not_come_back_errors_the_next_test_and_is_not_waited_for_again():
    model = (REPO / "tests" / "data" / "conv_int8.tflite").read_bytes()
    name = f"gone-{zlib.crc32(b'plugin-recovery'):08x}"
    bench = Bench(LabConfig("recovery", None, {name: DeviceConfig(name=name, kind="coral", simulated=True)}),
                  timeout_s=0.5)
    try:
        dut = bench.device(name)
        dut.ensure_model(model, "conv_int8")
        assert bench.recover_lost(name) is None  # not lost: nothing to do
        assert dut.twin is not None
        lost_port, usb_serial = dut.port, dut.twin.usb_serial
        dut.twin.faults.inject(DeviceFault("reboot", down_s=60.0))  # away far longer than the bench waits
        with pytest.raises(DeviceError, match="re-enumerated"):
            dut.client.hello()
        with pytest.raises(DeviceError) as excinfo:
            bench.recover_lost(name, after="after test t1")
        message = str(excinfo.value)
        for part in (repr(name), f"port {lost_port} was lost after test t1", f"USB serial number {usb_serial!r}",
                     "within 0.5 s", "cable and power", "`usb_serial`"):
            assert part in message, (part, message)
        # The device's later tests get the same verdict from the bench's record, without looking again.
        with pytest.raises(DeviceError, match=rf"'{name}': not retried, finding it again .* failed") as again:
            bench.recover_lost(name)
        assert again.value.__cause__ is excinfo.value
    finally:
        bench.close()
