"""Soak: batched evaluation (EVAL_BATCH, three requests in flight) over a pty whose frames are faulted at
random, every fault kind (a hang included: it now acts on EVAL_BATCH too), over several seeds.

Each evaluation sends 24 distinct inputs as `measure.latency.infer_many` does (depth and batch from the
twin's HELLO: requests of 1, 2, 4, 8, 8, 1 images); every output is compared, bit for bit, with LiteRT on
the host on the same input. A typed error ends in `recover()` and the whole evaluation is done again;
nothing else is allowed: no wrong number, no missing image. Bounded: at most 5 attempts per evaluation, 5
recoveries per error. The figures are printed (`-s` shows them).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import numpy as np
import pytest

from pytest_edgehil.bench import Bench
from pytest_edgehil.config.lab import DeviceConfig, LabConfig
from pytest_edgehil.errors import DeviceRejected, EdgeHILError
from pytest_edgehil.link.messages import batch_size, pipeline_depth
from pytest_edgehil.link.pipeline import evaluate
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.device_faults import FAULT_KINDS, DeviceFault

from .conftest import REPO
from .test_device_soak import ATTEMPTS, open_fds, recover

SEEDS = tuple(range(1, 9))
IMAGES = 240  # per seed
CHUNK = 24  # images per evaluation
FAULT_RATE = 0.03  # per frame: ~4 faults per seed on ~140 frames


def same(outputs: tuple[np.ndarray, ...], expected: list[np.ndarray]) -> bool:
    return len(outputs) == len(expected) and all(
        got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
        for got, want in zip(outputs, expected))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors in /proc/self/fd")
def test_batched_evaluation_under_random_faults_never_returns_a_wrong_or_missing_result():
    model = (REPO / "tests" / "data" / "conv_int8.tflite").read_bytes()
    runner = ModelRunner(model)
    spec = runner.inputs[0]
    threads_before, fds_before = threading.active_count(), open_fds()
    lab = LabConfig("soak", None, {"soak-batch": DeviceConfig(name="soak-batch", kind="coral", simulated=True)})
    bench = Bench(lab, timeout_s=2.0)  # as the SET_INPUT+RUN soak: four times the injected delay
    errors: Counter[str] = Counter()
    wrong = missing = recoveries = evaluations = 0
    start = time.monotonic()
    try:
        dut = bench.device("soak-batch")
        dut.ensure_model(model, "conv_int8")
        assert dut.twin is not None
        depth, batch = pipeline_depth(dut.hello.capabilities), batch_size(dut.hello.capabilities)
        assert depth > 1 and batch > 1  # requests in flight, several images each: what this soak is about
        plan = dut.twin.faults
        plan.template = DeviceFault("delay", delay_s=0.5, down_s=0.1)
        for seed in SEEDS:
            inputs = [np.random.default_rng([seed, i]).integers(-128, 128, size=spec.shape, dtype=spec.dtype)
                      for i in range(IMAGES)]
            plan.set_rate(FAULT_RATE, seed=seed)
            for first in range(0, IMAGES, CHUNK):
                chunk = inputs[first:first + CHUNK]
                for _ in range(ATTEMPTS):
                    try:
                        dut.ensure_model(model, "conv_int8")
                        results = evaluate(dut.client, ((x,) for x in chunk), depth=depth, batch=batch)
                        break
                    except DeviceRejected:
                        raise  # the board refusing a valid request is no line fault: fail loudly
                    except EdgeHILError as exc:
                        errors[type(exc).__name__] += 1
                        recover(dut, errors)
                        recoveries += 1
                else:
                    pytest.fail(f"seed {seed}, images {first}-{first + CHUNK}: failed {ATTEMPTS} times; {dict(errors)}")
                evaluations += 1
                missing += len(chunk) - len(results)
                wrong += sum(not same(r.outputs, runner.run_raw([x])) for r, x in zip(results, chunk))
            plan.set_rate(0.0)
        assert dut.client.hello().serial_number == dut.twin.usb_serial  # a clean last exchange
        stats, fired = dut.client.stats, dict(plan.fired)
        hangs_in_batches = sum(1 for f in plan.log if f.kind == "hang" and f.request == "EVAL_BATCH")
    finally:
        bench.close()

    figures = {
        "images": len(SEEDS) * IMAGES, "evaluations": evaluations, "seeds": SEEDS, "fault rate per frame": FAULT_RATE,
        "faults injected": sum(fired.values()), "by kind": {kind: fired.get(kind, 0) for kind in FAULT_KINDS},
        "hangs on EVAL_BATCH": hangs_in_batches, "typed errors (refusals)": dict(errors),
        "recovered (recover() then redone)": recoveries, "retransmissions": stats.retransmissions,
        "stale replies skipped": stats.stale_replies, "wrong results": wrong, "missing results": missing,
        "elapsed_s": round(time.monotonic() - start, 1),
    }
    print("\nbatch soak:", figures)

    assert wrong == 0 and missing == 0
    assert evaluations == len(SEEDS) * IMAGES // CHUNK
    assert sum(fired.values()) == len(plan.log) > 0
    # No typed error without a fault behind it; every error was followed by a recovery and a redo.
    assert sum(errors.values()) <= sum(fired.values())
    assert recoveries <= sum(errors.values())
    assert threading.active_count() == threads_before and open_fds() == fds_before
