"""More latency runs than one RESULT frame carries: measured over several RUNs, not refused as a firmware
fault.

Seen from outside: `edgehil_latency_runs = 200000` (a lab engineer's long latency run) made every latency
test fail with "INTERNAL: Result reply cannot be sent: RESULT payload of 6416439 bytes exceeds MAX_PAYLOAD
… (a firmware fault; … reset the device)", and the twin's timeline was left broken for the next tests (an
accuracy test failed after them). A RESULT's stage times are four float64 per inference (32 bytes,
docs/protocol.md) in a frame of at most 4 MiB: 140,000 inferences are 4,480,000 bytes of times alone.
"""

from __future__ import annotations

import numpy as np

from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.measure.latency import stage_timings
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

from .conftest import MODELS

RUNS = 140_000
assert RUNS * 4 * 8 > 4 * 1024 * 1024  # over one frame by the protocol's own sizes


class _Dut:
    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.name, self.port = "coral", client.port


def test_latency_runs_beyond_one_result_frame_are_all_timed() -> None:
    data = (MODELS / "qsegment.tflite").read_bytes()
    with DeviceTwin(load_profiles()["coral"], "coral", seed=3) as twin, \
            DeviceClient(twin.port, timeout_s=10) as client:
        client.load_model(data, "qsegment")
        timings = stage_timings(_Dut(client), RUNS)  # type: ignore[arg-type]
        assert len(timings) == RUNS
        inference_us = np.array([t.inference_us for t in timings])
        assert np.all(np.isfinite(inference_us)) and np.all(inference_us > 0)
        # The board is left usable: one more RUN answers as before.
        assert len(client.run(3).timings) == 3


def test_latency_runs_of_a_model_with_large_outputs_fit_their_results() -> None:
    """A RESULT carries the last inference's outputs beside the stage times: with 3 MiB of outputs (a
    1024x1024x3 int8 map, under the one frame the start-up check allows) only 1 MiB is left for times, 32
    bytes each (docs/protocol.md): 40,000 latency runs (1.28 MB of times) in one RUN were refused by the
    board as a RESULT over MAX_PAYLOAD, 'a firmware fault'. Each RUN now holds what its frame can carry."""
    from .test_op_costs import Net

    net = Net()
    x, y = net.tensor("x", (1, 1024, 1024, 3), "INT8"), net.tensor("y", (1, 1024, 1024, 3), "INT8")
    net.op("RELU", [x], [y])
    output_bytes = 1024 * 1024 * 3
    assert output_bytes + 40_000 * 32 > 4 * 1024 * 1024 > output_bytes
    with DeviceTwin(load_profiles()["coral"], "coral", seed=3) as twin, \
            DeviceClient(twin.port, timeout_s=30) as client:
        client.load_model(net.build([x], [y]), "large_outputs")
        timings = stage_timings(_Dut(client), 40_000, output_bytes=output_bytes)  # type: ignore[arg-type]
        assert len(timings) == 40_000 and all(t.inference_us > 0 for t in timings)
