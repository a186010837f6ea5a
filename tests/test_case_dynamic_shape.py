"""Case shared/cases/dynamic-shape: a one-conv int8 model whose input leaves height and width open.

The file stores `shape` [1, 1, 1, 8] and `shape_signature` [1, -1, -1, 8] (the case README says 3 channels;
the file has 8, which is what the analysis and LiteRT both read). Its 1x1 placeholder figures must never
pass for the model's cost; at a concrete size the analysis, `edgehil inspect` and the device twin all use
the shape actually fed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.errors import DeviceRejected, ModelError
from pytest_edgehil.link.client import DeviceClient
from pytest_edgehil.link.messages import ErrorCode
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

CASE = Path(__file__).resolve().parent / "data" / "cases" / "dynamic-shape"
MODEL = CASE / "dyn_conv_int8.tflite"
# The right value stated by shared/cases/dynamic-shape's README: "At 32x32 the same conv has 1,179,648 MACs".
README_MACS_AT_32 = 1_179_648
PROFILES = load_profiles()


def conv_macs_from_the_file(height: int, width: int) -> int:
    """Closed form from the conv's own filter and options (stride 1, SAME padding): H*W*C_out*K_h*K_w*C_in."""
    model = schema.ModelT.InitFromPackedBuf(MODEL.read_bytes(), 0)
    sub = model.subgraphs[0]
    (op,) = sub.operators
    assert (op.builtinOptions.strideH, op.builtinOptions.strideW, op.builtinOptions.padding) == (1, 1, 0)
    c_out, k_h, k_w, c_in = (int(d) for d in sub.tensors[op.inputs[1]].shape)
    return height * width * c_out * k_h * k_w * c_in


def test_dynamic_shape_case_dims_are_named_and_placeholder_cost_is_refused() -> None:
    info = analyze_model(MODEL)
    assert not info.resolved
    assert info.dynamic_inputs == {"serving_default_keras_tensor:0": (1, -1, -1, 8)}
    assert "open dims 1, 2" in info.dynamic_text()
    for figure in ("macs", "macs_by_op", "peak_activation_bytes"):
        with pytest.raises(ModelError, match=r"open dims 1, 2.*--input-shape"):
            getattr(info, figure)
    data = info.to_dict()
    assert data["macs"] is None and data["peak_activation_bytes"] is None
    assert data["dynamic_inputs"] == {"serving_default_keras_tensor:0": [1, -1, -1, 8]}
    # What does not depend on the size is still reported.
    assert info.parameters == 16 * 3 * 3 * 8 + 16 and info.compute_dtype == "int8"


def test_dynamic_shape_case_macs_at_32x32_match_the_case_readme() -> None:
    info = analyze_model(MODEL, input_shapes=[(1, 32, 32, 8)])
    assert info.resolved
    assert info.macs == conv_macs_from_the_file(32, 32) == README_MACS_AT_32
    assert info.peak_activation_bytes == 32 * 32 * (8 + 16)  # int8 input and output both live at the conv
    assert info.inputs[0].shape == (1, 32, 32, 8) and info.outputs[0].shape == (1, 32, 32, 16)
    # Another size scales with H*W for this stride-1 SAME conv: the shapes come from LiteRT, not a guess.
    assert analyze_model(MODEL, input_shapes=[(1, 20, 48, 8)]).macs == conv_macs_from_the_file(20, 48)


@pytest.mark.parametrize("shape", [(1, 32, 32, 3), (1, 32, 32), (2, 32, 32, 8), (1, 0, 32, 8)])
def test_dynamic_shape_case_refuses_a_shape_its_signature_does_not_allow(shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError, match=r"does not fit its signature \[1, -1, -1, 8\]"):
        analyze_model(MODEL, input_shapes=[shape])


def test_dynamic_shape_case_inspect_names_the_dims_and_prints_no_1x1_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(MODEL)]) == 0
    out = capsys.readouterr().out
    assert "open dims 1, 2" in out and "[1, -1, -1, 8]" in out
    assert "give --input-shape 1,H,W,8" in out
    placeholder = analyze_model(MODEL, input_shapes=[(1, 1, 1, 8)]).macs  # what the 1x1 file shape gives
    assert f"{placeholder:,}" not in out and "1.15 k" not in out


def test_dynamic_shape_case_inspect_with_input_shape_reports_the_readme_macs(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(MODEL), "--input-shape", "1,32,32,8"]) == 0
    out = capsys.readouterr().out
    assert f"({README_MACS_AT_32:,})" in out and "[1, 32, 32, 16]" in out
    assert main(["inspect", str(MODEL), "--input-shape", "1,32,32,3"]) == 2
    assert "does not fit its signature" in capsys.readouterr().err


@pytest.fixture
def twin_client(request):
    twin = DeviceTwin(PROFILES[request.param], request.param, seed=1)
    twin.start()
    client = DeviceClient(twin.port, timeout_s=10, name=request.param)
    client.open()
    yield twin, client
    client.close()
    twin.close()


@pytest.mark.parametrize("twin_client", ["imx500"], indirect=True)
def test_dynamic_shape_case_twin_times_the_shape_fed(twin_client) -> None:
    twin, client = twin_client
    client.load_model(MODEL.read_bytes(), "dyn_conv_int8")
    with pytest.raises(DeviceRejected, match="dynamic input dimensions.*SET_INPUT") as refused:
        client.run(1)
    assert refused.value.code == ErrorCode.BAD_INPUT
    rng = np.random.default_rng(0)
    profile = PROFILES["imx500"]
    for height, width in [(32, 32), (64, 16)]:
        x = rng.integers(-128, 128, size=(1, height, width, 8), dtype=np.int8)
        client.set_input(0, x)
        result = client.run(3)
        runner = ModelRunner(MODEL)
        runner.resize_inputs([x.shape])
        (expected,) = runner.run_raw([x])
        assert result.outputs[0].shape == (1, height, width, 16)
        assert np.array_equal(result.outputs[0], expected)
        info = twin.active_model_info
        assert info is not None and info.macs == conv_macs_from_the_file(height, width)
        assert twin.nominal_stage_s(info)[1] == pytest.approx(profile.inference_s(info.macs))
    assert analyze_model(MODEL, input_shapes=[(1, 32, 32, 8)]).macs == README_MACS_AT_32


@pytest.mark.parametrize("twin_client", ["cortex-m4"], indirect=True)
def test_dynamic_shape_case_twin_checks_ram_at_the_fed_shape(twin_client) -> None:
    _, client = twin_client
    client.load_model(MODEL.read_bytes(), "dyn_conv_int8")  # 1x1 placeholders fit anything: not refused here
    ram = PROFILES["cortex-m4"].ram_bytes
    side = math.isqrt(ram // (8 + 16)) + 1  # smallest square input whose activations exceed the RAM
    client.set_input(0, np.zeros((1, side - 2, side - 2, 8), np.int8))
    assert client.run(1).outputs[0].shape == (1, side - 2, side - 2, 16)
    with pytest.raises(DeviceRejected, match=r"bytes of activation memory.*RAM") as refused:
        client.set_input(0, np.zeros((1, side, side, 8), np.int8))
    assert refused.value.code == ErrorCode.MODEL_TOO_LARGE


def test_inspect_takes_the_size_from_the_card_beside_the_file(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The suites measure a dynamic model at its card's `input.shape`; `inspect` on the same file says the
    # same figures, not "give --input-shape" (a fresh-user review). An explicit --input-shape still wins.
    model = tmp_path / "dyn.tflite"
    model.write_bytes(MODEL.read_bytes())
    model.with_suffix(".json").write_text('{"input": {"shape": [1, 32, 32, 8]}}')
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    assert "figures below at input [1, 32, 32, 8]" in out and "1,179,648" in out
    assert main(["inspect", str(model), "--input-shape", "1,16,16,8"]) == 0
    assert f"{1_179_648 // 4:,}" in capsys.readouterr().out
