"""Case shared/cases/int8-float-io: Q-Segment int8 with int8 I/O, and the same graph with float32 I/O.

The float-I/O file only adds a QUANTIZE in front and a DEQUANTIZE behind (the TFLite converter's default);
its convolutions are the same int8 ones and its outputs are bit-identical. So it computes in int8, and a
twin must time it at the int8 rate: the same simulated inference time within 2 % on every device profile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

CASE = Path(__file__).resolve().parent / "data" / "cases" / "int8-float-io"
INT8_IO = CASE / "qsegment_int8_io.tflite"
FLOAT_IO = CASE / "qsegment_float_io.tflite"
PROFILES = load_profiles()


def test_int8_float_io_case_files_differ_only_at_the_io() -> None:
    int8_io, float_io = analyze_model(INT8_IO), analyze_model(FLOAT_IO)
    assert np.dtype(int8_io.inputs[0].dtype) == np.int8 and np.dtype(float_io.inputs[0].dtype) == np.float32
    extra = dict(float_io.op_counts)
    extra["QUANTIZE"] -= 1
    extra["DEQUANTIZE"] -= 1
    assert {k: v for k, v in extra.items() if v} == int8_io.op_counts


@pytest.mark.parametrize("path", [INT8_IO, FLOAT_IO], ids=lambda p: p.stem)
def test_int8_float_io_case_computes_in_int8(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = analyze_model(path)
    assert info.compute_dtype == "int8" and info.integer_compute and info.weight_dtype == "int8"
    assert main(["inspect", str(path)]) == 0
    assert "compute          int8 " in capsys.readouterr().out


def test_int8_float_io_case_outputs_are_bit_identical() -> None:
    rng = np.random.default_rng(0)
    int8_runner, float_runner = ModelRunner(INT8_IO), ModelRunner(FLOAT_IO)
    raw = rng.integers(-128, 128, size=int8_runner.inputs[0].shape, dtype=np.int8)
    real = int8_runner.inputs[0].dequantize(raw)  # values the float model's QUANTIZE maps back onto `raw`
    (int8_out,) = int8_runner.run_raw([raw])
    (float_out,) = float_runner.run_raw([real])
    assert np.array_equal(int8_runner.outputs[0].dequantize(int8_out), float_out)


@pytest.mark.parametrize("kind", sorted(PROFILES))
def test_int8_float_io_case_same_nominal_inference_time_on_every_profile(kind: str) -> None:
    twin = DeviceTwin(PROFILES[kind], kind)
    int8_s = twin.nominal_stage_s(analyze_model(INT8_IO))[1]
    float_s = twin.nominal_stage_s(analyze_model(FLOAT_IO))[1]
    assert float_s == pytest.approx(int8_s, rel=0.02)
    # At the int8 rate, not the float one (float_slowdown 2x..8x on the compute part).
    info = analyze_model(FLOAT_IO)
    assert float_s == pytest.approx(PROFILES[kind].inference_s(info.macs, info.elementwise_ops, float_model=False))
    assert float_s < PROFILES[kind].inference_s(info.macs, info.elementwise_ops, float_model=True)


@pytest.mark.parametrize("kind", ["imx500", "coral"])
def test_int8_float_io_case_measured_latency_agrees_over_a_pty(kind: str) -> None:
    """Both variants through the twin and the real client: median inference time within 2 %."""
    medians = {}
    with DeviceTwin(PROFILES[kind], kind, seed=3) as twin, \
            DeviceClient(twin.port, name=kind, timeout_s=10) as client:
        for path in (INT8_IO, FLOAT_IO):
            client.load_model(path.read_bytes(), path.stem)
            result = client.run(200)
            medians[path.stem] = float(np.median([t.inference_us for t in result.timings]))
    assert medians["qsegment_float_io"] == pytest.approx(medians["qsegment_int8_io"], rel=0.02)
