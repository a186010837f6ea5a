"""Every device fault as a test, over real ptys: the twin's fault layer breaks the line or the firmware, the
host raises its typed error or recovers, and the result after recovery equals the fault-free result
(the same input run through LiteRT on the host).

The device is brought up by a real `Bench` on a one-board simulated lab; faults are armed on its twin's
plan (`dut.twin.faults`). Timeouts are short (1 s, three 0.33 s slices) so a silent fault costs little.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from pytest_edgehil.bench import Bench, DeviceUnderTest, resolve_port
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import (
    ConfigError,
    DeviceError,
    DeviceRejected,
    DeviceTimeout,
    ProtocolVersionMismatch,
    SequenceMismatch,
)
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import PROTOCOL_VERSION, batch_size, pipeline_depth
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.link.recovery import reconnect
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim import sim_comports, start_device_twin
from pytest_edgehil.sim.device_faults import INFERENCE_REQUESTS, DeviceFault, DeviceFaultPlan, FiredFault
from pytest_edgehil.sim.usb_ports import SIM_PID, SIM_VID

from .conftest import REPO

MODEL = (REPO / "tests" / "data" / "conv_int8.tflite").read_bytes()
RUNNER = ModelRunner(MODEL)  # the host-side reference: LiteRT on the same input


def image(index: int) -> np.ndarray:
    spec = RUNNER.inputs[0]
    return np.random.default_rng([7, index]).integers(-128, 128, size=spec.shape, dtype=spec.dtype)


def reference(x: np.ndarray) -> list[np.ndarray]:
    return RUNNER.run_raw([x])


def infer(dut: DeviceUnderTest, x: np.ndarray) -> tuple[np.ndarray, ...]:
    dut.client.set_input(0, x)
    return dut.client.run(1).outputs


def assert_same(outputs: tuple[np.ndarray, ...], expected: list[np.ndarray]) -> None:
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def dut(request: pytest.FixtureRequest) -> Iterator[DeviceUnderTest]:
    """A coral twin on a one-board lab, conv_int8 active, a clean line until the test arms a fault."""
    # A name of its own per test: the twin's USB serial number derives from it.
    name = f"faulty-{zlib.crc32(request.node.nodeid.encode()):08x}"
    lab = LabConfig("faults", None, {name: DeviceConfig(name=name, kind="coral", simulated=True)})
    # 2 s: short enough that hang tests stay quick, long enough that a loaded CI machine never stalls a
    # healthy twin past it (1 s did, once in a few runs with four test processes on two cores).
    bench = Bench(lab, timeout_s=2.0)
    try:
        device = bench.device(name)
        device.ensure_model(MODEL, "conv_int8")
        yield device
    finally:
        bench.close()


def plan(dut: DeviceUnderTest) -> DeviceFaultPlan:
    assert dut.twin is not None
    return dut.twin.faults


# -- faults the link absorbs: a retransmission, never a wrong value ------------------------------------------
@pytest.mark.parametrize(("kind", "direction"), [
    ("drop-byte", "reply"), ("drop-byte", "request"), ("corrupt", "reply"), ("corrupt", "request"),
    ("drop-frame", "reply"), ("drop-frame", "request"), ("noise", "reply"), ("noise", "request"),
    ("stale-seq", "reply"), ("delay", "reply"),
])
def test_a_damaged_lost_stale_or_late_frame_is_retransmitted_and_the_result_is_the_fault_free_one(
        dut, kind, direction):
    assert dut.twin is not None
    link, stats = dut.twin.link, dut.client.stats
    x = image(1)
    # A delay past one retransmission slice (timeout / (retries + 1) = 1/3 of it) and inside the whole wait,
    # with a margin of a sixth of the timeout either side for a loaded machine's scheduling.
    plan(dut).inject(DeviceFault(kind, direction=direction, on="RUN", delay_s=0.6 * dut.client.timeout_s))
    outputs = infer(dut, x)
    assert_same(outputs, reference(x))
    assert plan(dut).fired == {kind: 1} and plan(dut).pending() == 0
    assert plan(dut).log[0].direction == direction and plan(dut).log[0].request == "RUN"
    assert stats.retransmissions >= 1  # every one of these costs one retransmission at least
    if direction == "request" and kind != "drop-frame":
        assert link.corrupt_frames == 1  # the twin's decoder refused the damaged request...
    if direction == "reply" and kind != "delay":
        # ...or the twin answered the retransmission from its reply cache (a delayed reply may reach the
        # host first; when the twin then reads the retransmission is a matter of scheduling).
        assert link.replays >= 1
    if direction == "reply" and kind in ("drop-byte", "corrupt", "noise"):
        assert stats.corrupt_frames == 1  # noise: the garbage and the frame behind it decode as one bad frame
    if kind == "stale-seq":
        assert stats.stale_replies >= 1
        assert any("skipped stale reply" in line for line in dut.client.traffic_log.lines())
    # The line is clean again: the next inference on another input is right too.
    y = image(2)
    assert_same(infer(dut, y), reference(y))


@pytest.mark.parametrize("direction", ["reply", "request"])
def test_a_duplicated_frame_is_never_taken_as_the_reply_to_the_next_command(dut, direction):
    assert dut.twin is not None
    x, y = image(3), image(4)
    plan(dut).inject(DeviceFault("duplicate", direction=direction, on="RUN"))
    assert_same(infer(dut, x), reference(x))
    # The second copy of x's RESULT (sent again, or answered again from the reply cache) is still on the
    # line; the next command must skip it by its sequence number and return y's result.
    assert_same(infer(dut, y), reference(y))
    assert dut.client.stats.stale_replies == 1
    assert dut.twin.link.replays == (1 if direction == "request" else 0)
    assert any("skipped stale reply" in line for line in dut.client.traffic_log.lines())


def test_stale_sequence_numbers_with_no_retries_left_are_a_sequence_mismatch(dut):
    assert dut.twin is not None
    plan(dut).inject(DeviceFault("stale-seq", on="HELLO"))
    dut.client.close()  # ports are opened exclusively: one client per board at a time
    with DeviceClient(dut.twin.port, name="strict", timeout_s=0.5, retries=0) as client, \
            pytest.raises(SequenceMismatch, match=r"'strict'.*received only 1 replies carrying other sequence"):
        client.hello()


def test_a_reply_in_an_unknown_protocol_version_is_a_typed_error_and_the_next_command_works(dut):
    x = image(5)
    dut.client.set_input(0, x)
    plan(dut).inject(DeviceFault("bad-version", on="RUN", version=9))
    with pytest.raises(ProtocolVersionMismatch) as excinfo:
        dut.client.run(1)
    message = str(excinfo.value)
    assert dut.name in message and dut.port in message and "version 9" in message and f"version {PROTOCOL_VERSION}" in message
    assert_same(dut.client.run(1).outputs, reference(x))  # no reconnect needed: the link is intact


# -- faults that surface: a typed error, then recover() ----------------------------------------------------
def test_a_hang_mid_inference_is_a_device_timeout_then_recover_resumes(dut):
    assert dut.twin is not None
    x = image(6)
    dut.client.set_input(0, x)
    plan(dut).inject(DeviceFault("hang"))  # default target: a request that runs an inference, RUN here
    with pytest.raises(DeviceTimeout) as excinfo:
        dut.client.run(1)
    message = str(excinfo.value)
    assert dut.name in message and dut.port in message and "did not answer run(1)" in message
    assert dut.twin.link.swallowed == dut.client.retries  # every retransmission of the hung RUN, unanswered
    hello = dut.recover()
    assert hello.serial_number == dut.twin.usb_serial
    assert dut.loaded_sha256 is not None  # re-selected by hash
    assert_same(infer(dut, x), reference(x))


@pytest.mark.parametrize("on", ["EVAL_BATCH", None])
def test_a_hang_during_batched_evaluation_is_a_device_timeout_naming_the_images_in_flight(dut, on):
    # The first EVAL_BATCH (image 1) hangs while those of images 2-3 and 4-7 are in flight behind it: no
    # result comes back, not even those the board did answer, and the error names every image lost.
    assert dut.twin is not None
    xs = [image(20 + i) for i in range(12)]
    depth, batch = pipeline_depth(dut.hello.capabilities), batch_size(dut.hello.capabilities)
    assert depth >= 3 and batch >= 4  # the coral twin: 1, 2 and 4 images in flight
    plan(dut).inject(DeviceFault("hang", on=on))  # None: the first request that runs an inference
    with pytest.raises(DeviceTimeout) as excinfo:
        evaluate(dut.client, ((x,) for x in xs), depth=depth, batch=batch)
    message = str(excinfo.value)
    assert dut.name in message and dut.port in message and "did not answer evaluate (image 1)" in message
    assert "In flight: image 1, images 2-3, images 4-7; no result of this evaluation is returned" in message
    assert "answered 2 later requests in flight but not this one" in message  # not "suspect the baud rate"
    assert plan(dut).log[0].request == "EVAL_BATCH" and dut.twin.link.swallowed == dut.client.retries
    dut.recover()
    results = evaluate(dut.client, ((x,) for x in xs), depth=depth, batch=batch)
    assert len(results) == len(xs)
    for result, x in zip(results, xs):
        assert_same(result.outputs, reference(x))


def test_a_reboot_re_enumerates_the_port_and_recover_finds_the_board_by_usb_serial_number(dut):
    assert dut.twin is not None
    old_port = dut.port
    x = image(7)
    dut.client.set_input(0, x)
    plan(dut).inject(DeviceFault("reboot", on="RUN", down_s=0.2))
    with pytest.raises(DeviceError, match=rf"{dut.name}.*port {old_port} failed.*re-enumerated") as excinfo:
        dut.client.run(1)
    assert not isinstance(excinfo.value, DeviceTimeout)  # the port is gone, not slow
    # Until recovered, commands say what happened and what to do instead of failing obscurely.
    with pytest.raises(DeviceError, match=rf"after port {old_port} was lost.*recover\(\)"):
        dut.client.hello()
    requests_before = dut.client.stats.requests
    hello = dut.recover()
    assert dut.twin.reboots == 1 and dut.twin.port != old_port and dut.port == dut.twin.port
    assert (hello.device_kind, hello.serial_number) == ("coral", dut.twin.usb_serial)
    assert dut.client.stats.requests - requests_before == 2  # HELLO + SELECT_MODEL: no upload, flash kept
    assert dut.loaded_sha256 is not None
    assert_same(infer(dut, x), reference(x))  # RAM was lost: the input is sent again, same answer


def test_a_reboot_that_wipes_flash_is_recovered_by_reloading_the_model_by_hash(dut):
    x = image(8)
    sha = dut.loaded_sha256
    plan(dut).inject(DeviceFault("reboot", on="SET_INPUT", wipe_flash=True, down_s=0.1))
    with pytest.raises(DeviceError, match="re-enumerated"):
        dut.client.set_input(0, x)
    dut.recover()
    assert dut.loaded_sha256 is None  # the board answered NO_MODEL to the select: nothing active
    with pytest.raises(DeviceRejected, match="NO_MODEL"):
        dut.client.run(1)
    assert dut.ensure_model(MODEL, "conv_int8") == sha  # uploaded again
    assert_same(infer(dut, x), reference(x))


def test_a_board_that_does_not_come_back_is_a_device_error_naming_its_serial_number(dut):
    assert dut.twin is not None
    plan(dut).inject(DeviceFault("reboot", down_s=60.0))  # it stays away far longer than recover waits
    with pytest.raises(DeviceError, match="re-enumerated"):
        dut.client.hello()
    with pytest.raises(DeviceError, match=rf"did not come back within 0.5 s.*{dut.twin.usb_serial}") as excinfo:
        dut.recover(wait_s=0.5)
    assert "ports present" in str(excinfo.value)


def test_another_board_on_the_port_is_refused_not_measured(dut):
    other, other_port = start_device_twin("imx500", "neighbour")
    try:
        with pytest.raises(DeviceError, match=r"is a 'imx500'.*not the 'coral'.*another board"):
            reconnect(dut.client, lambda: other_port, wait_s=1.0, expect=dut.hello)
        assert not dut.client.is_open
    finally:
        other.close()


# -- the fault plan and the simulated USB registry ----------------------------------------------------------
def test_a_twin_s_port_is_listed_under_its_usb_serial_number_while_it_serves():
    twin, port = start_device_twin("coral", "listed")
    try:
        found = [info for info in sim_comports() if info.serial_number == twin.usb_serial]
        assert [(info.device, info.vid, info.pid) for info in found] == [(port, SIM_VID, SIM_PID)]
        config = DeviceConfig(name="listed", kind="coral", simulated=True, usb_serial=twin.usb_serial)
        assert resolve_port(config, comports=sim_comports) == port
    finally:
        twin.close()
    assert all(info.serial_number != twin.usb_serial for info in sim_comports())


@pytest.mark.parametrize(("fault", "match"), [
    (lambda: DeviceFault("melt"), "unknown"),
    (lambda: DeviceFault("hang", direction="reply"), "cannot act in direction 'reply'"),
    (lambda: DeviceFault("delay", direction="request"), "cannot act in direction 'request'"),
    (lambda: DeviceFault("corrupt", count=0), "count must be >= 1"),
    (lambda: DeviceFault("no-invoke", direction="request"), "cannot act in direction 'request'"),
    (lambda: DeviceFault("corrupt", direction="firmware"), "cannot act in direction 'firmware'"),
    (lambda: DeviceFault("hang", after=-1), "after, delay_s and down_s >= 0"),
    (lambda: DeviceFaultPlan(rate=1.5), "rate must be within 0..1"),
    (lambda: DeviceFaultPlan.from_table({"rate": 0.1, "sed": 3}), r"unknown keys \['sed'\]"),
    (lambda: DeviceFaultPlan.from_table({"faults": [{"kind": "hang", "cnt": 2}]}), "cnt"),
    (lambda: start_device_twin("coral", "bad", faults={"kinds": ["melt"]}), r"unknown fault kind\(s\) 'melt'"),
])
def test_bad_fault_configuration_is_a_config_error(fault, match):
    with pytest.raises(ConfigError, match=match):
        fault()


def test_a_plan_from_a_table_arms_its_faults_and_rate():
    table = {"rate": 0.25, "seed": 4, "kinds": ["corrupt", "hang"], "down_s": 0.3,
             "faults": [{"kind": "reboot", "on": "run", "wipe_flash": True}]}
    p = DeviceFaultPlan.from_table(table)
    assert (p.rate, p.seed, p.kinds, p.template.down_s) == (0.25, 4, ("corrupt", "hang"), 0.3)
    assert [(f.kind, f.direction, f.on, f.wipe_flash) for f in p.faults] == [("reboot", "request", "RUN", True)]


FRAMES = (("request", "SET_INPUT"), ("request", "RUN"), ("request", "EVAL"), ("request", "EVAL_BATCH"),
          ("request", "HELLO"), ("reply", "RUN"), ("reply", "EVAL_BATCH"))


def test_a_firmware_fault_waits_its_after_frames_and_is_never_taken_by_the_line_or_drawn_by_rate():
    plan = DeviceFaultPlan.from_table({"rate": 1.0, "seed": 3, "faults": [{"kind": "no-invoke", "count": 2, "after": 1}]})
    assert [f.kind for f in plan.faults] == ["no-invoke"] and plan.faults[0].direction == "firmware"
    assert plan.take("request", "RUN", 1).kind != "no-invoke"  # the pty link's take: a line fault, drawn by rate
    assert plan.take("firmware", "SET_INPUT", 2) is None  # no-invoke acts on RUN and EVAL only
    fired = [plan.take("firmware", request, seq) for seq, request in enumerate(("RUN", "EVAL", "RUN", "RUN"), 3)]
    assert [f.kind if f else None for f in fired] == [None, "no-invoke", "no-invoke", None]


def test_rate_mode_faults_every_frame_at_rate_1_none_at_0_and_repeats_with_its_seed():
    never = DeviceFaultPlan(rate=0.0)
    assert all(never.take("reply", "RUN", seq) is None for seq in range(200))
    always = DeviceFaultPlan(rate=1.0, seed=11)
    drawn = [always.take(direction, request, seq) for seq in range(200) for direction, request in FRAMES]
    assert all(fault is not None for fault in drawn) and always.total_fired == 200 * len(FRAMES) == len(always.log)
    # Only kinds that can act there: a hang only on a request that runs an inference (each of them drawn
    # here), no delay/stale/version on a request, no reboot on a reply.
    hung = {f.request for f in always.log if f.kind == "hang"}
    assert hung == set(INFERENCE_REQUESTS) == {"RUN", "EVAL", "EVAL_BATCH"}
    assert all(f.kind not in ("delay", "stale-seq", "bad-version") for f in always.log if f.direction == "request")
    assert all(f.kind not in ("hang", "reboot") for f in always.log if f.direction == "reply")
    again = DeviceFaultPlan(rate=1.0, seed=11)
    for seq in range(200):
        for direction, request in FRAMES:
            again.take(direction, request, seq)
    assert again.log == always.log
    assert always.log[0] == FiredFault(always.log[0].kind, "request", "SET_INPUT", 0)


def test_an_armed_hang_waits_for_a_request_that_runs_an_inference_unless_told_which():
    p = DeviceFaultPlan([DeviceFault("hang", count=3)])
    assert [p.take("request", r, 1) is not None for r in ("HELLO", "SET_INPUT", "SELECT_MODEL")] == [False] * 3
    assert [p.take("request", r, 2) is not None for r in INFERENCE_REQUESTS] == [True] * 3 and not p.active
    only = DeviceFaultPlan([DeviceFault("hang", on="eval")])
    assert only.take("request", "RUN", 3) is None and only.take("request", "EVAL_BATCH", 3) is None
    assert only.take("request", "EVAL", 3) is not None


def test_armed_faults_fire_on_their_target_only_and_count_down():
    p = DeviceFaultPlan([DeviceFault("corrupt", count=2, on="RUN")])
    assert p.take("reply", "SET_INPUT", 1) is None and p.take("request", "RUN", 1) is None
    assert p.take("reply", "RUN", 2) is not None and p.take("reply", "RUN", 3) is not None
    assert p.take("reply", "RUN", 4) is None and p.fired == {"corrupt": 2} and not p.active
