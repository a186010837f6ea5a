"""EVAL and EVAL_BATCH on `edgehil agent`, on loopback with real LiteRT: accuracy evaluation through the real
host pipeline gives the outputs SET_INPUT + RUN 1 give, in fewer requests; a BATCH_RESULT echoes its
request's CRC-32 and times each image on the board; an over-size batch and a refused input are refused; a
retransmitted EVAL_BATCH is answered from the reply cache without running again."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial

from pytest_edgehil.agent.litert_device import LiteRTDevice, physical_ram_bytes
from pytest_edgehil.agent.server import REPLY_CACHE, AgentServer
from pytest_edgehil.bench import Bench
from pytest_edgehil.config.catalog import ModelCatalog
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend
from pytest_edgehil.link import messages as p
from pytest_edgehil.link.agent_port import agent_handshake
from pytest_edgehil.link.auth import read_token, write_new_token
from pytest_edgehil.link.device_side import batch_images
from pytest_edgehil.link.framing import Frame, FrameDecoder
from pytest_edgehil.measure.latency import infer, infer_many
from pytest_edgehil.model.runtime import ModelRunner

from .conftest import MODELS

# 64x64x3 int8 inputs (12 KiB): several fit the host's 64 KiB EVAL_BATCH, so batching shows in the counts.
MODEL = "lowres_seg"


class EdgeCounter:
    """Stands for the agent's GPIO trigger line: every level set, so inferences can be counted (rising
    edges) and the line seen to fall after each."""

    def __init__(self) -> None:
        self.levels: list[bool] = []

    def set(self, high: bool) -> None:
        self.levels.append(high)

    @property
    def inferences(self) -> int:
        assert self.levels == [True, False] * (len(self.levels) // 2), "the line must rise and fall per inference"
        return len(self.levels) // 2


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return write_new_token(tmp_path / "agent.token")


@pytest.fixture
def trigger() -> EdgeCounter:
    return EdgeCounter()


@pytest.fixture
def agent(token_file: Path, trigger: EdgeCounter) -> Iterator[AgentServer]:
    device = LiteRTDevice(name="eval-agent", trigger=trigger)  # type: ignore[arg-type]  # a counting line
    with AgentServer(device, read_token(token_file, what="test"), port=0) as server:
        yield server


class Wire:
    """The host's side of the agent's TCP link at frame level: requests sent as given (the same bytes twice
    for a retransmission), replies read as they come."""

    def __init__(self, agent: AgentServer, token_file: Path) -> None:
        self.port = serial.serial_for_url(agent.url, timeout=0.05)
        agent_handshake(read_token(token_file, what="test"), timeout_s=10, name="agent")(self.port)
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self.seq = 0

    def send(self, message: p.Message) -> bytes:
        self.seq += 1
        wire = p.encode_message(message, self.seq)
        self.port.write(wire)
        return wire

    def reply(self) -> Frame:
        deadline = time.monotonic() + 10
        while not self.frames:
            assert time.monotonic() < deadline, "no reply from the agent within 10 s"
            data = self.port.read(65536)
            for item in self.decoder.feed(data) if data else []:
                assert isinstance(item, Frame), item
                self.frames.append(item)
        return self.frames.pop(0)

    def ask(self, message: p.Message) -> p.Message:
        self.send(message)
        frame = self.reply()
        assert frame.seq == self.seq
        return frame.message()

    def load(self, data: bytes, name: str) -> None:
        digest = hashlib.sha256(data).digest()
        for request in (p.LoadBegin(len(data), digest, name), p.LoadChunk(0, data), p.LoadEnd(digest)):
            assert isinstance(self.ask(request), p.Ack), request

    def close(self) -> None:
        self.port.close()


@pytest.fixture
def wire(agent: AgentServer, token_file: Path) -> Iterator[Wire]:
    link = Wire(agent, token_file)
    link.load((MODELS / f"{MODEL}.tflite").read_bytes(), MODEL)
    yield link
    link.close()


def _inputs(n: int, seed: int) -> list[np.ndarray]:
    spec = ModelRunner((MODELS / f"{MODEL}.tflite").read_bytes()).inputs[0]
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=spec.shape, dtype=spec.dtype) for _ in range(n)]


def test_infer_many_on_the_agent_gives_set_input_and_run_s_outputs_in_fewer_requests(agent, token_file, trigger):
    model = ModelCatalog(MODELS).get(MODEL)
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 256, size=model.info.inputs[0].shape[1:], dtype=np.uint8) for _ in range(12)]
    device = DeviceConfig(name="agent", kind="linux-cpu", simulated=False, port=agent.url, token_file=token_file)
    bench = Bench(apply_backend(LabConfig("agent", None, {"agent": device}), "hw"), timeout_s=10)
    try:
        dut = bench.device("agent")
        caps = dut.hello.capabilities
        assert p.pipeline_depth(caps) == REPLY_CACHE == 1  # no more in flight than the server caches
        assert p.batch_size(caps) == batch_images(physical_ram_bytes(), REPLY_CACHE)
        dut.ensure_model(model.data, model.name)
        before = dut.client.stats.requests
        evaluated = infer_many(dut, model, images)
        evaluation_requests = dut.client.stats.requests - before
        assert trigger.inferences == len(images)  # one inference per image, none twice
        before = dut.client.stats.requests
        one_by_one = np.stack([infer(dut, model, image) for image in images])
        assert dut.client.stats.requests - before == 2 * len(images)  # SET_INPUT + RUN 1 per image
    finally:
        bench.close()
    np.testing.assert_array_equal(evaluated, one_by_one)
    assert evaluation_requests < len(images)  # EVAL_BATCH: several images per request


def test_a_sensor_input_agent_offers_no_evaluation():
    caps = LiteRTDevice(inputs="sensor").capabilities
    assert p.pipeline_depth(caps) == 0 and p.batch_size(caps) == 0  # EVAL pushes inputs it would not take


def test_eval_answers_as_set_input_and_run_1(wire, trigger):
    x = _inputs(1, seed=2)[0]
    reply = wire.ask(p.Eval(((0, x),)))
    assert isinstance(reply, p.Result) and len(reply.timings) == 1
    want = ModelRunner((MODELS / f"{MODEL}.tflite").read_bytes()).run_raw([x])
    for got, expected in zip(reply.outputs, want, strict=True):
        np.testing.assert_array_equal(got, expected)
    t = reply.timings[0]
    assert t.start_us == 0 and t.readout_us > 0 and t.inference_us > 0 and t.retrieval_us > 0
    assert trigger.inferences == 1
    assert isinstance(wire.ask(p.Run(1)), p.Result) and trigger.inferences == 2  # RUN 1 on what EVAL set


def test_an_eval_batch_reply_echoes_its_request_crc_and_times_each_image_on_the_board(wire, trigger):
    data = (MODELS / f"{MODEL}.tflite").read_bytes()
    xs = _inputs(3, seed=4)
    request = p.EvalBatch((0,), tuple((x,) for x in xs))
    wire.send(request)
    frame = wire.reply()
    reply = frame.message()
    assert frame.seq == wire.seq and isinstance(reply, p.BatchResult)
    assert reply.request_crc32 == request.payload_crc32 == p.payload_crc32(request.encode_payload())
    assert reply.model_sha256 == hashlib.sha256(data).digest()
    runner = ModelRunner(data)
    for outputs, x in zip(reply.outputs, xs, strict=True):
        for got, want in zip(outputs, runner.run_raw([x]), strict=True):
            np.testing.assert_array_equal(got, want)
    assert trigger.inferences == len(xs)
    starts = [t.start_us for t in reply.timings]
    assert starts[0] == 0 and starts == sorted(starts) and len(set(starts)) == len(xs)
    for before, after in zip(reply.timings, reply.timings[1:]):  # each image starts after the one before ended
        # docs/protocol.md: the readout spans [start_us - readout_us, start_us], the retrieval follows the
        # inference. It compared start + end_to_end, counting the earlier image's readout after its trigger:
        # failed when the first image's readout (25.6 µs, a cold copy) outlasted the gap to the next (3.8 µs).
        assert after.start_us - after.readout_us >= before.start_us + before.inference_us + before.retrieval_us
        assert after.inference_us > 0 and after.readout_us > 0 and after.retrieval_us > 0


def test_an_eval_batch_larger_than_offered_is_refused_naming_the_counts(agent, wire, trigger):
    offered = agent.backend.batch
    xs = _inputs(offered + 1, seed=5)
    reply = wire.ask(p.EvalBatch((0,), tuple((x,) for x in xs)))
    assert isinstance(reply, p.Error) and reply.code == p.ErrorCode.BAD_PAYLOAD
    assert f"EVAL_BATCH of {offered + 1} images" in reply.text and f"batch={offered}" in reply.text
    assert trigger.inferences == 0  # refused before any image ran


def test_a_refused_input_ends_the_batch_with_the_error(wire, trigger):
    good, bad = _inputs(1, seed=6)[0], np.zeros((1, 8), np.float32)
    reply = wire.ask(p.EvalBatch((0,), ((good,), (bad,), (good,))))
    assert isinstance(reply, p.Error) and reply.code == p.ErrorCode.BAD_INPUT
    assert "float32[1, 8]" in reply.text and "expects int8" in reply.text
    assert trigger.inferences == 1  # the image before the refused one ran, none after it


def test_a_retransmitted_eval_batch_is_answered_from_the_reply_cache_without_running_again(wire, trigger):
    xs = _inputs(2, seed=7)
    request = wire.send(p.EvalBatch((0,), tuple((x,) for x in xs)))
    first = wire.reply()
    wire.port.write(request)  # the same seq, type and payload: a retransmission
    again = wire.reply()
    assert (again.seq, again.msg_type, again.payload) == (first.seq, first.msg_type, first.payload)
    assert isinstance(again.message(), p.BatchResult)
    assert trigger.inferences == len(xs)  # ran once
    wire.ask(p.EvalBatch((0,), tuple((x,) for x in xs)))  # the same images under a new seq run again
    assert trigger.inferences == 2 * len(xs)


def test_batch_size_follows_the_ram_and_the_requests_buffered():
    assert batch_images(192 * 1024, 3) == 1  # a Cortex-M4 class board
    assert batch_images(8 << 20, 3) == 16  # the IMX500
    assert batch_images(1 << 20, 1) == 8 and batch_images(1 << 20, 3) == 2  # each buffered request holds N
    assert batch_images(0, 1) == 1  # RAM unknown: one image per request still
