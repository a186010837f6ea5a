"""Static analysis against closed-form MACs, parameters and peak activation memory of tiny built models.

The models in tests/data are written by scripts/build_test_models.py (TensorFlow, int8 full-integer
quantization); the expected numbers below are computed from the layer shapes, not read from a tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.info import analyze_model

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
MODELS = REPO / "fixtures" / "models"


@dataclass(frozen=True)
class Expected:
    macs: int
    parameters: int
    peak_activation_bytes: int
    op_counts: dict[str, int]
    weight_dtype: str
    elementwise_ops: int = 0  # elements touched by the non-MAC ops (never part of `macs`)


def skip_int8() -> Expected:
    # x[16,16,4] -> A = conv1x1 (8 ch) -> B = conv3x3 (16 ch) -> C = conv3x3 (8 ch) -> out = A + C, all int8.
    x, a, b, c, out = 16 * 16 * 4, 16 * 16 * 8, 16 * 16 * 16, 16 * 16 * 8, 16 * 16 * 8
    # Live sets at each op: x dies after conv A; A lives until the ADD; B dies after conv C.
    peak = max(x + a, a + b, a + b + c, a + c + out)
    return Expected(
        macs=16 * 16 * 8 * 1 * 1 * 4 + 16 * 16 * 16 * 3 * 3 * 8 + 16 * 16 * 8 * 3 * 3 * 16,
        parameters=(8 * 4 + 8) + (16 * 9 * 8 + 16) + (8 * 9 * 16 + 8),
        peak_activation_bytes=peak, op_counts={"CONV_2D": 3, "ADD": 1}, weight_dtype="int8",
        elementwise_ops=out)  # the ADD: one op per output element


def mixed_float_io() -> Expected:
    # float x[8,8,4] -> QUANTIZE -> TRANSPOSE_CONV 3x3 stride 2 (6 ch) -> avgpool 2x2 -> maxpool 2x2 -> DEQUANTIZE
    x_f32, x_q, up, avg, mx, out_f32 = 8 * 8 * 4 * 4, 8 * 8 * 4, 16 * 16 * 6, 8 * 8 * 6, 4 * 4 * 6, 4 * 4 * 6 * 4
    return Expected(
        macs=8 * 8 * 4 * 3 * 3 * 6,  # the transpose conv, per input pixel: H_in·W_in·C_in·K_h·K_w·C_out
        parameters=6 * 3 * 3 * 4 + 6,
        peak_activation_bytes=max(x_f32 + x_q, x_q + up, up + avg, avg + mx, mx + out_f32),
        op_counts={"QUANTIZE": 1, "TRANSPOSE_CONV": 1, "AVERAGE_POOL_2D": 1, "MAX_POOL_2D": 1, "DEQUANTIZE": 1},
        weight_dtype="int8",
        # QUANTIZE per element, each pool output x its 2x2 window, DEQUANTIZE per element
        elementwise_ops=8 * 8 * 4 + 8 * 8 * 6 * 2 * 2 + 4 * 4 * 6 * 2 * 2 + 4 * 4 * 6)


EXPECTED = {
    "conv_int8": Expected(macs=32 * 32 * 16 * 3 * 3 * 8, parameters=16 * 3 * 3 * 8 + 16,
                          peak_activation_bytes=32 * 32 * 8 + 32 * 32 * 16, op_counts={"CONV_2D": 1},
                          weight_dtype="int8"),
    "depthwise_int8": Expected(macs=16 * 16 * 8 * 3 * 3, parameters=3 * 3 * 8 + 8,
                               peak_activation_bytes=2 * 16 * 16 * 8, op_counts={"DEPTHWISE_CONV_2D": 1},
                               weight_dtype="int8"),
    "dense_int8": Expected(macs=1 * 64 * 10, parameters=64 * 10 + 10, peak_activation_bytes=64 + 10,
                           op_counts={"FULLY_CONNECTED": 1}, weight_dtype="int8"),
    "dense_float": Expected(macs=64 * 10, parameters=64 * 10 + 10, peak_activation_bytes=(64 + 10) * 4,
                            op_counts={"FULLY_CONNECTED": 1}, weight_dtype="float32"),
    # float16 weights reach the FC through DEQUANTIZE ops (no MACs) whose float32 copies of the weights and
    # bias TFLM's planner puts in the arena: live at the FC with x and y (DQ w, DQ b, FC in the file's order).
    "dense_fp16": Expected(macs=64 * 10, parameters=64 * 10 + 10, peak_activation_bytes=(64 + 64 * 10 + 10 + 10) * 4,
                           op_counts={"FULLY_CONNECTED": 1, "DEQUANTIZE": 2}, weight_dtype="float16"),
    "skip_int8": skip_int8(),
    "mixed_float_io": mixed_float_io(),
}


def test_every_committed_test_model_has_expectations() -> None:
    assert sorted(p.stem for p in DATA.glob("*.tflite")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_closed_form_costs(name: str) -> None:
    want = EXPECTED[name]
    info = analyze_model(DATA / f"{name}.tflite")
    assert info.name == name
    assert info.macs == want.macs
    assert info.elementwise_ops == want.elementwise_ops
    assert info.parameters == want.parameters
    assert info.peak_activation_bytes == want.peak_activation_bytes
    assert info.op_counts == want.op_counts
    assert info.weight_dtype == want.weight_dtype
    assert info.unknown_ops == ()
    assert sum(info.macs_by_op.values()) == info.macs
    assert sum(info.elementwise_by_op.values()) == info.elementwise_ops
    assert set(info.macs_by_op) == set(info.elementwise_by_op) == set(info.op_counts)


def test_lifetimes_matter_for_the_skip_graph() -> None:
    """The peak is neither the sum of all activations nor the largest single op's inputs+outputs."""
    info = analyze_model(DATA / "skip_int8.tflite")
    all_activations = 16 * 16 * (4 + 8 + 16 + 8 + 8)
    largest_single_op = 16 * 16 * (8 + 16)  # conv B or conv C: input + output
    assert largest_single_op < info.peak_activation_bytes < all_activations


def test_io_specs_and_identity() -> None:
    path = DATA / "conv_int8.tflite"
    data = path.read_bytes()
    info = analyze_model(path)
    assert info.size_bytes == len(data)
    assert info.sha256 == __import__("hashlib").sha256(data).hexdigest()
    (spec_in,), (spec_out,) = info.inputs, info.outputs
    assert spec_in.shape == (1, 32, 32, 8) and spec_out.shape == (1, 32, 32, 16)
    assert spec_in.dtype == np.int8 and spec_in.quantized and spec_in.scale > 0
    float_in = analyze_model(DATA / "mixed_float_io.tflite").inputs[0]
    assert float_in.dtype == np.float32 and not float_in.quantized


def test_bytes_and_path_agree_and_names_default_sensibly() -> None:
    path = DATA / "dense_int8.tflite"
    from_path, from_bytes = analyze_model(path), analyze_model(path.read_bytes())
    assert from_bytes.name == f"model-{from_path.sha256[:12]}"
    assert analyze_model(path.read_bytes(), name="mine").name == "mine"
    assert from_bytes.to_dict() | {"name": "x"} == from_path.to_dict() | {"name": "x"}


def test_cached_result_cannot_be_corrupted_by_a_caller() -> None:
    path = DATA / "depthwise_int8.tflite"
    first = analyze_model(path)
    first.op_counts["DEPTHWISE_CONV_2D"] = 99
    first.macs_by_op.clear()
    again = analyze_model(path)
    assert again.op_counts == {"DEPTHWISE_CONV_2D": 1} and again.macs_by_op


def test_to_dict_is_json_ready() -> None:
    info = analyze_model(DATA / "skip_int8.tflite")
    data = json.loads(json.dumps(info.to_dict()))
    assert data["macs"] == info.macs and data["inputs"][0]["dtype"] == "int8"
    assert data["elementwise_ops"] == info.elementwise_ops == 16 * 16 * 8  # the ADD, not in "macs"
    assert data["elementwise_by_op"] == {"ADD": 16 * 16 * 8, "CONV_2D": 0}
    assert data["inputs"][0]["shape"] == [1, 16, 16, 4]


def _with_custom_op(data: bytes, custom_name: str) -> bytes:
    """The model with its first operator's code turned into a custom op the analysis cannot know."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    code = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_name
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_unknown_op_counts_zero_and_is_listed() -> None:
    info = analyze_model(_with_custom_op((DATA / "conv_int8.tflite").read_bytes(), "MysteryOp"))
    assert info.unknown_ops == ("CUSTOM:MysteryOp",)
    assert info.op_counts == {"CUSTOM:MysteryOp": 1}
    assert info.macs == 0 and info.macs_by_op == {} and info.elementwise_ops == 0
    # Its quantized constants are still learned parameters; its tensors still occupy memory.
    assert info.parameters == 16 * 3 * 3 * 8 + 16
    assert info.peak_activation_bytes == 32 * 32 * (8 + 16)


def test_non_tflite_file_is_a_model_error_naming_it(tmp_path: Path) -> None:
    text = tmp_path / "notes.tflite"
    text.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelError, match=r"notes\.tflite is not a TFLite model"):
        analyze_model(text)
    with pytest.raises(ModelError, match="missing.tflite.*check the path"):
        analyze_model(tmp_path / "missing.tflite")


def test_truncated_flatbuffer_is_a_model_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((DATA / "skip_int8.tflite").read_bytes()[:200])
    with pytest.raises(ModelError, match=r"cut\.tflite"):
        analyze_model(cut)


# --- agreement with the shipped reference models' cards (computed from Keras layers) ------------------

CARDS = sorted(p for p in MODELS.rglob("*.json") if p.with_suffix(".tflite").is_file()) if MODELS.is_dir() else []


@pytest.mark.skipif(not CARDS, reason="no reference models with cards in fixtures/models yet")
@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: str(p.relative_to(MODELS).with_suffix("")))
def test_macs_agree_with_model_card(card_path: Path) -> None:
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if "macs" not in card:
        pytest.skip(f"{card_path.name} has no 'macs' field")
    info = analyze_model(card_path.with_suffix(".tflite"))
    # Both count multiply-accumulates only (pooling, activations, copies are elementwise ops): exactly equal.
    assert info.macs == card["macs"], info.macs_by_op


def test_dangling_tensor_index_is_a_model_error_not_a_crash() -> None:
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf((DATA / "dense_int8.tflite").read_bytes(), 0)
    model.subgraphs[0].operators[0].outputs = [999]  # no such tensor
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(ModelError, match="malformed"):
        analyze_model(bytes(builder.Output()), name="dangling")
