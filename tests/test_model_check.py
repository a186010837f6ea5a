"""The active model is checked on every RUN (protocol version 2): a RESULT names the model that ran.

Another program on the port that ignores the board's lock (a terminal opened by hand, a second tool) can
switch the board's model between two RUNs of this host. Version 1 could not see that; version 2's RESULT
carries the active model's SHA-256 and the host refuses a RESULT for another model than the one it
selected, with a typed error naming the device, the port and both models. A version 1 board is refused at
HELLO, saying why.
"""

from __future__ import annotations

import hashlib
import os
import select
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from pytest_edgehil.bench import Bench, DeviceUnderTest
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import DeviceError, ModelMismatch, ProtocolVersionMismatch
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.latency import stage_timings
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.pty_link import serve_pty

from .conftest import REPO

MODEL = (REPO / "tests" / "data" / "conv_int8.tflite").read_bytes()
OTHER = (REPO / "tests" / "data" / "dense_int8.tflite").read_bytes()
MODEL_SHA, OTHER_SHA = hashlib.sha256(MODEL).hexdigest(), hashlib.sha256(OTHER).hexdigest()


@pytest.fixture
def dut(request: pytest.FixtureRequest) -> Iterator[DeviceUnderTest]:
    """A coral twin holding both models in flash, conv_int8 active (selected last by this host)."""
    name = f"swap-{zlib.crc32(request.node.nodeid.encode()):08x}"
    bench = Bench(LabConfig("swap", None, {name: DeviceConfig(name=name, kind="coral", simulated=True)}),
                  timeout_s=5.0)
    try:
        device = bench.device(name)
        device.ensure_model(OTHER, "dense_int8")
        device.ensure_model(MODEL, "conv_int8")
        yield device
    finally:
        bench.close()


def intruder_selects(port: str, sha256_hex: str, seq: int) -> p.Message:
    """What a program that ignores the lock does: open the port without flock, send SELECT_MODEL, read
    the answer. Runs in its own thread, as another program would, while this host is between RUNs."""
    answers: list[p.Message] = []

    def run() -> None:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(fd, p.encode_message(p.SelectModel(bytes.fromhex(sha256_hex)), seq))
            decoder, deadline = p.FrameDecoder(), time.monotonic() + 5
            while not answers and time.monotonic() < deadline:
                if select.select([fd], [], [], 0.1)[0]:
                    answers.extend(f.message() for f in decoder.feed(os.read(fd, 65536)) if isinstance(f, p.Frame))
        finally:
            os.close(fd)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=10)
    assert answers, "the intruder got no answer from the twin"
    return answers[0]


def test_a_model_swapped_between_runs_is_refused_naming_device_port_and_both_models(dut):
    x = np.random.default_rng(1).integers(-128, 128, size=ModelRunner(MODEL).inputs[0].shape, dtype=np.int8)
    dut.client.set_input(0, x)
    first = dut.client.run(1)
    assert first.model_sha256.hex() == MODEL_SHA == dut.client.expected_model

    # Another program switches the board to the other model between this host's RUNs (a seq far from ours).
    answer = intruder_selects(dut.port, OTHER_SHA, (dut.client._seq + 0x8000) & 0xFFFF)
    assert answer == p.Ack(p.MsgType.SELECT_MODEL)

    with pytest.raises(ModelMismatch) as caught:
        stage_timings(dut, 20)
    error = caught.value
    assert isinstance(error, DeviceError)
    assert (error.device, error.port, error.expected, error.found) == (dut.name, dut.port, MODEL_SHA, OTHER_SHA)
    message = str(error)
    assert dut.name in message and dut.port in message and "run(20)" in message
    assert "'conv_int8'" in message and "'dense_int8'" in message  # both models, by the names they were loaded as
    assert MODEL_SHA[:16] in message and OTHER_SHA[:16] in message

    # The next test's ensure_model re-selects by hash, and the numbers are the right model's again.
    dut.ensure_model(MODEL, "conv_int8")
    dut.client.set_input(0, x)
    again = dut.client.run(1)
    assert again.model_sha256.hex() == MODEL_SHA
    for got, want in zip(again.outputs, ModelRunner(MODEL).run_raw([x])):
        np.testing.assert_array_equal(got, want)


def test_a_failed_select_leaves_no_old_model_to_measure(dut):
    """SELECT_MODEL refused (the board lacks it): the old model stays active on the board, and a RUN
    must not measure it as if it were the one asked for."""
    missing = hashlib.sha256(b"not on the board").hexdigest()
    with pytest.raises(DeviceError, match="NO_MODEL"):
        dut.client.select_model(missing)
    with pytest.raises(ModelMismatch) as caught:
        dut.client.run(1)
    assert (caught.value.expected, caught.value.found) == (missing, MODEL_SHA)


def test_every_result_of_the_twin_names_the_model_that_ran(dut):
    for model, name, sha in ((OTHER, "dense_int8", OTHER_SHA), (MODEL, "conv_int8", MODEL_SHA)):
        dut.ensure_model(model, name)
        assert dut.client.run(3).model_sha256.hex() == sha


# -- a version 1 board ------------------------------------------------------------------------------------
class V1Firmware:
    """Firmware of protocol version 1: HELLO_REPLY says 1 and every frame is stamped 1."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, message: p.Message) -> list[p.Message]:
        self.requests.append(type(message).__name__)
        if isinstance(message, p.Hello):
            return [p.HelloReply("coral", "old0", "fw-2025.1", 1, ("run",), 1 << 20, 8 << 20, "OLD-0001")]
        return [p.Error(p.ErrorCode.UNKNOWN_MESSAGE, "not in this test")]


def test_a_version_1_board_is_refused_at_hello_saying_why():
    firmware = V1Firmware()
    with (serve_pty(firmware, name="old0", protocol_version=1) as endpoint,
          DeviceClient(endpoint.port, name="old0", timeout_s=2) as client,
          pytest.raises(ProtocolVersionMismatch) as caught):
        client.hello()
    message = str(caught.value)
    assert "'old0'" in message and endpoint.port in message
    assert "version 1" in message and f"version {p.PROTOCOL_VERSION}" in message
    assert "do not say which model ran" in message and "Flash firmware" in message
    assert firmware.requests == ["Hello"]  # refused before anything else was sent


def test_a_version_1_result_is_never_decoded_as_version_2():
    """A v1 board that is driven anyway (a script that skipped HELLO) answers RUN in a v1 frame: refused by
    its header's version before its payload is read, so no v1 layout is taken for a v2 one."""
    def firmware(message: p.Message) -> list[p.Message]:
        return [p.Result((p.StageTiming(0, 1, 2, 3),), (np.zeros(2, np.int8),), bytes(32))]
    with (serve_pty(firmware, name="old1", protocol_version=1) as endpoint,
          DeviceClient(endpoint.port, name="old1", timeout_s=2) as client,
          pytest.raises(ProtocolVersionMismatch, match="version 1 RESULTs do not say which model ran")):
        client.run(1)
