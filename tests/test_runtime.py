"""ModelRunner and TensorSpec against real LiteRT and against numpy references built from the model's own weights."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from pytest_edgehil.errors import ModelError
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner, TensorSpec, _load_interpreter_class

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

DATA = Path(__file__).resolve().parent / "data"
TEST_MODELS = sorted(DATA.glob("*.tflite"))


def constants(path: Path) -> dict[str, np.ndarray]:
    """Every constant tensor of the main subgraph, dequantized to float64 (per-channel aware), by name."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    result = {}
    for tensor in model.subgraphs[0].tensors:
        data = model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            continue
        raw = np.frombuffer(bytes(data), dtype=types[tensor.type].lower()).reshape(tuple(tensor.shape))
        values = raw.astype(np.float64)
        q = tensor.quantization
        if q is not None and q.scale is not None and len(q.scale):
            axis_shape = [1] * raw.ndim
            if len(q.scale) > 1:
                axis_shape[q.quantizedDimension] = len(q.scale)
            scale = np.asarray(q.scale, np.float64).reshape(axis_shape)
            zero = np.asarray(q.zeroPoint, np.float64).reshape(axis_shape)
            values = (values - zero) * scale
        result[tensor.name.decode()] = values
    return result


def weight_and_bias(path: Path, weight_rank: int) -> tuple[np.ndarray, np.ndarray]:
    found = constants(path)
    weights = [v for v in found.values() if v.ndim == weight_rank]
    biases = [v for v in found.values() if v.ndim == 1]
    assert len(weights) == 1 and len(biases) == 1, sorted(found)
    return weights[0], biases[0]


def output_range(spec: TensorSpec) -> tuple[float, float]:
    info = np.iinfo(spec.dtype)
    return spec.scale * (info.min - spec.zero_point), spec.scale * (info.max - spec.zero_point)


# --- TensorSpec ---------------------------------------------------------------------------------------

INT8_SPEC = TensorSpec("x", (4,), np.dtype(np.int8), scale=0.05, zero_point=-3)


def test_quantize_round_trip_is_within_half_a_step() -> None:
    values = np.linspace(-6.0, 6.0, 241, dtype=np.float32)
    raw = INT8_SPEC.quantize(values)
    assert raw.dtype == np.int8
    assert np.max(np.abs(INT8_SPEC.dequantize(raw) - values)) <= 0.05 / 2 + 1e-6


def test_quantize_saturates_to_the_dtype_range_instead_of_wrapping() -> None:
    raw = INT8_SPEC.quantize(np.array([1e6, -1e6, np.inf, -np.inf], np.float32))
    assert raw.tolist() == [127, -128, 127, -128]


def test_quantize_rejects_nan_naming_the_tensor() -> None:
    with pytest.raises(ModelError, match="'x'.*NaN"):
        INT8_SPEC.quantize(np.array([0.0, np.nan]))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32])
def test_dequantize_gives_the_correctly_rounded_product_for_every_raw_value(dtype) -> None:
    info = np.iinfo(dtype)
    raw = np.arange(max(info.min, -70000), min(info.max, 70000) + 1).astype(dtype)
    rng = np.random.default_rng(11)
    for scale in [*(10.0 ** rng.uniform(-44, 3, 40)), 1.0, 0.05, 1 / 255]:  # subnormal results included
        zero_point = int(rng.integers(max(info.min, -70000), min(info.max, 70000) + 1))
        spec = TensorSpec("y", raw.shape, np.dtype(dtype), scale=float(np.float32(scale)), zero_point=zero_point)
        # float64 holds (raw - zero_point) * scale exactly here; float32 then rounds it once.
        exact = (raw.astype(np.float64) - zero_point) * np.float64(np.float32(scale))
        assert spec.dequantize(raw).tobytes() == exact.astype(np.float32).tobytes()


def test_unquantized_spec_passes_values_through() -> None:
    spec = TensorSpec("f", (3,), np.dtype(np.float32))
    values = np.array([0.1, -2.5, 3.25], np.float32)
    assert not spec.quantized
    np.testing.assert_array_equal(spec.quantize(values), values)
    np.testing.assert_array_equal(spec.dequantize(values), values)


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning")
def test_quantize_matches_litert_quantize_kernel_bit_for_bit() -> None:
    """The model's own QUANTIZE op (float input -> int8) gives the raw values TensorSpec.quantize gives,
    including inputs exactly on half steps, where rounding rules differ."""
    from ai_edge_litert.interpreter import Interpreter

    path = DATA / "mixed_float_io.tflite"
    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    quantized = next(d for d in interpreter.get_tensor_details() if d["name"] == "tfl.quantize")
    scale, zero_point = quantized["quantization"]
    spec = TensorSpec("q", tuple(quantized["shape"]), np.dtype(quantized["dtype"]), scale, zero_point)
    steps = np.arange(-140, 116, dtype=np.float32).reshape(spec.shape)  # beyond both ends of int8
    rng = np.random.default_rng(7)
    for x in ((steps + 0.5) * np.float32(scale), rng.uniform(-1.2, 1.2, spec.shape).astype(np.float32)):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        np.testing.assert_array_equal(spec.quantize(x), interpreter.get_tensor(quantized["index"]))


# --- ModelRunner --------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", TEST_MODELS, ids=lambda p: p.stem)
def test_runner_specs_agree_with_static_analysis(path: Path) -> None:
    runner, info = ModelRunner(path), analyze_model(path)
    assert runner.inputs == info.inputs
    assert runner.outputs == info.outputs


def test_float_dense_matches_numpy_matmul_with_the_models_weights() -> None:
    path = DATA / "dense_float.tflite"
    weights, bias = weight_and_bias(path, 2)
    runner = ModelRunner(path)
    x = np.random.default_rng(1).normal(size=(1, 64)).astype(np.float32)
    (got,) = runner.run_raw([x])
    np.testing.assert_allclose(got, x @ weights.T + bias, rtol=1e-4, atol=1e-4)
    (via_run,) = runner.run([x])
    np.testing.assert_array_equal(via_run, got)


def test_int8_dense_run_matches_float_reference_within_one_output_step() -> None:
    path = DATA / "dense_int8.tflite"
    weights, bias = weight_and_bias(path, 2)
    runner = ModelRunner(path)
    spec_in, spec_out = runner.inputs[0], runner.outputs[0]
    x = np.random.default_rng(2).uniform(-1, 1, spec_in.shape).astype(np.float32)
    expected = np.clip(spec_in.dequantize(spec_in.quantize(x)) @ weights.T + bias, *output_range(spec_out))
    (got,) = runner.run([x])
    assert got.dtype == np.float32
    assert np.max(np.abs(got - expected)) <= 1.01 * spec_out.scale


def test_int8_conv_run_matches_numpy_convolution() -> None:
    path = DATA / "conv_int8.tflite"
    weights, bias = weight_and_bias(path, 4)  # [C_out, K_h, K_w, C_in]
    runner = ModelRunner(path)
    spec_in, spec_out = runner.inputs[0], runner.outputs[0]
    x = np.random.default_rng(3).uniform(-1, 1, spec_in.shape).astype(np.float32)
    x_seen = spec_in.dequantize(spec_in.quantize(x))[0]
    windows = sliding_window_view(np.pad(x_seen, ((1, 1), (1, 1), (0, 0))), (3, 3), axis=(0, 1))
    expected = np.einsum("hwcij,oijc->hwo", windows, weights) + bias
    expected = np.clip(expected, *output_range(spec_out))
    (got,) = runner.run([x])
    assert got.shape == (1, 32, 32, 16)
    assert np.max(np.abs(got[0] - expected)) <= 1.01 * spec_out.scale


def test_runner_is_reusable_and_deterministic() -> None:
    runner = ModelRunner(DATA / "skip_int8.tflite")
    spec = runner.inputs[0]
    rng = np.random.default_rng(4)
    inputs = [rng.integers(-128, 128, spec.shape).astype(np.int8) for _ in range(20)]
    first = [runner.run_raw([x])[0] for x in inputs]
    second = [runner.run_raw([x])[0] for x in reversed(inputs)][::-1]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(first[0], other) for other in first[1:])  # outputs depend on inputs


def test_sharing_a_runner_between_threads_gives_sequential_results() -> None:
    runner = ModelRunner(DATA / "conv_int8.tflite")
    spec = runner.inputs[0]
    rng = np.random.default_rng(5)
    inputs = [rng.integers(-128, 128, spec.shape).astype(np.int8) for _ in range(16)]
    expected = [runner.run_raw([x])[0] for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(indices: range) -> None:
        for _ in range(5):
            for i in indices:
                results[i] = runner.run_raw([inputs[i]])[0]

    threads = [threading.Thread(target=work, args=(range(k, 16, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(results[i], want)


def test_wrong_dtype_names_model_tensor_and_both_types() -> None:
    runner = ModelRunner(DATA / "conv_int8.tflite")
    bad = np.zeros(runner.inputs[0].shape, np.float32)
    with pytest.raises(ModelError) as excinfo:
        runner.run_raw([bad])
    message = str(excinfo.value)
    assert "conv_int8.tflite" in message and runner.inputs[0].name in message
    assert "int8[1, 32, 32, 8]" in message and "float32[1, 32, 32, 8]" in message


def test_wrong_shape_and_wrong_count_are_model_errors() -> None:
    runner = ModelRunner((DATA / "dense_float.tflite").read_bytes())
    with pytest.raises(ModelError, match=r"expected shape \[1, 64\], got \[64\]"):
        runner.run([np.zeros(64, np.float32)])
    with pytest.raises(ModelError, match="takes 1 input tensor"):
        runner.run_raw([np.zeros((1, 64), np.float32)] * 2)


def test_corrupt_file_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((DATA / "conv_int8.tflite").read_bytes()[:300])
    with pytest.raises(ModelError, match="truncated.tflite.*check"):
        ModelRunner(truncated)
    with pytest.raises(ModelError, match="missing.tflite"):
        ModelRunner(tmp_path / "missing.tflite")


def test_bad_thread_count_is_rejected() -> None:
    with pytest.raises(ModelError, match="num_threads"):
        ModelRunner(DATA / "dense_float.tflite", num_threads=0)


def test_no_interpreter_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes that import fail, as if the package were not installed.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    with pytest.raises(ModelError, match="ai-edge-litert"):
        _load_interpreter_class()


DYNAMIC = DATA / "cases" / "dynamic-shape" / "dyn_conv_int8.tflite"  # shared/cases/dynamic-shape


def test_dynamic_model_resizes_to_the_fed_shape_and_matches_the_static_conv() -> None:
    runner = ModelRunner(DYNAMIC)
    assert runner.dynamic and runner.input_signatures == ((1, -1, -1, 8),)
    assert not ModelRunner(DATA / "conv_int8.tflite").dynamic
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 12, 20, 8), dtype=np.int8)
    with pytest.raises(ModelError, match=r"expected int8\[1, 1, 1, 8\]"):
        runner.run_raw([x])  # not resized yet: the placeholder shape is what LiteRT holds
    runner.resize_inputs([x.shape])
    assert runner.inputs[0].shape == (1, 12, 20, 8) and runner.outputs[0].shape == (1, 12, 20, 16)
    (out,) = runner.run_raw([x])
    assert out.shape == (1, 12, 20, 16)
    assert runner.tensor_shapes()[0] == (1, 12, 20, 8)


@pytest.mark.parametrize("shape", [(1, 12, 20, 3), (1, 12, 20), (3, 12, 20, 8)])
def test_resize_refuses_shapes_outside_the_signature_naming_it(shape) -> None:
    runner = ModelRunner(DYNAMIC)
    with pytest.raises(ModelError, match=r"does not fit its signature \[1, -1, -1, 8\]"):
        runner.resize_inputs([shape])
    assert runner.inputs[0].shape == (1, 1, 1, 8)  # unchanged
