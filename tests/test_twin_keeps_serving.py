"""A twin answers a request it cannot reply to with an ERROR and keeps serving, as a board does.

Seen from outside (a helper talking to the twin directly): after a RUN whose RESULT no frame carries (more
stage times than 4 MiB holds), the next request on a bench-physics twin failed with "INTERNAL … timeline spans
must be appended in time order". The refused RUN had still run on the virtual clock (140,000 inferences of
240 ms: 9 hours), and there the last inference segment's end, summed segment by segment, landed a float ulp
(7e-12 s at 3e4 s) past the inference's end where the retrieval starts. Sizes below are docs/protocol.md's:
RESULT = model_sha256 (32) + count u32 + count × four float64 + output count u8 + per output dtype u8, ndim
u8, dims u32 each and the elements.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from pytest_edgehil.errors import DeviceRejected
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import ErrorCode, Result, Run
from pytest_edgehil.sim.bench_physics import BenchPhysics
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

from .conftest import MODELS
from .tflite_builder import Subgraph, Tensor, build

FRAME = 4 * 1024 * 1024  # MAX_PAYLOAD, docs/protocol.md
TIMING = 4 * 8  # four float64 per inference


def _result_room(model: bytes) -> int:
    """Stage times one RESULT has room for beside this model's outputs, from the protocol's sizes and the
    model's output tensors as LiteRT reads them."""
    interpreter = Interpreter(model_content=model)
    outputs = sum(2 + 4 * len(d["shape"]) + int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
                  for d in interpreter.get_output_details())
    return (FRAME - 32 - 4 - 1 - outputs) // TIMING


def test_a_run_no_result_frame_carries_is_refused_and_the_next_run_answers() -> None:
    data = (MODELS / "tinytracker.tflite").read_bytes()
    room = _result_room(data)
    count = 140_000
    assert count > room
    with DeviceTwin(load_profiles()["spresense"], "spresense", seed=3, physics=BenchPhysics()) as twin, \
            DeviceClient(twin.port, timeout_s=30) as client:
        client.load_model(data, "tinytracker")
        client.run(3)
        before_s = twin.clock_s
        with pytest.raises(DeviceRejected) as refused:
            client.run(count)
        assert refused.value.code == ErrorCode.UNSUPPORTED
        assert f"{count:,}" in str(refused.value) and f"at most {room:,}" in str(refused.value)
        assert twin.clock_s - before_s < 0.01  # nothing ran: the command's own time only (9 h of 240 ms runs)
        assert len(client.run(3).timings) == 3  # and it keeps serving


def test_a_model_whose_outputs_no_result_frame_carries_is_refused_and_the_board_keeps_serving() -> None:
    """Outputs over one frame by themselves (a RELU over 1100x1000 float32: 4.4 MB): no count fits. The
    twin says so (MODEL_TOO_LARGE, naming the outputs' bytes) instead of "INTERNAL … a firmware fault"."""
    graph = Subgraph(tensors=[Tensor("x", (1, 1100, 1000, 1)), Tensor("y", (1, 1100, 1000, 1))],
                     ops=[("RELU", ["x"], ["y"], None)], inputs=["x"], outputs=["y"])
    model = build(graph)
    assert _result_room(model) < 1
    small = (MODELS / "qsegment.tflite").read_bytes()
    with DeviceTwin(load_profiles()["jetson-nano"], "jetson-nano", seed=3, physics=BenchPhysics()) as twin, \
            DeviceClient(twin.port, timeout_s=30) as client:
        client.load_model(model, "wide")
        with pytest.raises(DeviceRejected) as refused:
            client.run(1)
        assert refused.value.code == ErrorCode.MODEL_TOO_LARGE
        assert f"{1100 * 1000 * 4:,} bytes" in str(refused.value)
        client.load_model(small, "qsegment")
        assert len(client.run(3).timings) == 3


@pytest.mark.parametrize("seed", [0, 3])
def test_a_run_late_on_the_virtual_clock_records_contiguous_spans(seed: int) -> None:
    """Late in a long session (a day of virtual time, where one float ulp is 1.5e-11 s) each stage still
    starts where the one before it ended: the timeline takes them, no energy is counted twice or lost."""
    twin = DeviceTwin(load_profiles()["spresense"], "spresense", seed=seed, physics=BenchPhysics())
    twin._activate((MODELS / "tinytracker.tflite").read_bytes(), "tinytracker")
    twin._advance_idle(86_400.0)
    reply = twin.handle(Run(200))
    assert isinstance(reply[0], Result), reply
    spans = twin.timeline.spans_from(86_400.0)
    gaps = [b.start_s - a.end_s for a, b in pairwise(spans)]
    assert len(spans) > 3 * 200 and gaps == [0.0] * len(gaps)
    assert twin.clock_s == spans[-1].end_s
