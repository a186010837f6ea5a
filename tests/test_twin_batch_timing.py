"""An EVAL_BATCH is timed as its images were one by one: the same spans, timings and clock.

The twin times a batch's images in one step after they ran (`TimedTwin._simulate_runs(each_a_run=True)`);
the oracle is the step-by-step recording of tests/test_twin.py (one `_advance` per span, one `_jittered`
draw per image), applied to each image as a RUN 1 of its own, on a twin with the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_edgehil.link import messages as p
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.device_twin import COMMAND_S, DeviceTwin

from .test_twin import CATALOG, PROFILES, _simulate_step_by_step

MODEL = CATALOG.get("tinytracker")


def _twin(seed: int, physics: BenchPhysics) -> DeviceTwin:
    twin = DeviceTwin(PROFILES["imx500"], "imx500", seed=seed, physics=physics)
    twin._activate(MODEL.data, MODEL.name)
    return twin


def _images(n: int) -> tuple[tuple[np.ndarray], ...]:
    rng = np.random.default_rng(n)
    shape = MODEL.info.inputs[0].shape
    return tuple((rng.integers(-128, 128, size=shape, dtype=np.int8),) for _ in range(n))


def _expected(oracle: DeviceTwin, images: int) -> list[p.StageTiming]:
    """The batch's timings from one step-by-step RUN 1 per image, `start_us` from the first image's trigger."""
    oracle._advance_idle(COMMAND_S)  # what `handle` spends on the command before the batch
    timings, first = [], None
    for _ in range(images):
        (timing,), (edges,) = _simulate_step_by_step(oracle, oracle._model.info, 1)
        trigger_s = oracle.device_clock.stamp_s(edges[1])
        first = trigger_s if first is None else first
        timings.append(p.StageTiming((trigger_s - first) * 1e6, timing.readout_us, timing.inference_us,
                                     timing.retrieval_us))
    return timings


@pytest.mark.parametrize("physics", [BenchPhysics.ideal(), BenchPhysics()], ids=["ideal", "bench"])
@pytest.mark.parametrize("seed", [0, 5])
def test_a_batch_gives_the_spans_timings_and_clock_of_its_images_timed_one_by_one(physics, seed):
    twin, oracle = _twin(seed, physics), _twin(seed, physics)
    for n in (1, 7, 3):  # batches back to back: the jitter stream and the clock carry over
        (reply,) = twin.handle(p.EvalBatch((0,), _images(n)))
        assert isinstance(reply, p.BatchResult)
        assert list(reply.timings) == _expected(oracle, n)
    assert twin.timeline.snapshot() == oracle.timeline.snapshot()
    assert twin.clock_s == oracle.clock_s and not twin.timeline.busy
    # Each image is a RUN 1 of its own: its spans carry run index 0, as EVAL's do.
    assert {span.run_index for span in twin.timeline.snapshot() if span.stage == "inference"} == {0}


def test_the_images_before_a_refused_one_ran_and_are_on_the_timeline():
    twin, oracle = _twin(3, BenchPhysics()), _twin(3, BenchPhysics())
    good = _images(2)
    bad = (np.zeros((1, 8, 8, 1), np.int8),)  # not the model's input shape: refused as SET_INPUT refuses it
    (reply,) = twin.handle(p.EvalBatch((0,), (*good, bad)))
    assert isinstance(reply, p.Error) and reply.code == p.ErrorCode.BAD_INPUT
    _expected(oracle, 2)  # the two images that ran, timed; the refused one not
    assert twin.timeline.snapshot() == oracle.timeline.snapshot()
    assert twin.clock_s == oracle.clock_s


def test_a_run_of_several_inferences_numbers_them_and_a_batch_does_not():
    twin = _twin(1, BenchPhysics.ideal())
    twin._simulate_runs(MODEL.info, 3)
    assert [s.run_index for s in twin.timeline.snapshot() if s.stage == "inference"] == [0, 1, 2]
    assert len(twin.last_run_edges_s) == 3
