"""The host against a board written from docs/protocol.md alone (`tests/firmware_board.py`), and against
the plausible bugs of such firmware: what the document promises a firmware author, checked end to end."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.bench import Bench, DeviceUnderTest
from pytest_edgehil.config.lab import DeviceConfig, LabConfig, apply_backend
from pytest_edgehil.errors import InvalidPayload, SequenceMismatch
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.measure.meter import EnergyPlan
from pytest_edgehil.measure.onboard_energy import PROBE_RUNS, measure_onboard_energy

from .firmware_board import BATCH_RESULT, BOARD_POWER_W, EVAL_BATCH, HEADER, FirmwareBoard

pytest.importorskip("ai_edge_litert")

MODEL = (Path(__file__).resolve().parent.parent / "fixtures" / "models" / "tinytracker.tflite").read_bytes()
ENERGY_PLAN = EnergyPlan(windows=1, runs_per_window=1, min_window_s=0.0)
IMAGE = np.random.default_rng(3).integers(-128, 128, (1, 96, 96, 1), dtype=np.int8)


@pytest.fixture
def board() -> Iterator[FirmwareBoard]:
    firmware = FirmwareBoard()
    firmware.start()
    yield firmware
    firmware.stop()


@contextmanager
def _client(board: FirmwareBoard, timeout_s: float = 5.0) -> Iterator[DeviceClient]:
    with DeviceClient(board.port, name="lab-board", timeout_s=timeout_s) as client:
        client.hello()
        client.load_model(MODEL, "tinytracker")
        client.set_input(0, IMAGE)
        yield client


def test_a_board_written_from_the_document_runs_and_its_timings_fit_the_round_trip(board):
    with _client(board) as client:
        result = client.run(5)
    assert len(result.timings) == 5 and result.timings[0].start_us == 0.0
    assert result.outputs[0].dtype == np.int8 and result.outputs[0].shape == (1, 2)


@pytest.mark.parametrize(("unit", "scale"), [("ns", 1e3), ("cycles at 168 MHz", 168.0)])
def test_stage_times_in_a_larger_unit_than_us_are_refused_not_recorded(board, unit, scale):
    # docs/protocol.md: timings are µs. A firmware packing its ns timer (or a raw cycle counter) as µs
    # reports inferences that would have taken longer than the whole RUN's round trip: impossible, so the
    # host must refuse the RESULT instead of recording a plausible "300 ms" inference.
    board.timing_scale = scale
    with _client(board) as client, pytest.raises(InvalidPayload) as caught:
        client.run(5)
    message = str(caught.value)
    assert "lab-board" in message and board.port in message and "µs" in message and "round trip" in message


def test_a_batch_result_echoing_the_frame_crc_instead_of_the_payload_crc_is_named_as_such(board):
    # docs/protocol.md's table says BATCH_RESULT "echoes its request's CRC-32"; its section says: the zlib
    # CRC-32 of the EVAL_BATCH *payload*. A firmware echoing the request frame's CRC trailer (header +
    # payload) is never taken, and the error must say so, not blame a late device or another program.
    board.capabilities = ["eval", "pipeline=2", "batch=4"]

    def echo_frame_crc(request_type: int, seq: int, reply: tuple[int, bytes]) -> list[tuple[int, tuple[int, bytes]]]:
        if request_type != EVAL_BATCH:
            return [(seq, reply)]
        header = HEADER.pack(2, EVAL_BATCH, seq, len(board.last_payload))
        wrong = struct.pack("<I", zlib.crc32(header + board.last_payload))
        return [(seq, (BATCH_RESULT, reply[1][:32] + wrong + reply[1][36:]))]

    board.mutate = echo_frame_crc
    with _client(board, timeout_s=1.0) as client, pytest.raises(SequenceMismatch) as caught:
        evaluate(client, [(IMAGE,)] * 3, depth=2, batch=4)
    message = str(caught.value)
    payload_crc = f"0x{zlib.crc32(board.last_payload):08X}"
    assert "lab-board" in message and board.port in message
    assert "CRC-32" in message and payload_crc in message and "payload" in message


@pytest.fixture
def dut(board) -> Iterator[DeviceUnderTest]:
    board.capabilities = ["energy_read"]
    config = DeviceConfig(name="lab-board", kind="coral", simulated=False, port=board.port)
    bench = Bench(apply_backend(LabConfig("lab", None, {"lab-board": config}), "hw"), timeout_s=5)
    try:
        device = bench.device("lab-board")
        device.ensure_model(MODEL, "tinytracker")
        device.client.set_input(0, IMAGE)
        yield device
    finally:
        bench.close()


def test_on_board_energy_is_the_counters_energy_over_their_board_us_window(dut):
    measured = measure_onboard_energy(dut, ENERGY_PLAN)
    assert measured.windows[0].end_to_end_power_w[0] == pytest.approx(BOARD_POWER_W, rel=0.01)


def test_windows_sized_again_from_a_stalled_window_are_sized_from_its_fastest_inference(board, dut):
    # A loaded board stalls during the probe and the first window's first inferences, then runs fast. Sized
    # again from that window's mean per inference (stalls included), the next windows were as short again
    # and the measurement was refused (a CI flake under load); sized from its fastest inference, as the
    # probe sizes n, the board gets its energy.
    invoke = board.interp.invoke
    stalls = {"left": PROBE_RUNS + 30}

    def stalled_then_fast() -> None:
        if stalls["left"] > 0:
            stalls["left"] -= 1
            time.sleep(0.003)
        invoke()

    board.interp.invoke = stalled_then_fast
    measured = measure_onboard_energy(dut, EnergyPlan(windows=2, runs_per_window=1, min_window_s=0.0))
    assert stalls["left"] == 0 and len(measured.windows) == 2
    assert all(w.end_to_end_power_w[0] == pytest.approx(BOARD_POWER_W, rel=0.01) for w in measured.windows)


@pytest.mark.parametrize(("clock", "scale"), [("ns", 1e3), ("ms", 1e-3)])
def test_a_counter_window_stamped_in_another_unit_than_us_is_refused(board, dut, clock, scale):
    # docs/protocol.md: ENERGY_COUNTERS' start_us/end_us are board µs. Stamped from a ns clock, the window
    # looks 1000x longer and the mean power 1000x lower (2 mW for a 2 W board: under any power budget);
    # from a ms clock 1000x shorter than the RUN it brackets. The board times the RUN's stages on the same
    # clock, so the host can tell, and must refuse instead of recording the power.
    board.counter_time_scale = scale
    with pytest.raises(InvalidPayload) as caught:
        measure_onboard_energy(dut, ENERGY_PLAN)
    message = str(caught.value)
    assert "lab-board" in message and "board:vdd" in message and "µs" in message


def test_a_board_faster_after_the_probe_than_during_it_gets_its_windows_sized_again_not_refused(board, dut):
    # n comes from the probe RUN's period. A board whose first inferences are slow (caches, a loaded CPU)
    # then got windows too short for its counter and the measurement was refused (a flaky CannotResolve on
    # a loaded CI machine); sized again from the first window it gets its energy, still right.
    invoke = board.interp.invoke
    probe_calls = {"left": PROBE_RUNS}

    def slow_during_the_probe() -> None:
        if probe_calls["left"] > 0:
            probe_calls["left"] -= 1
            time.sleep(0.003)  # ten times one TinyTracker inference
        invoke()

    board.interp.invoke = slow_during_the_probe
    plan = EnergyPlan(windows=2, runs_per_window=1, min_window_s=0.0)
    measured = measure_onboard_energy(dut, plan)
    assert probe_calls["left"] == 0 and len(measured.windows) == 2
    n = int(measured.window_source.split()[-2])
    assert all(len(t) == n for t in measured.timings)
    assert all(w.end_to_end_power_w[0] == pytest.approx(BOARD_POWER_W, rel=0.01) for w in measured.windows)
