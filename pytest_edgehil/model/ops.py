"""Per-operator rules of the static analysis: how many MACs an op costs, and what dtype it computes in.

The MAC rules are listed in `info.py`'s docstring. The compute dtype of a conv / depthwise / fully
connected / transpose conv / batch matmul op is the dtype of the activation it multiplies with its
weights: the TFLite converter keeps float32 I/O around an int8 graph (QUANTIZE in front, DEQUANTIZE
behind), so a model's input dtype does not say what its convolutions compute in.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from pytest_edgehil.model.graph import Graph

_ELEMENTWISE = frozenset({
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
    "FLOOR_MOD", "ATAN2", "ADD_N", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
    "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS",
    "NEG", "SQUARE", "SIN", "COS", "SIGN", "FLOOR", "CEIL", "ROUND", "QUANTIZE", "DEQUANTIZE", "CAST",
    "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "EQUAL", "NOT_EQUAL",
    "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT",
    "SELECT", "SELECT_V2", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"
})
_POOLING = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
_REDUCTIONS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY",
                         "REDUCE_ALL", "ARG_MAX", "ARG_MIN", "CUMSUM"})
_DATA_MOVEMENT = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD", "TRANSPOSE",
    "STRIDED_SLICE", "SLICE", "GATHER", "GATHER_ND", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "SHAPE",
    "TILE", "BROADCAST_TO", "BROADCAST_ARGS", "FILL", "ZEROS_LIKE", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
    "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "REVERSE_V2", "RANGE",
    # resource-variable plumbing: reading or initializing weights, no arithmetic
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
})
# Input positions at which the compute ops take their weights and biases.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2), "CONV_3D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3), "BATCH_MATMUL": (0, 1),
}


def _shape(graph: Graph, ins: list[int], position: int) -> tuple[int, ...] | None:
    if position < len(ins) and ins[position] >= 0:
        return graph.shapes[ins[position]]
    return None


def op_macs(graph: Graph, op: int) -> int | None:
    """MACs of one operator, or None when the op is not one this module knows how to count."""
    name, ins, outs = graph.op_names[op], graph.op_inputs[op], graph.op_outputs[op]
    out_elems = graph.elements(outs[0]) if outs and outs[0] >= 0 else 0
    weights = _shape(graph, ins, 1)
    rule: dict[str, Callable[[], int]] = {
        # filter [C_out, K_h, K_w, C_in/groups]
        "CONV_2D": lambda: out_elems * math.prod(weights[1:]) if weights else 0,
        # filter [K_d, K_h, K_w, C_in, C_out]
        "CONV_3D": lambda: out_elems * math.prod(weights[:-1]) if weights else 0,
        # filter [1, K_h, K_w, C_out]
        "DEPTHWISE_CONV_2D": lambda: out_elems * math.prod(weights[1:3]) if weights else 0,
        # weights [out, in]
        "FULLY_CONNECTED": lambda: out_elems * weights[-1] if weights else 0,
    }
    if name in rule:
        return rule[name]()
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [C_out, K_h, K_w, C_in], input, (bias)
        filt, data = _shape(graph, ins, 1), _shape(graph, ins, 2)
        return math.prod(data) * math.prod(filt[:3]) if filt and data else 0
    if name == "BATCH_MATMUL":
        lhs = _shape(graph, ins, 0)
        adj_x = bool(getattr(graph.op_options[op], "adjX", False))
        return out_elems * (lhs[-2] if adj_x else lhs[-1]) if lhs and len(lhs) >= 2 else 0
    if name in _POOLING:
        opts = graph.op_options[op]
        return out_elems * int(getattr(opts, "filterHeight", 1) or 1) * int(getattr(opts, "filterWidth", 1) or 1)
    if name in _REDUCTIONS:
        first = _shape(graph, ins, 0)
        return math.prod(first) if first is not None else 0
    if name == "ADD_N":
        return out_elems * max(len(ins) - 1, 1)
    if name in _ELEMENTWISE:
        return out_elems
    if name in _DATA_MOVEMENT:
        return 0
    return None


# Input position of the activation each compute op multiplies with its weights.
_ACTIVATION_INPUT: dict[str, int] = {
    "CONV_2D": 0, "CONV_3D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 2,
    "BATCH_MATMUL": 0,
}


def compute_dtype(graph: Graph, op_macs: list[int]) -> str:
    """The dtype the conv/matmul ops compute in, weighted by their MACs ("none" without such ops).

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
