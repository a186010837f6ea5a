"""Per-operator rules of the static analysis: an op's MACs, its elementwise work, and its compute dtype.

Two separate figures, never added together:

* **MACs** — multiply-accumulates of the ops that multiply activations with weights (or with another
  activation), counted as papers count them: one MAC = one multiply-accumulate, the figure MobileNet
  (Howard et al. 2017, "mult-adds": D_K·D_K·M·N·D_F·D_F for a conv) and the MLPerf Tiny / TF profiler
  model cards report. Bias adds and fused activations inside these ops are not counted.
* **Elementwise ops** — elements touched by everything else that computes or moves data per inference
  (activations, ADD/MUL/SUB, pooling, resizes, softmax, QUANTIZE/DEQUANTIZE, concatenation and copies).
  They are not MACs: an accelerator's MAC array does not run them, and a paper's MAC figure leaves them
  out. A twin prices them with its own per-element cost (`DeviceProfile.elementwise_ops_per_s`).

MACs (per inference, batch included):
  CONV_2D            H_out·W_out·C_out·K_h·K_w·C_in/groups   (filter [C_out, K_h, K_w, C_in/groups])
  CONV_3D            output elements · K_d·K_h·K_w·C_in       (filter [K_d, K_h, K_w, C_in, C_out])
  DEPTHWISE_CONV_2D  H_out·W_out·C·mult·K_h·K_w               (filter [1, K_h, K_w, C·mult])
  FULLY_CONNECTED    batch·in·out                             (weights [out, in])
  TRANSPOSE_CONV     H_in·W_in·C_in·K_h·K_w·C_out             (per input pixel: each input element is
                     multiplied by every filter tap of every output channel — the loop of TFLite's
                     reference kernel `reference_ops::TransposeConv`, and the Keras-layer count of
                     `scripts/build_models.py`; taps that fall outside the output are still counted)
  CONV_3D_TRANSPOSE  input elements · K_d·K_h·K_w·C_out
  BATCH_MATMUL       output elements · K (the contracted dimension; adj_x honoured)
  CUSTOM:Convolution2DTransposeBias  (MediaPipe's transpose conv with bias, used by its selfie and hair
                     segmentation models: data input 0, OHWI weights [C_out, K_h, K_w, C_in] at 1, bias
                     at 2, per `mediapipe/util/tflite/operations/transpose_conv_bias.cc`)
                     H_in·W_in·C_in·K_h·K_w·C_out, as TRANSPOSE_CONV
The transpose convolutions are counted from the element counts alone (input elements × filter elements
/ C_in), so the count does not depend on which axis of the filter holds which dimension.

Elementwise ops (elements touched per inference):
  arithmetic, activations, comparisons, QUANTIZE, DEQUANTIZE, CAST, SOFTMAX, RESIZE_*   output elements
  ADD_N              output elements · (inputs - 1)
  pooling            output elements · window (K_h·K_w); MediaPipe's MaxPoolingWithArgmax2D: input
                     elements (its window is in opaque custom options; equal for its 2×2/2 use)
  reductions         input elements (MEAN, SUM, REDUCE_MAX, ARG_MAX, ...)
  copies             elements written (CONCATENATION, PAD, TRANSPOSE, TILE, SLICE, GATHER, SPLIT, ...,
                     DENSIFY, MediaPipe's MaxUnpooling2D)
  views              0 (RESHAPE, SQUEEZE, EXPAND_DIMS, SHAPE: no data moves) and resource-variable
                     plumbing
DEQUANTIZE and DENSIFY of constant weights count 0 in both figures (the interpreter expands them once, not
per inference; see `info.py`). Any other op is unknown: `op_cost` returns None and the analysis lists it.

The compute dtype of a MAC op is the dtype of the activation it multiplies with its weights: the TFLite
converter keeps float32 I/O around an int8 graph (QUANTIZE in front, DEQUANTIZE behind), so a model's
input dtype does not say what its convolutions compute in.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pytest_edgehil.model.graph import Graph

TRANSPOSE_CONV_BIAS = "CUSTOM:Convolution2DTransposeBias"

_ELEMENTWISE = frozenset({
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
    "FLOOR_MOD", "ATAN2", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
    "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS",
    "NEG", "SQUARE", "SIN", "COS", "SIGN", "FLOOR", "CEIL", "ROUND", "QUANTIZE", "DEQUANTIZE", "CAST",
    "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "EQUAL", "NOT_EQUAL",
    "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
    "SELECT", "SELECT_V2", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
})
_POOLING = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
_REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                         "REDUCE_ALL", "ARG_MAX", "ARG_MIN", "CUMSUM"})
# Ops that write their outputs element by element from their inputs, without arithmetic.
_COPIES = frozenset({
    "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "GATHER",
    "GATHER_ND", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "TILE", "BROADCAST_TO", "FILL", "ZEROS_LIKE",
    "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "REVERSE_V2", "RANGE",
    "DENSIFY", "CUSTOM:MaxUnpooling2D",
})
# Ops that expand a stored constant into the weights an op uses (float16 / int8-compressed, sparse). Applied
# to a constant, the interpreter runs them once, not per inference: their output is a weight.
CONSTANT_EXPANDERS = frozenset({"DEQUANTIZE", "DENSIFY"})
# Ops that move no data: a new shape over the same buffer, or resource-variable plumbing.
_VIEWS = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "BROADCAST_ARGS",
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
})
# Input positions at which the MAC ops take their weights and biases.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2), "CONV_3D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3), "CONV_3D_TRANSPOSE": (1, 3), "BATCH_MATMUL": (0, 1),
    TRANSPOSE_CONV_BIAS: (1, 2),
}
# Input position of each MAC op's bias (BATCH_MATMUL has none).
BIAS_INPUT: dict[str, int] = {
    "CONV_2D": 2, "CONV_3D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3,
    "CONV_3D_TRANSPOSE": 3, TRANSPOSE_CONV_BIAS: 2,
}
# Input position of the activation each MAC op multiplies with its weights.
_ACTIVATION_INPUT: dict[str, int] = {
    "CONV_2D": 0, "CONV_3D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 2,
    "CONV_3D_TRANSPOSE": 2, "BATCH_MATMUL": 0, TRANSPOSE_CONV_BIAS: 0,
}


@dataclass(frozen=True)
class OpCost:
    """One operator's work per inference: `macs` multiply-accumulates, `elementwise_ops` elements touched."""

    macs: int = 0
    elementwise_ops: int = 0


def _shape(graph: Graph, ins: list[int], position: int) -> tuple[int, ...] | None:
    if position < len(ins) and ins[position] >= 0:
        return graph.shapes[ins[position]]
    return None


def _transposed_macs(graph: Graph, ins: list[int], data_at: int, filter_at: int) -> int:
    """Input elements × filter elements / C_in: every input element meets every tap of every output channel."""
    data, filt = _shape(graph, ins, data_at), _shape(graph, ins, filter_at)
    if not data or not filt or data[-1] <= 0:
        return 0
    return math.prod(data) * math.prod(filt) // data[-1]


def _macs(graph: Graph, op: int) -> int | None:
    """MACs of a MAC op (see the module docstring), None for any other op."""
    name, ins, outs = graph.op_names[op], graph.op_inputs[op], graph.op_outputs[op]
    out_elems = graph.elements(outs[0]) if outs and outs[0] >= 0 else 0
    weights = _shape(graph, ins, 1)
    rule: dict[str, Callable[[], int]] = {
        "CONV_2D": lambda: out_elems * math.prod(weights[1:]) if weights else 0,
        "CONV_3D": lambda: out_elems * math.prod(weights[:-1]) if weights else 0,
        "DEPTHWISE_CONV_2D": lambda: out_elems * math.prod(weights[1:3]) if weights else 0,
        "FULLY_CONNECTED": lambda: out_elems * weights[-1] if weights else 0,
        # inputs: output_shape, filter, input, (bias)
        "TRANSPOSE_CONV": lambda: _transposed_macs(graph, ins, data_at=2, filter_at=1),
        "CONV_3D_TRANSPOSE": lambda: _transposed_macs(graph, ins, data_at=2, filter_at=1),
        TRANSPOSE_CONV_BIAS: lambda: _transposed_macs(graph, ins, data_at=0, filter_at=1),
    }
    if name in rule:
        return rule[name]()
    if name == "BATCH_MATMUL":
        lhs = _shape(graph, ins, 0)
        adj_x = bool(getattr(graph.op_options[op], "adjX", False))
        return out_elems * (lhs[-2] if adj_x else lhs[-1]) if lhs and len(lhs) >= 2 else 0
    return None


def _elementwise_ops(graph: Graph, op: int) -> int | None:
    """Elements a non-MAC op touches (see the module docstring), None for an op this module does not know."""
    name, ins, outs = graph.op_names[op], graph.op_inputs[op], graph.op_outputs[op]
    out_elems = graph.elements(outs[0]) if outs and outs[0] >= 0 else 0
    if name in _POOLING:
        opts = graph.op_options[op]
        return out_elems * int(getattr(opts, "filterHeight", 1) or 1) * int(getattr(opts, "filterWidth", 1) or 1)
    if name in _REDUCTIONS or name == "CUSTOM:MaxPoolingWithArgmax2D":
        first = _shape(graph, ins, 0)
        return math.prod(first) if first is not None else 0
    if name == "ADD_N":
        return out_elems * max(len(ins) - 1, 1)
    if name in _ELEMENTWISE:
        return out_elems
    if name in _COPIES:  # SPLIT, UNPACK: several outputs, all written
        return sum(graph.elements(t) for t in outs if t >= 0)
    if name in _VIEWS:
        return 0
    return None


def op_cost(graph: Graph, op: int) -> OpCost | None:
    """MACs and elementwise ops of one operator, or None when the op is not one this module can count."""
    macs = _macs(graph, op)
    if macs is not None:
        return OpCost(macs=macs)
    elementwise = _elementwise_ops(graph, op)
    return None if elementwise is None else OpCost(elementwise_ops=elementwise)


def compute_dtype(graph: Graph, op_macs: list[int]) -> str:
    """The dtype the MAC ops (conv/matmul) compute in, weighted by their MACs ("none" without such ops).

    An op computes in its activation's dtype. Float activations with integer weights stored as such (not
    through a DEQUANTIZE) are dynamic-range ("hybrid") quantization: float compute with int8 storage.
    """
    dequantized = {out for op, name in enumerate(graph.op_names) if name == "DEQUANTIZE"
                   for out in graph.op_outputs[op]}
    weight: Counter[str] = Counter()
    for op, name in enumerate(graph.op_names):
        position = _ACTIVATION_INPUT.get(name)
        ins = graph.op_inputs[op]
        if position is None or position >= len(ins) or ins[position] < 0:
            continue
        dtype = graph.types[ins[position]].lower()
        weights = WEIGHT_INPUTS[name][1 if name == "BATCH_MATMUL" else 0]
        if (dtype.startswith("float") and weights < len(ins) and ins[weights] >= 0
                and ins[weights] not in dequantized and graph.types[ins[weights]] in ("INT8", "INT4", "UINT8")):
            dtype = f"hybrid-{graph.types[ins[weights]].lower()}"
        weight[dtype] += max(op_macs[op], 1)  # an op whose MACs are unknown still votes
    return weight.most_common(1)[0][0] if weight else "none"
