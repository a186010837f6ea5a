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
