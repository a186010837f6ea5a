"""The agent's trigger line and stage timings against the protocol's edge convention, and the energies a
host measures from them: `start_us` is where the trigger rises (the inference stage's start; copy-in
precedes it) and the pulse is `inference_us` long (docs/protocol.md, RESULT). The agent runs a real
LiteRT model whose interpreter advances a board clock by known stage times; a trace is then sampled from
those stages' true power, as an integrating analyzer (EXT trigger) or a monitor with a digital input on the
trigger line records it, and the host's window code must give each stage's true energy."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pytest_edgehil.agent.litert_device import LiteRTDevice
from pytest_edgehil.agent.onboard_energy import OnboardEnergy
from pytest_edgehil.link import messages as p
from pytest_edgehil.measure.digital_windows import energy_from_digital
from pytest_edgehil.measure.energy import EnergySamples, energy_from_trace

from .conftest import MODELS

COPY_IN_NS, INVOKE_NS, COPY_OUT_NS, LOOP_NS = 300_000, 2_000_000, 200_000, 50_000
IDLE_W, COPY_IN_W, INVOKE_W, COPY_OUT_W = 1.0, 3.0, 6.0, 4.0
SAMPLE_NS = 10_000  # 100 kS/s
RUNS = 6


class BoardClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


class StagedInterpreter:
    """LiteRT's interpreter, each call taking its stage's time on the board clock at its stage's power."""

    def __init__(self, real: Any, clock: BoardClock) -> None:
        self.real, self.clock = real, clock
        self.spans: list[tuple[int, int, float]] = []  # (start ns, end ns, W): the truth

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _take(self, ns: int, power_w: float) -> None:
        self.spans.append((self.clock.ns, self.clock.ns + ns, power_w))
        self.clock.ns += ns

    def set_tensor(self, index: int, array: np.ndarray) -> None:
        self._take(COPY_IN_NS, COPY_IN_W)
        self.real.set_tensor(index, array)

    def invoke(self) -> None:
        self._take(INVOKE_NS, INVOKE_W)
        self.real.invoke()

    def get_tensor(self, index: int) -> np.ndarray:
        self._take(COPY_OUT_NS, COPY_OUT_W)
        return self.real.get_tensor(index)


class RecordingTrigger:
    def __init__(self, clock: BoardClock) -> None:
        self.clock = clock
        self.edges: list[tuple[int, bool]] = []

    def set(self, high: bool) -> None:
        self.edges.append((self.clock.ns, high))


class AgentLoop(OnboardEnergy):
    """No counters; each poll (after every inference of a RUN) stands for the agent's idle loop time."""

    def __init__(self, clock: BoardClock) -> None:
        super().__init__([])
        self.clock = clock

    def poll(self, clock_ns: Callable[[], int]) -> None:
        self.clock.ns += LOOP_NS


@pytest.fixture(scope="module")
def run() -> tuple[tuple[p.StageTiming, ...], StagedInterpreter, RecordingTrigger]:
    clock = BoardClock()
    trigger = RecordingTrigger(clock)
    device = LiteRTDevice(name="board", clock_ns=clock, trigger=trigger, energy=AgentLoop(clock),  # type: ignore[arg-type]
                          extra_capabilities=())
    data = (MODELS / "qsegment.tflite").read_bytes()
    assert isinstance(device.handle(p.LoadBegin(len(data), _sha(data), "qsegment")), p.Ack)
    assert isinstance(device.handle(p.LoadChunk(0, data)), p.Ack)
    assert isinstance(device.handle(p.LoadEnd(_sha(data))), p.Ack)
    runner = device._model.runner  # type: ignore[union-attr]
    assert len(runner.inputs) == 1 and len(runner.outputs) == 1  # one span per stage
    interpreter = StagedInterpreter(runner._interpreter, clock)
    runner._interpreter = interpreter
    clock.ns += 5_000_000
    result = device.handle(p.Run(RUNS))
    assert isinstance(result, p.Result)
    return result.timings, interpreter, trigger


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_the_trigger_rises_at_start_us_and_stays_high_for_inference_us(run):
    timings, interpreter, trigger = run
    invokes = [(s0, s1) for s0, s1, w in interpreter.spans if w == INVOKE_W]
    rises = [t for t, high in trigger.edges if high]
    falls = [t for t, high in trigger.edges if not high]
    assert rises == [s0 for s0, _ in invokes] and falls == [s1 for _, s1 in invokes]
    for timing, rise, fall in zip(timings, rises, falls, strict=True):
        assert timing.start_us == pytest.approx((rise - rises[0]) / 1e3)
        assert timing.inference_us == pytest.approx((fall - rise) / 1e3)
        assert (timing.readout_us, timing.retrieval_us) == (COPY_IN_NS / 1e3, COPY_OUT_NS / 1e3)


def _trace(interpreter: StagedInterpreter, trigger: RecordingTrigger) -> tuple[np.ndarray, ...]:
    """(time s with t = 0 at the first trigger rise, mean power W over each sample, trigger level)."""
    first_rise = trigger.edges[0][0]
    grid = np.arange(first_rise - 3_000_000, interpreter.spans[-1][1] + 3_000_000, SAMPLE_NS)
    lo, hi = grid - SAMPLE_NS // 2, grid + SAMPLE_NS // 2
    energy = IDLE_W * (hi - lo).astype(float)
    for s0, s1, power_w in interpreter.spans:
        energy += (power_w - IDLE_W) * np.clip(np.minimum(hi, s1) - np.maximum(lo, s0), 0, None)
    level = np.zeros(grid.size, dtype=bool)
    for t, high in trigger.edges:
        level[grid >= t] = high
    return (grid - first_rise) * 1e-9, energy / SAMPLE_NS, level


def _check_against_truth(samples: EnergySamples, interpreter: StagedInterpreter) -> None:
    inference_truth_j = INVOKE_W * INVOKE_NS * 1e-9
    end_to_end_truth_j = (COPY_IN_W * COPY_IN_NS + INVOKE_W * INVOKE_NS + COPY_OUT_W * COPY_OUT_NS) * 1e-9
    assert samples.inference_refusal is None
    assert samples.inference_j.size == samples.end_to_end_j.size == RUNS
    assert np.all(np.abs(samples.inference_j - inference_truth_j) <= np.maximum(samples.inference_u_j, 1e-9))
    assert np.all(np.abs(samples.end_to_end_j - end_to_end_truth_j) <= np.maximum(samples.end_to_end_u_j, 1e-9))
    assert np.all(samples.inference_u_j < 0.01 * inference_truth_j)


def test_a_monitors_digital_channel_on_the_trigger_gives_each_stages_true_energy(run):
    timings, interpreter, trigger = run
    time_s, power_w, level = _trace(interpreter, trigger)
    _check_against_truth(energy_from_digital(time_s, power_w, level, timings), interpreter)


def test_an_analyzer_triggered_by_the_line_gives_each_stages_true_energy(run):
    timings, interpreter, trigger = run
    time_s, power_w, _ = _trace(interpreter, trigger)
    _check_against_truth(energy_from_trace(time_s, power_w, timings), interpreter)
