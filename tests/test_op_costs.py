"""Each MAC rule and the elementwise figure against a closed-form count, on tiny hand-built .tflite files.

The models are flatbuffers written here with the schema bindings LiteRT ships (no TensorFlow): a graph is
a list of tensors (shape, dtype, constant or not) and operators. The expected counts are computed from
the shapes by the formulas papers use (one MAC = one multiply-accumulate), not read from the analysis.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_edgehil.cli import main
from pytest_edgehil.model.info import analyze_model
from pytest_edgehil.model.runtime import ModelRunner
from pytest_edgehil.sim.device_twin import DeviceTwin
from pytest_edgehil.sim.profile import load_profiles

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

BYTES = {"FLOAT32": 4, "INT8": 1, "INT32": 4}
CASES = Path(__file__).resolve().parent / "data" / "cases"


@dataclass
class Net:
    """A main subgraph under construction: tensors by name, operators in execution order."""

    tensors: list[tuple[str, tuple[int, ...], str, bytes | None]] = field(default_factory=list)
    ops: list[tuple[str, list[str], list[str], Any]] = field(default_factory=list)

    def tensor(self, name: str, shape: tuple[int, ...], dtype: str = "FLOAT32", *, const: bool = False,
               data: bytes | None = None) -> str:
        if const and data is None:
            data = bytes(math.prod(shape) * BYTES[dtype])
        self.tensors.append((name, shape, dtype, data))
        return name

    def op(self, name: str, ins: list[str], outs: list[str], options: Any = None) -> None:
        """`name`: a BuiltinOperator name, or "CUSTOM:<code>" (then `options` is the raw custom options)."""
        self.ops.append((name, ins, outs, options))

    def build(self, inputs: list[str], outputs: list[str]) -> bytes:
        index = {name: i for i, (name, *_rest) in enumerate(self.tensors)}
        model = schema.ModelT()
        model.version = 3
        model.buffers = [schema.BufferT()]
        sub = schema.SubGraphT()
        sub.tensors = []
        for name, shape, dtype, data in self.tensors:
            tensor = schema.TensorT()
            tensor.name, tensor.shape = name, list(shape)
            tensor.type = getattr(schema.TensorType, dtype)
            tensor.buffer = 0
            if data is not None:
                buffer = schema.BufferT()
                buffer.data = list(data)
                model.buffers.append(buffer)
                tensor.buffer = len(model.buffers) - 1
            sub.tensors.append(tensor)
        codes: list[str] = []
        sub.operators = []
        for name, ins, outs, options in self.ops:
            if name not in codes:
                codes.append(name)
            operator = schema.OperatorT()
            operator.opcodeIndex = codes.index(name)
            operator.inputs = [index[t] for t in ins]
            operator.outputs = [index[t] for t in outs]
            if name.startswith("CUSTOM:"):
                operator.customOptions = list(options or b"")
            elif options is not None:
                operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
                operator.builtinOptions = options
            sub.operators.append(operator)
        model.operatorCodes = []
        for name in codes:
            code = schema.OperatorCodeT()
            builtin = schema.BuiltinOperator.CUSTOM if name.startswith("CUSTOM:") else getattr(schema.BuiltinOperator, name)
            code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
            if name.startswith("CUSTOM:"):
                code.customCode = name.split(":", 1)[1]
            model.operatorCodes.append(code)
        sub.inputs, sub.outputs = [index[t] for t in inputs], [index[t] for t in outputs]
        model.subgraphs = [sub]
        builder = flatbuffers.Builder(4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def options(kind: str, **values: Any) -> Any:
    opts = getattr(schema, f"{kind}OptionsT")()
    for key, value in values.items():
        setattr(opts, key, value)
    return opts


def single_op(name: str, ins: list[tuple[str, tuple[int, ...], bool]], out: tuple[int, ...], opts: Any = None,
              dtype: str = "FLOAT32") -> bytes:
    """One operator: `ins` as (name, shape, constant); the non-constant ones are graph inputs. "output_shape"
    (holding `out`) and "axes" are int32 index operands."""
    net = Net()
    for tname, shape, const in ins:
        net.tensor(tname, shape, "INT32" if tname in ("output_shape", "axes") else dtype, const=const,
                   data=struct.pack(f"<{len(out)}i", *out) if tname == "output_shape" else None)
    net.tensor("y", out, dtype)
    net.op(name, [t for t, _s, _c in ins], ["y"], opts)
    return net.build([t for t, _s, const in ins if not const], ["y"])


# --- one MAC rule per op, each on a shape whose paper count is written out ---------------------------

MAC_CASES = {
    # grouped conv: 2 groups, C_in 8 -> filter [C_out, K_h, K_w, C_in/groups]; H_out·W_out·C_out·K_h·K_w·C_in/groups
    "conv2d_grouped": (single_op("CONV_2D", [("x", (1, 8, 8, 8), False), ("w", (16, 3, 3, 4), True),
                                             ("b", (16,), True)], (1, 8, 8, 16), options("Conv2D", padding=0)),
                       8 * 8 * 16 * 3 * 3 * 8 // 2),
    # depthwise, channel multiplier 2, 'valid': H_out·W_out·C·mult·K_h·K_w
    "depthwise_mult2": (single_op("DEPTHWISE_CONV_2D", [("x", (1, 8, 8, 4), False), ("w", (1, 3, 3, 8), True),
                                                        ("b", (8,), True)], (1, 6, 6, 8),
                                  options("DepthwiseConv2D", padding=1, depthMultiplier=2)),
                        6 * 6 * 4 * 2 * 3 * 3),
    # batch 3: batch·in·out
    "fully_connected_batch3": (single_op("FULLY_CONNECTED", [("x", (3, 20), False), ("w", (7, 20), True),
                                                             ("b", (7,), True)], (3, 7)), 3 * 20 * 7),
    # stride-2 transpose conv: per input pixel, H_in·W_in·C_in·K_h·K_w·C_out (filter [C_out, K_h, K_w, C_in])
    "transpose_conv": (single_op("TRANSPOSE_CONV", [("output_shape", (4,), True), ("w", (6, 3, 3, 4), True),
                                                    ("x", (1, 5, 5, 4), False)], (1, 10, 10, 6),
                                 options("TransposeConv", padding=0, strideH=2, strideW=2)),
                       5 * 5 * 4 * 3 * 3 * 6),
    # batched matmul [2, 3, 5] x [2, 5, 4]: batch·M·N·K
    "batch_matmul": (single_op("BATCH_MATMUL", [("a", (2, 3, 5), False), ("b", (2, 5, 4), False)], (2, 3, 4)),
                     2 * 3 * 4 * 5),
    # adj_x: the lhs is [2, K=5, M=3]
    "batch_matmul_adj_x": (single_op("BATCH_MATMUL", [("a", (2, 5, 3), False), ("b", (2, 5, 4), False)],
                                     (2, 3, 4), options("BatchMatMul", adjX=True)), 2 * 3 * 4 * 5),
    # 3-D conv, filter [K_d, K_h, K_w, C_in, C_out]: output elements · K_d·K_h·K_w·C_in
    "conv3d": (single_op("CONV_3D", [("x", (1, 4, 6, 6, 2), False), ("w", (3, 3, 3, 2, 5), True)],
                         (1, 4, 6, 6, 5), options("Conv3D", padding=0)), 4 * 6 * 6 * 5 * 3 * 3 * 3 * 2),
    # MediaPipe's custom transpose conv with bias (selfie segmentation): input 0, OHWI weights 1, bias 2;
    # custom options = TfLiteTransposeConvParams {padding SAME, stride_w 2, stride_h 2}
    "mediapipe_transpose_conv_bias": (
        single_op("CUSTOM:Convolution2DTransposeBias", [("x", (1, 5, 5, 4), False), ("w", (6, 3, 3, 4), True),
                                                        ("b", (6,), True)], (1, 10, 10, 6),
                  struct.pack("<iii", 1, 2, 2)),
        5 * 5 * 4 * 3 * 3 * 6),
}


@pytest.mark.parametrize("case", sorted(MAC_CASES))
def test_mac_rule_matches_the_closed_form_count(case: str) -> None:
    data, want = MAC_CASES[case]
    info = analyze_model(data, name=case)
    assert info.unknown_ops == ()
    assert info.macs == want > 0
    assert info.elementwise_ops == 0  # a MAC op's fused bias/activation is not counted apart
    (op_name,) = info.op_counts
    assert info.macs_by_op == {op_name: want}


def test_transpose_convs_count_per_input_pixel_not_per_output_pixel() -> None:
    """Per input pixel (TFLite's reference kernel, the Keras-layer count): 4x fewer than output·K_h·K_w·C_in
    at stride 2, and the same figure whether the op is the builtin or MediaPipe's custom one."""
    builtin = analyze_model(MAC_CASES["transpose_conv"][0]).macs
    custom = analyze_model(MAC_CASES["mediapipe_transpose_conv_bias"][0]).macs
    assert builtin == custom == 5 * 5 * 4 * 3 * 3 * 6
    assert builtin * 4 == 10 * 10 * 6 * 3 * 3 * 4


def test_mediapipe_transpose_conv_bias_is_a_known_float_compute_op_with_parameters() -> None:
    # A trained bias: one of zeros is what the converter gives an op without one, and is not counted.
    net = Net()
    net.tensor("x", (1, 5, 5, 4))
    net.tensor("w", (6, 3, 3, 4), const=True)
    net.tensor("b", (6,), const=True, data=struct.pack("<6f", *[0.5] * 6))
    net.tensor("y", (1, 10, 10, 6))
    net.op("CUSTOM:Convolution2DTransposeBias", ["x", "w", "b"], ["y"], struct.pack("<iii", 1, 2, 2))
    info = analyze_model(net.build(["x"], ["y"]))
    assert info.op_counts == {"CUSTOM:Convolution2DTransposeBias": 1}
    assert info.compute_dtype == "float32" and info.weight_dtype == "float32"
    assert info.parameters == 6 * 3 * 3 * 4 + 6


def test_hand_built_transpose_conv_is_a_model_litert_accepts() -> None:
    """The builder writes real models: LiteRT loads the transpose conv and computes its declared output."""
    runner = ModelRunner(MAC_CASES["transpose_conv"][0], name="transpose_conv")
    (out,) = runner.run_raw([np.ones((1, 5, 5, 4), dtype=np.float32)])
    assert out.shape == (1, 10, 10, 6) and not out.any()  # zero weights


# --- elementwise work: its own figure, never in MACs ------------------------------------------------

def mixed_net() -> tuple[bytes, int, int]:
    """int8 graph: QUANTIZE -> CONV 3x3 (4->8) -> RELU -> ADD(skip) -> MAX_POOL 2x2 -> RESIZE x2 ->
    CONCATENATION with itself -> RESHAPE -> SOFTMAX -> DEQUANTIZE. Returns (model, MACs, elementwise ops)."""
    h, w, c_in, c = 16, 16, 4, 8
    net = Net()
    net.tensor("x", (1, h, w, c_in))
    net.tensor("xq", (1, h, w, c_in), "INT8")
    net.tensor("wconv", (c, 3, 3, c_in), "INT8", const=True)
    net.tensor("bconv", (c,), "INT32", const=True)
    net.tensor("conv", (1, h, w, c), "INT8")
    net.tensor("relu", (1, h, w, c), "INT8")
    net.tensor("sum", (1, h, w, c), "INT8")
    net.tensor("pool", (1, h // 2, w // 2, c), "INT8")
    net.tensor("size", (2,), "INT32", const=True, data=struct.pack("<2i", h, w))
    net.tensor("up", (1, h, w, c), "INT8")
    net.tensor("cat", (1, h, w, 2 * c), "INT8")
    net.tensor("shape", (2,), "INT32", const=True, data=struct.pack("<2i", h * w, 2 * c))
    net.tensor("flat", (h * w, 2 * c), "INT8")
    net.tensor("prob", (h * w, 2 * c), "INT8")
    net.tensor("y", (h * w, 2 * c))
    net.op("QUANTIZE", ["x"], ["xq"])
    net.op("CONV_2D", ["xq", "wconv", "bconv"], ["conv"], options("Conv2D", padding=0))
    net.op("RELU", ["conv"], ["relu"])
    net.op("ADD", ["relu", "conv"], ["sum"])
    net.op("MAX_POOL_2D", ["sum"], ["pool"], options("Pool2D", filterHeight=2, filterWidth=2, strideH=2, strideW=2))
    net.op("RESIZE_NEAREST_NEIGHBOR", ["pool", "size"], ["up"])
    net.op("CONCATENATION", ["up", "up"], ["cat"], options("Concatenation", axis=3))
    net.op("RESHAPE", ["cat", "shape"], ["flat"])
    net.op("SOFTMAX", ["flat"], ["prob"], options("Softmax", beta=1.0))
    net.op("DEQUANTIZE", ["prob"], ["y"])
    macs = h * w * c * 3 * 3 * c_in
    elementwise = (h * w * c_in  # QUANTIZE, per element
                   + h * w * c + h * w * c  # RELU, ADD
                   + (h // 2) * (w // 2) * c * 2 * 2  # pool: output x window
                   + h * w * c  # resize: output elements
                   + h * w * 2 * c  # concatenation: elements written
                   + 0  # reshape: a view
                   + h * w * 2 * c + h * w * 2 * c)  # SOFTMAX, DEQUANTIZE
    return net.build(["x"], ["y"]), macs, elementwise


def test_elementwise_ops_are_their_own_figure_not_macs() -> None:
    data, macs, elementwise = mixed_net()
    info = analyze_model(data, name="mixed")
    assert info.unknown_ops == ()
    assert info.macs == macs and info.macs_by_op["CONV_2D"] == macs
    assert info.elementwise_ops == elementwise
    assert all(v == 0 for name, v in info.macs_by_op.items() if name != "CONV_2D")
    assert info.elementwise_by_op["CONV_2D"] == 0 and info.elementwise_by_op["RESHAPE"] == 0
    assert info.elementwise_by_op["MAX_POOL_2D"] == 8 * 8 * 8 * 2 * 2
    assert info.elementwise_by_op["CONCATENATION"] == 16 * 16 * 16
    assert info.compute_dtype == "int8"  # float I/O, int8 conv
    data_dict = info.to_dict()
    assert (data_dict["macs"], data_dict["elementwise_ops"]) == (macs, elementwise)


def test_inspect_shows_macs_and_elementwise_ops_on_separate_lines(tmp_path, capsys) -> None:
    data, macs, elementwise = mixed_net()
    path = tmp_path / "mixed.tflite"
    path.write_bytes(data)
    assert main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (mac_line,) = [line for line in lines if line.startswith("MACs/inference")]
    (elem_line,) = [line for line in lines if line.startswith("elementwise ops")]
    assert f"({macs:,})" in mac_line and f"({elementwise:,})" in elem_line
    assert f"({macs + elementwise:,})" not in "\n".join(lines)
    (pool_line,) = [line for line in lines if line.strip().startswith("MAX_POOL_2D")]
    assert "elementwise" in pool_line and "MACs" not in pool_line


# --- the twin's time model ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["imx500", "jetson-nano"])
def test_twin_times_macs_and_elementwise_ops_at_their_own_rates(kind: str) -> None:
    data, macs, elementwise = mixed_net()
    info = analyze_model(data, name="mixed")
    profile = load_profiles()[kind]
    twin = DeviceTwin(profile, kind)
    want_s = profile.inference_overhead_s + macs / profile.int8_macs_per_s + elementwise / profile.elementwise_rate
    assert twin.nominal_stage_s(info)[1] == pytest.approx(want_s, rel=1e-12)
    # Doubling the elementwise cost adds exactly the elementwise term once more.
    slower = dataclasses.replace(profile, elementwise_ops_per_s=profile.elementwise_rate / 2)
    added_s = DeviceTwin(slower, kind).nominal_stage_s(info)[1] - twin.nominal_stage_s(info)[1]
    assert added_s == pytest.approx(elementwise / profile.elementwise_rate, rel=1e-9)


def test_profile_without_elementwise_rate_prices_an_elementwise_op_like_a_mac() -> None:
    profiles = load_profiles()
    imx = profiles["imx500"]
    assert imx.elementwise_ops_per_s is None and imx.elementwise_rate == imx.int8_macs_per_s
    assert imx.inference_s(1000, 500) == pytest.approx(imx.inference_s(1500))
    nano = profiles["jetson-nano"]
    assert nano.elementwise_ops_per_s is not None and nano.elementwise_rate == nano.elementwise_ops_per_s


def test_elementwise_ops_of_a_dynamic_model_wait_for_a_shape_like_its_macs() -> None:
    from pytest_edgehil.errors import ModelError

    dynamic = analyze_model(CASES / "dynamic-shape" / "dyn_conv_int8.tflite")
    with pytest.raises(ModelError, match="elementwise ops depends on the input size.*--input-shape"):
        _ = dynamic.elementwise_ops
    assert dynamic.to_dict()["elementwise_ops"] is None and dynamic.to_dict()["elementwise_by_op"] is None
    resolved = analyze_model(CASES / "dynamic-shape" / "dyn_conv_int8.tflite", input_shapes=[(1, 32, 32, 8)])
    assert resolved.to_dict()["elementwise_ops"] == resolved.elementwise_ops == sum(resolved.elementwise_by_op.values())


def _split() -> bytes:
    net = Net()
    net.tensor("axis", (), "INT32", const=True, data=struct.pack("<i", 3))
    net.tensor("x", (1, 4, 4, 6))
    net.tensor("a", (1, 4, 4, 2))
    net.tensor("b", (1, 4, 4, 2))
    net.tensor("c", (1, 4, 4, 2))
    net.op("SPLIT", ["axis", "x"], ["a", "b", "c"], options("Split", numSplits=3))
    return net.build(["x"], ["a", "b", "c"])


ELEMENTWISE_CASES = {
    # MediaPipe's pooling with indices (hair segmentation): every input element read once (2x2, stride 2)
    "mediapipe_max_pool_argmax": (single_op("CUSTOM:MaxPoolingWithArgmax2D", [("x", (1, 8, 8, 4), False)],
                                            (1, 4, 4, 4)), 8 * 8 * 4),
    # ... and its unpooling: every output element written
    "mediapipe_max_unpooling": (single_op("CUSTOM:MaxUnpooling2D", [("x", (1, 4, 4, 4), False),
                                                                    ("i", (1, 4, 4, 4), False)], (1, 8, 8, 4)),
                                8 * 8 * 4),
    # three inputs summed: two adds per output element
    "add_n": (single_op("ADD_N", [("a", (1, 5, 5, 3), False), ("b", (1, 5, 5, 3), False),
                                  ("c", (1, 5, 5, 3), False)], (1, 5, 5, 3)), 2 * 5 * 5 * 3),
    # a reduction reads its whole input
    "mean": (single_op("MEAN", [("x", (1, 6, 6, 8), False), ("axes", (2,), True)], (1, 1, 1, 8),
                       options("Reducer", keepDims=True)), 6 * 6 * 8),
    # a copy with several outputs writes all of them
    "split": (_split(), 4 * 4 * 6),
}


@pytest.mark.parametrize("case", sorted(ELEMENTWISE_CASES))
def test_elementwise_rule_matches_the_closed_form_count(case: str) -> None:
    data, want = ELEMENTWISE_CASES[case]
    info = analyze_model(data, name=case)
    assert info.unknown_ops == ()
    assert info.elementwise_ops == want > 0 and info.macs == 0
