"""A reply that comes after its command timed out is never taken for the next command's.

The firmware twin is made slow (`infer_wall_s`: a board whose `infer N W%` outlasts the client's timeout,
as a larger N or a slower clock does); like the reference firmware's single loop (main.cpp: getchar ->
ee_serial_callback -> the command runs to its end) it reads the next command only after it has printed
the late reply. Expected replies are the reference firmware's (EE_MSG_NAME "m-name-%s-[%s]") and LiteRT's
own outputs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pytest_edgehil.errors import DeviceTimeout
from pytest_edgehil.link.eembc_client import EembcClient
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.eembc_twin import EembcTwin

from .conftest import MODELS

MODEL = MODELS / "tinytracker.tflite"  # two outputs: replies on the wire at once


def _client(port: str, timeout_s: float) -> EembcClient:
    return EembcClient(port, model_name="tinytracker", outputs=ModelRunner(MODEL).outputs, kind="cortex-m4",
                       timeout_s=timeout_s, name="mcu")


def _inputs(runner: ModelRunner) -> tuple[np.ndarray, np.ndarray]:
    """Two inputs whose outputs differ, so a stale result cannot pass for the fresh one."""
    spec, rng = runner.inputs[0], np.random.default_rng(21)
    first = rng.integers(-128, 128, size=spec.shape, dtype=spec.dtype)
    while True:
        second = rng.integers(-128, 128, size=spec.shape, dtype=spec.dtype)
        if not np.array_equal(runner.run_raw([first])[0], runner.run_raw([second])[0]):
            return first, second


def test_the_command_after_a_timeout_gets_its_own_reply():
    with EembcTwin(MODEL.read_bytes(), "tinytracker", device_name="dut", infer_wall_s=0.8) as twin:
        client = _client(twin.port, timeout_s=0.5)
        client.open()
        try:
            with pytest.raises(DeviceTimeout, match="did not finish infer 1 0%"):
                client.run(1, timed=False)
            lines = client.transact("name")  # sent while the board still runs the infer
        finally:
            client.close()
    assert [line for line in lines if line != "m-ready"] == ["m-name-dut-[edgehil-twin]"]


def test_outputs_after_a_timeout_are_the_new_inputs_not_the_late_ones():
    runner = ModelRunner(MODEL)
    first, second = _inputs(runner)
    with EembcTwin(MODEL.read_bytes(), "tinytracker", infer_wall_s=0.8) as twin:
        client = _client(twin.port, timeout_s=0.5)
        client.open()
        try:
            client.load_model(MODEL.read_bytes(), "tinytracker")
            client.set_input(0, first)
            with pytest.raises(DeviceTimeout):
                client.run(1, timed=False)
            twin.infer_wall_s = 0.0  # the board is quick again from its next infer on
            client.set_input(0, second)
            got = client.run(1, timed=False).outputs[0]
        finally:
            client.close()
    np.testing.assert_array_equal(got, runner.run_raw([second])[0])


def test_a_board_still_busy_is_refused_naming_the_port_until_it_answers_again():
    with EembcTwin(MODEL.read_bytes(), "tinytracker", device_name="dut", infer_wall_s=1.5) as twin:
        client = _client(twin.port, timeout_s=0.3)
        client.open()
        try:
            with pytest.raises(DeviceTimeout):
                client.run(1, timed=False)
            with pytest.raises(DeviceTimeout, match=rf"on {twin.port}.*infer 1 0% timed out.*reset"):
                client.transact("name")
            time.sleep(1.5)  # the infer ends, its late reply comes, the board reads commands again
            lines = client.transact("name")
        finally:
            client.close()
    assert "m-name-dut-[edgehil-twin]" in lines and not any(line.startswith("m-results") for line in lines)
